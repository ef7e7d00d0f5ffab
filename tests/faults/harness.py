"""The fault matrix's own stack and platform, and the hands that hurt them.

`FaultPlatform` owns a Kafka broker, a schema registry and a PostgreSQL cluster in a state folder of
its own, on ports of its own (free ones below the ephemeral range, so a restarted server never finds
its port taken by some client's connection), so the shared development stack is never touched. The
stack is run by `samtykke.devstack` and the services by the platform starter
(`devstack.platform.start_services`), both with this platform's `Settings`, so whatever security
the local stack switches on applies here too. The starter's children read their settings from the
environment: it is given this platform's settings for the duration of a start only. A service that
exited is started again alone, as the starter starts it (`start_one`).

Beside the platform's five services run a second consent replica and a second suppression replica
(`ServiceProcess`), started with the same environment, Kafka users and ports of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import asyncpg
import httpx
from pydantic import SecretStr

from samtykke import devstack
from samtykke.adapters.settings import Settings, get_settings
from samtykke.devstack.kafka import KafkaBroker
from samtykke.devstack.layout import StackLayout
from samtykke.devstack.parts import Report
from samtykke.devstack.platform import PLATFORM_SERVICES, service_environment, start_services, stop_services
from samtykke.devstack.postgres import ROOT_CLUSTERS, PostgresCluster
from samtykke.devstack.process import DetachedProcess, ServiceProcess, process_is_alive, samtykke_command
from samtykke.devstack.registry import APICURIO_VERSION
from tests.ports import free_ports
from tests.relay_lock import terminate_relay_leader

MAX_LAG_SECONDS = 3.0
# invariant (a): a committed withdrawal is blocked by every replica within this bound
BOUND_SECONDS = MAX_LAG_SECONDS + 1.0
ADMIN = {"Authorization": "Bearer dev-admin"}
REGISTERS = {"Authorization": "Bearer dev-registers"}
MARKETING = {"Authorization": "Bearer dev-marketing"}
PROJECTORS = ("marketing", "analytics", "customer_service")
SERVICES = ("consent", *PROJECTORS, "suppression")
READY_SECONDS = 120.0


def fault_settings(state_dir: Path) -> Settings:
    """Settings of a stack and platform of their own: own state folder, own ports, short bounds."""
    settings = Settings(
        state_dir=state_dir,
        kafka_bootstrap=f"127.0.0.1:{free_ports(5)}",  # the broker also listens on port + 1, 2, 3, 4
        registry_url=f"http://127.0.0.1:{free_ports()}/apis/ccompat/v7",
        database_url=f"postgresql://samtykke:samtykke@127.0.0.1:{free_ports()}/samtykke",
        consent_port=free_ports(),
        suppression_port=free_ports(),
        projection_web_port_base=free_ports(4),  # the projectors serve on base + 1, 2, 3
        topic_partitions=3,
        suppression_max_lag_seconds=MAX_LAG_SECONDS,
        kafka_metadata_refresh_seconds=1.0,
        relay_idle_poll_seconds=0.5,
        sweeper_interval_seconds=3600,
    )
    # the clients speak what the stack's broker serves (a broker the stack runs unsecured: plaintext)
    if not KafkaBroker(settings, StackLayout.from_settings(settings)).secured and hasattr(
        settings, "kafka_security_protocol"
    ):
        settings = settings.model_copy(update={"kafka_security_protocol": "PLAINTEXT"})
    return settings


def child_environment(settings: Settings) -> dict[str, str]:
    """Every setting that has a value, as the `SAMTYKKE_*` variable a child process reads it from."""
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"SAMTYKKE_{name.upper()}"] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return env


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """This process's environment with `values` set, restored afterwards (only the keys set)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def reuse_installed_binaries(layout: StackLayout) -> None:
    """Link the broker's jars and the registry's application from the development state folder when
    it has them (the same files: no second download or unpack); data, config and logs stay ours."""
    source = StackLayout.from_settings(get_settings()).state_dir
    jars = source / "kafka" / "lib"
    if jars.is_dir() and not (layout.state_dir / "kafka" / "lib").exists():
        (layout.state_dir / "kafka").mkdir(parents=True, exist_ok=True)
        (layout.state_dir / "kafka" / "lib").symlink_to(jars, target_is_directory=True)
    registry = source / "apicurio" / APICURIO_VERSION
    home = layout.state_dir / "apicurio" / APICURIO_VERSION
    if registry.is_dir() and not home.exists():
        home.mkdir(parents=True)
        for entry in registry.iterdir():
            if entry.name != "config":  # the storage settings are written per stack
                (home / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())


class FaultPlatform:
    def __init__(self, settings: Settings, report: Report = print) -> None:
        self.settings = settings
        self.layout = StackLayout.from_settings(settings)
        self.env = child_environment(settings)
        self.report = report
        self.consent_urls = {
            "consent": f"http://127.0.0.1:{settings.consent_port}",
            "consent-2": f"http://127.0.0.1:{free_ports()}",
        }
        self.suppression_urls = {
            "suppression": f"http://127.0.0.1:{settings.suppression_port}",
            "suppression-2": f"http://127.0.0.1:{free_ports()}",
        }
        self.replicas: dict[str, ServiceProcess] = {}
        self.paused: set[int] = set()
        self.restarted: list[str] = []  # services the supervisor had to start again

    # -- the stack ----------------------------------------------------------------------------
    def stack_up(self) -> None:
        reuse_installed_binaries(self.layout)
        devstack.up(self.settings, report=self.report)

    async def stop_part(self, part: str) -> None:
        await asyncio.to_thread(devstack.stop_part, part, self.settings, self.report)

    async def start_part(self, part: str) -> None:
        await asyncio.to_thread(devstack.start_part, part, self.settings, self.report)

    # -- the services -------------------------------------------------------------------------
    def start_services(self) -> None:
        """The platform starter: starts whichever of the five services is not running, waits until ready."""
        with environment(self.env):
            start_services(self.settings, report=self.report, timeout=READY_SECONDS)

    def start_one(self, name: str) -> None:
        """Start one of the five services if its process is gone, as the starter does: its pidfile, log,
        environment and Kafka user. (The starter itself also starts a second copy of a service that
        runs but is not ready, which a stale gate is during a fault.)"""
        service = next(s for s in PLATFORM_SERVICES if s.name == name)
        process = DetachedProcess(
            name, self.layout.pid_path(name), self.layout.log_path(name), f"samtykke.cli {' '.join(service.args)}"
        )
        if process.running_pid() is not None:
            return
        with environment(self.env):
            env = service_environment(service, self.settings)
            process.spawn(samtykke_command(*service.args), cwd=self.layout.state_dir.parent, env=env)

    def replica(self, name: str) -> ServiceProcess:
        """A second consent or suppression replica, with the environment the starter gives the first."""
        service_name = name.removesuffix("-2")
        service = next(s for s in PLATFORM_SERVICES if s.name == service_name)
        with environment(self.env):  # its own Kafka user, as the starter gives it
            env = service_environment(service, self.settings) or dict(os.environ)
        url = (self.consent_urls | self.suppression_urls)[name]
        env[f"SAMTYKKE_{service_name.upper()}_PORT"] = url.rsplit(":", 1)[1]
        log = self.layout.log_path(name)
        return ServiceProcess(name, service.args, url, env, log, ready_timeout=READY_SECONDS)

    async def start_replica(self, name: str, wait: bool = True) -> None:
        process = self.replica(name).spawn()
        self.replicas[name] = process
        if wait:
            await process.ready()

    def pid(self, name: str) -> int | None:
        if name in self.replicas:
            replica = self.replicas[name]
            return replica.pid if replica.running() else None
        # through the pid file's owner check: a pid reused by another process is never signalled
        service = next((s for s in PLATFORM_SERVICES if s.name == name), None)
        marker = f"samtykke.cli {' '.join(service.args)}" if service else str(self.layout.state_dir)
        return DetachedProcess(name, self.layout.pid_path(name), self.layout.log_path(name), marker).running_pid()

    def send(self, name: str, signum: signal.Signals) -> int:
        pid = self.pid(name)
        assert pid is not None, f"{name} is not running"
        os.kill(pid, signum)
        if signum == signal.SIGSTOP:
            self.paused.add(pid)
        elif signum == signal.SIGCONT:
            self.paused.discard(pid)
        return pid

    async def kill(self, name: str) -> None:
        """SIGKILL: no shutdown code runs (a crash)."""
        if name in self.replicas:
            self.replicas[name].kill()
            return
        pid = self.send(name, signal.SIGKILL)
        while process_is_alive(pid):
            await asyncio.sleep(0.05)

    async def terminate(self, name: str) -> None:
        """SIGTERM and wait: a clean stop."""
        if name in self.replicas:
            await self.replicas[name].stop(timeout=30)
            return
        pid = self.pid(name)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while process_is_alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if process_is_alive(pid):
            os.kill(pid, signal.SIGKILL)

    async def start(self, name: str) -> None:
        """Start a service stopped on purpose, and wait until it is ready."""
        if name in self.replicas:
            await self.start_replica(name)
            return
        self.start_one(name)
        service = next(s for s in PLATFORM_SERVICES if s.name == name)
        await self.wait_ready([service.ready_url(self.settings).removesuffix("/ready")])

    async def restart(self, name: str) -> None:
        await self.terminate(name)
        await self.start(name)

    def resume_all(self) -> None:
        for pid in list(self.paused):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
            self.paused.discard(pid)

    async def supervise(self) -> None:
        """What a supervisor does: start again whatever exited (the five services and the replicas)."""
        for name in SERVICES:
            if self.pid(name) is None:
                self.restarted.append(name)
                self.start_one(name)
        for name in ("consent-2", "suppression-2"):
            if name not in self.replicas or not self.replicas[name].running():
                if name in self.replicas:
                    self.restarted.append(name)
                await self.start_replica(name, wait=False)

    async def restore(self) -> None:
        """Back to healthy: nothing paused, every part and service up, every replica ready and fresh."""
        self.resume_all()
        await asyncio.to_thread(self.stack_up)
        await self.supervise()
        for replica in self.replicas.values():
            await replica.ready()
        services = [s.ready_url(self.settings).removesuffix("/ready") for s in PLATFORM_SERVICES]
        await self.wait_ready([*services, *self.consent_urls.values(), *self.suppression_urls.values()])

    async def wait_ready(self, urls: list[str], timeout: float = READY_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            for url in urls:
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"{url}/ready")).status_code == 200:
                            break
                    assert time.monotonic() < deadline, f"{url} not ready within {timeout:.0f}s"
                    await asyncio.sleep(0.2)

    def shutdown(self) -> None:
        """Stop every service and replica, then the stack; remove a root cluster's data folder."""
        self.resume_all()
        for replica in self.replicas.values():
            replica.terminate()
        for replica in self.replicas.values():
            deadline = time.monotonic() + 20
            while replica.running() and time.monotonic() < deadline:
                time.sleep(0.1)
            replica.kill()
        with environment(self.env):
            stop_services(self.settings, report=self.report)
        devstack.down(self.settings, report=self.report)
        cluster = PostgresCluster(self.settings, self.layout).home
        if cluster.is_relative_to(ROOT_CLUSTERS):  # a root stack keeps its cluster outside the state folder
            shutil.rmtree(cluster, ignore_errors=True)

    # -- the database -------------------------------------------------------------------------
    async def owner(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.settings.database_url)

    async def terminate_relay_lock_session(self) -> int:
        """Terminate the session holding the relay's advisory lock."""
        return await terminate_relay_leader(self.settings.database_url)

    async def leader_epochs(self) -> dict[str, int]:
        """The relay leadership epoch each consent replica reports holding (0: none), from its metrics."""
        epochs = {}
        async with httpx.AsyncClient(timeout=2.0) as client:
            for name, url in self.consent_urls.items():
                with contextlib.suppress(httpx.HTTPError):
                    for line in (await client.get(f"{url}/metrics")).text.splitlines():
                        if line.startswith("samtykke_relay_leader_epoch "):
                            epochs[name] = int(float(line.split()[1]))
        return epochs

    async def relay_leader(self, newer_than: int = 0, timeout: float = 30.0) -> tuple[str, int]:
        """The consent replica whose relay holds the lease (with an epoch above `newer_than`), and its epoch."""
        deadline = time.monotonic() + timeout
        while True:
            leading = {name: epoch for name, epoch in (await self.leader_epochs()).items() if epoch > newer_than}
            if leading:
                return max(leading.items(), key=lambda item: item[1])
            assert time.monotonic() < deadline, f"no consent replica leads the relay with an epoch above {newer_than}"
            await asyncio.sleep(0.2)

    async def leadership_lost(self, epoch: int, timeout: float = 30.0) -> None:
        """Until no replica reports holding `epoch` any more."""
        deadline = time.monotonic() + timeout
        while epoch in (await self.leader_epochs()).values():
            assert time.monotonic() < deadline, f"epoch {epoch} still leads {timeout:.0f}s on"
            await asyncio.sleep(0.1)
