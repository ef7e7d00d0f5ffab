"""Where the local stack keeps things, and which addresses it serves.

Everything the stack downloads, stores, logs or records as a pid lives under
`settings.state_dir`, resolved against the repository root (the folder holding
pyproject.toml) so that running the CLI from a sub-folder uses the same state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from samtykke.adapters.settings import Settings


def find_repo_root() -> Path:
    """The folder holding pyproject.toml: next to this package when installed
    editable, otherwise the nearest one above the working directory."""
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "pyproject.toml").is_file() and (folder / "deploy" / "local").is_dir():
                return folder
    raise FileNotFoundError(
        "cannot find the samtykke repository root (a folder with pyproject.toml and deploy/local)"
    )


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

    repo_root: Path
    state_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> StackLayout:
        root = find_repo_root()
        state = settings.state_dir
        state = state if state.is_absolute() else root / state
        return cls(repo_root=root, state_dir=state.resolve())

    @property
    def deploy_dir(self) -> Path:
        return self.repo_root / "deploy" / "local"

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
