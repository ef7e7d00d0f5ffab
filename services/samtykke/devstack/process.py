"""Server processes: background ones that outlive the command which started them, and the
platform's own services as children of a benchmark or a test.

A background server runs in its own session (so Ctrl+C on the CLI does not reach it), writes
stdout and stderr to its log file and leaves its pid in a pidfile. Liveness is
checked against /proc so a recycled pid belonging to another program is never
mistaken for our server. A child service (`ServiceProcess`) is `samtykke ARGS` with its
settings in the environment, ready when its /ready (or /healthz) answers 200, stopped with it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr

from samtykke.adapters.settings import Settings
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

    def spawn(self, command: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> int:
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n$ {' '.join(command)}\n".encode())
            log.flush()
            try:
                child = subprocess.Popen(
                    list(command),
                    cwd=cwd,
                    env=None if env is None else dict(env),
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


# --- the platform's services as children of a benchmark or a test ------------------------------


def samtykke_command(*args: str) -> list[str]:
    """`samtykke ARGS` run by this interpreter, so a child runs the same installation."""
    return [sys.executable, "-m", "samtykke.cli", *args]


def settings_environment(
    settings: Settings, names: Iterable[str], base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """`base` (default: this process's environment) plus the named settings, as the SAMTYKKE_*
    variables a child process reads them from (lists and mappings as JSON)."""
    env = dict(os.environ if base is None else base)
    for name in names:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):  # str() of a secret is its mask
            value = value.get_secret_value()
        env[f"SAMTYKKE_{name.upper()}"] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return env


def answers_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class ServiceProcess:
    """`samtykke ARGS` as a child of this process, serving at `url`, ready once GET `url` +
    `ready_path` answers 200.

    Output goes to `log_path` (appended), or nowhere. Use as `async with` (started and ready on
    entry, stopped on exit), or `spawn()`, `await ready()` and `await stop()` for control.
    """

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        url: str,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        ready_timeout: float = 60.0,
        ready_path: str = "/ready",
    ) -> None:
        self.name = name
        self.args = tuple(args)
        self.url = url
        self.ready_url = url + ready_path
        self.log_path = log_path
        self.ready_after = 0.0  # seconds from spawn to the first 200
        self._env = dict(os.environ if env is None else env)
        self._ready_timeout = ready_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._spawned_at = 0.0

    @property
    def pid(self) -> int:
        assert self._process is not None, f"{self.name} was not spawned"
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def spawn(self) -> ServiceProcess:
        output: Any = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            output = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                samtykke_command(*self.args),
                env=self._env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            if self.log_path is not None:
                output.close()  # the child holds its own descriptor
        self._spawned_at = time.monotonic()
        return self

    async def ready(self, timeout: float | None = None) -> float:
        """Wait for the first 200; StackError (naming the log) if the child exits or time runs out."""
        deadline = time.monotonic() + (self._ready_timeout if timeout is None else timeout)
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.ready_url)).status_code == 200:
                        self.ready_after = time.monotonic() - self._spawned_at
                        return self.ready_after
                if not self.running():
                    raise StackError(self.name, f"exited with {self.returncode} during start-up", self.log_path)
                if time.monotonic() > deadline:
                    raise StackError(self.name, f"not ready after {deadline - self._spawned_at:.0f}s", self.log_path)
                await asyncio.sleep(0.2)

    def terminate(self) -> None:
        """SIGTERM: every service shuts down cleanly on it."""
        if self.running():
            assert self._process is not None
            self._process.terminate()

    def kill(self) -> None:
        """SIGKILL, and reap: no shutdown code runs (a crash, as a test wants it)."""
        if self.running():
            assert self._process is not None
            self._process.kill()
            self._process.wait(timeout=10)  # a killed process is gone within milliseconds

    async def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL if the child has not exited after `timeout`."""
        self.terminate()
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        self.kill()

    async def __aenter__(self) -> ServiceProcess:
        self.spawn()
        try:
            await self.ready()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()
