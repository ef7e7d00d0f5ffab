"""Where the local stack keeps things, and which addresses it serves.

Everything the stack downloads, stores, logs or records as a pid lives under
`settings.state_dir` (by default `.state/` of the checkout the command runs in).
The files the stack renders or builds from (the broker's pom, its config
template, the log4j2 config) ship inside this package, in `files/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from samtykke.adapters.settings import Settings


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class DatabaseAddress:
    """The parts of `settings.database_url` the cluster set-up needs."""

    host: str
    port: int
    user: str
    password: str
    database: str


def kafka_address(settings: Settings) -> HostPort:
    # the first bootstrap server is the one the local broker listens on
    first = settings.kafka_bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return HostPort(host or "127.0.0.1", int(port))


def registry_address(settings: Settings) -> HostPort:
    parts = urlsplit(settings.registry_url)
    return HostPort(parts.hostname or "127.0.0.1", parts.port or 80)


def database_address(settings: Settings) -> DatabaseAddress:
    parts = urlsplit(settings.database_url)
    return DatabaseAddress(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username or "samtykke"),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")) or "samtykke",
    )


def without_password(url: str) -> str:
    """A URL fit for printing: the password replaced by stars."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


@dataclass(frozen=True)
class StackLayout:
    """Absolute paths of the stack's state, derived once from the settings."""

    state_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> StackLayout:
        return cls(state_dir=settings.state_dir.resolve())

    @property
    def files_dir(self) -> Path:
        return Path(__file__).resolve().parent / "files"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def downloads_dir(self) -> Path:
        return self.state_dir / "downloads"

    def log_path(self, part: str) -> Path:
        return self.logs_dir / f"{part}.log"

    def pid_path(self, part: str) -> Path:
        return self.run_dir / f"{part}.pid"

    def ensure(self) -> None:
        for folder in (self.state_dir, self.logs_dir, self.run_dir, self.downloads_dir):
            folder.mkdir(parents=True, exist_ok=True)
