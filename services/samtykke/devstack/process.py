"""Background server processes that outlive the command which started them.

A server runs in its own session (so Ctrl+C on the CLI does not reach it), writes
stdout and stderr to its log file and leaves its pid in a pidfile. Liveness is
checked against /proc so a recycled pid belonging to another program is never
mistaken for our server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from samtykke.devstack.layout import HostPort
from samtykke.devstack.parts import StackError

T = TypeVar("T")

# Popen objects of servers started by this interpreter: holding them prevents
# "still running" warnings on garbage collection and lets us reap exited children.
_children: dict[int, subprocess.Popen[bytes]] = {}


def process_is_alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        return False  # our own child exited (and is now reaped)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return True
    # state is the field after the parenthesised command name; Z = zombie, X = dead
    return stat.rpartition(")")[2].split()[0] not in {"Z", "X"}


def process_command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def port_is_open(address: HostPort, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout):
            return True
    except OSError:
        return False


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a probe coroutine to completion, even when called from async code
    (the tests call the stack API inside a running event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def run_logged(
    part: str,
    command: Sequence[str],
    log_path: Path,
    cwd: Path | None = None,
    timeout: float = 900,
    stdin_text: str | None = None,
    step: str | None = None,
) -> None:
    """Run a set-up command to completion, its output appended to the part's log;
    `step` names it in the error ("formatting the log directory failed")."""
    step = step or " ".join(command[:2])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n$ {' '.join(command)}\n".encode())
        log.flush()
        try:
            result = subprocess.run(
                list(command),
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                # an empty input still closes stdin: set-up tools must never wait for a keypress
                input=(stdin_text or "").encode(),
                check=False,
            )
        except FileNotFoundError as error:
            raise StackError(part, f"{command[0]} is not installed", log_path) from error
        except subprocess.TimeoutExpired as error:
            raise StackError(part, f"{step} took over {timeout:.0f}s", log_path) from error
    if result.returncode != 0:
        raise StackError(part, f"{step} failed (exit {result.returncode})", log_path)


def wait_until(part: str, probe: Callable[[], bool], alive: Callable[[], bool], timeout: float, log_path: Path) -> None:
    """Poll `probe` until it holds; fail early if the server process died."""
    deadline = time.monotonic() + timeout
    while True:
        if probe():
            return
        if not alive():
            time.sleep(0.5)  # confirm: a death is final, a glitch in reading /proc is not
            if not alive() and not probe():
                raise StackError(part, "the server process exited during start-up", log_path)
        if time.monotonic() > deadline:
            raise StackError(part, f"not ready after {timeout:.0f}s", log_path)
        time.sleep(0.25)


class DetachedProcess:
    """A server process identified by its pidfile and a marker in its command line."""

    def __init__(self, part: str, pid_path: Path, log_path: Path, marker: str) -> None:
        self.part = part
        self.pid_path = pid_path
        self.log_path = log_path
        self.marker = marker

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if process_is_alive(pid):
            command_line = process_command_line(pid)
            # a child we spawned is ours even while its command line is briefly unreadable
            # (empty during exec); otherwise the marker guards against a reused pid
            if pid in _children or not command_line or self.marker in command_line:
                return pid
        self.pid_path.unlink(missing_ok=True)  # stale: the server died or the pid was reused
        return None

    def spawn(self, command: Sequence[str], cwd: Path) -> int:
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n$ {' '.join(command)}\n".encode())
            log.flush()
            try:
                child = subprocess.Popen(
                    list(command),
                    cwd=cwd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except FileNotFoundError as error:
                message = f"{command[0]} is not installed"
                raise StackError(self.part, message, self.log_path) from error
        _children[child.pid] = child
        self.pid_path.write_text(f"{child.pid}\n")
        return child.pid

    def is_alive(self) -> bool:
        return self.running_pid() is not None

    def stop(self, timeout: float) -> None:
        """SIGTERM (the servers shut down cleanly on it), SIGKILL after `timeout`."""
        pid = self.running_pid()
        if pid is None:
            return
        self._signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_is_alive(pid):
            self._signal(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 5
            while process_is_alive(pid) and time.monotonic() < kill_deadline:
                time.sleep(0.1)
        if process_is_alive(pid):
            raise StackError(self.part, f"pid {pid} survived SIGKILL", self.log_path)
        self.pid_path.unlink(missing_ok=True)
        _children.pop(pid, None)

    @staticmethod
    def _signal(pid: int, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
