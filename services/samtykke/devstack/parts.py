"""What every part of the local stack (PostgreSQL, Kafka, schema registry) offers.

The stack control only talks to parts through `StackPart`, so adding a part
means writing one class, not touching the orchestration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

# start order; `down` walks it backwards so the database outlives its clients
PART_NAMES: tuple[str, ...] = ("postgres", "kafka", "registry")

Report = Callable[[str], None]


class StackError(RuntimeError):
    """A part could not be installed, started, probed or stopped."""

    def __init__(self, part: str, message: str, log_path: Path | None = None) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part
        self.message = message
        self.log_path = log_path

    def log_tail(self, lines: int = 15) -> list[str]:
        """The last lines of the part's log: usually the actual reason."""
        if self.log_path is None or not self.log_path.is_file():
            return []
        with self.log_path.open("rb") as handle:
            # logs can be large; the end is all that matters here
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 16_384))
            text = handle.read().decode("utf-8", errors="replace")
        return text.splitlines()[-lines:]


@dataclass(frozen=True)
class PartStatus:
    name: str
    running: bool
    pid: int | None
    endpoint: str
    ready: bool
    log_path: Path


class StackPart(Protocol):
    """One locally run server."""

    name: str
    log_path: Path

    @property
    def endpoint(self) -> str:
        """The address clients use, printable (no secrets)."""
        ...

    def is_installed(self) -> bool: ...

    def install(self, report: Report) -> None:
        """Fetch what is missing; may take minutes on a fresh machine."""
        ...

    def running_pid(self) -> int | None:
        """The pid of our live server process, or None (stale pidfiles are removed)."""
        ...

    def start(self) -> None:
        """Launch the server in the background; returns without waiting for readiness."""
        ...

    def is_ready(self) -> bool:
        """True when the server really answers a client request."""
        ...

    def wait_ready(self, timeout: float) -> None:
        """Block until ready; raise StackError on timeout or if the process died."""
        ...

    def stop(self, timeout: float) -> None:
        """Stop gracefully, forcefully after `timeout` seconds."""
        ...


@runtime_checkable
class Reconfigurable(Protocol):
    """A part whose running server may serve another configuration than the one wanted now."""

    def needs_restart(self) -> str | None:
        """Why the running server must restart to serve what is wanted now (None: it need not)."""
        ...
