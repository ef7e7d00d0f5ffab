"""Apache Kafka as a single KRaft node (broker + controller) on 127.0.0.1.

The broker classpath comes from Maven Central via files/pom.xml, the
config is rendered from files/server.properties.template on every start
(so port changes in the settings apply), and the log directory is formatted only
once: a restart keeps every topic and offset.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from string import Template

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from samtykke.adapters.settings import Settings
from samtykke.devstack.layout import HostPort, StackLayout, kafka_address
from samtykke.devstack.parts import Report, StackError
from samtykke.devstack.process import (
    DetachedProcess,
    port_is_open,
    run_blocking,
    run_logged,
    wait_until,
)

HEAP_OPTIONS = ("-Xms256m", "-Xmx512m")
# the upstream kafka-run-class.sh defaults that matter for a small broker
JVM_OPTIONS = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)


def new_cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding, as Kafka's own generator;
    a leading '-' is avoided because the storage tool would read it as an option."""
    while True:
        candidate = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not candidate.startswith("-"):
            return candidate


async def broker_answers(bootstrap: str, timeout: float = 10.0) -> bool:
    """A metadata round trip through aiokafka, the client the services use."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
        return True
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await admin.close()


class KafkaBroker:
    name = "kafka"

    def __init__(self, settings: Settings, layout: StackLayout) -> None:
        self.address: HostPort = kafka_address(settings)
        self.controller = HostPort(self.address.host, self.address.port + 1)
        self.home = layout.state_dir / "kafka"
        self.lib_dir = self.home / "lib"
        self.data_dir = self.home / "data"
        self.config_path = self.home / "server.properties"
        self.template_path = layout.files_dir / "server.properties.template"
        self.pom_path = layout.files_dir / "pom.xml"
        self.log4j_config = layout.files_dir / "log4j2.yaml"
        self.logs_dir = layout.logs_dir
        self.log_path = layout.log_path(self.name)
        # the rendered config path is unique to this state folder, so a broker
        # started elsewhere (same main class) is never taken for ours
        self.process = DetachedProcess(
            self.name, layout.pid_path(self.name), self.log_path, marker=str(self.config_path)
        )

    @property
    def endpoint(self) -> str:
        return str(self.address)

    def is_installed(self) -> bool:
        return any(self.lib_dir.glob("kafka_2.13-*.jar"))

    def install(self, report: Report) -> None:
        for tool in ("java", "mvn"):
            if shutil.which(tool) is None:
                raise StackError(self.name, f"{tool} is required (Java 17+ and Maven)", self.log_path)
        report(f"kafka: resolving the broker classpath with Maven into {self.lib_dir}")
        run_logged(
            self.name,
            [
                "mvn",
                "-B",
                "-q",
                "-f",
                str(self.pom_path),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={self.lib_dir}",
            ],
            self.log_path,
            step="resolving the broker jars with Maven",
        )
        if not self.is_installed():
            raise StackError(self.name, f"Maven ran but {self.lib_dir} has no kafka_2.13 jar", self.log_path)

    def running_pid(self) -> int | None:
        return self.process.running_pid()

    def start(self) -> None:
        for port in (self.address, self.controller):
            if port_is_open(port):
                raise StackError(
                    self.name,
                    f"port {port} is already taken by a process this "
                    "stack did not start; stop it or change SAMTYKKE_KAFKA_BOOTSTRAP",
                    self.log_path,
                )
        self._render_config()
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage()
        self.process.spawn(
            [
                "java",
                *HEAP_OPTIONS,
                *JVM_OPTIONS,
                f"-Dlog4j2.configurationFile={self.log4j_config}",
                f"-Dkafka.logs.dir={self.logs_dir}",
                "-cp",
                f"{self.lib_dir}/*",
                "kafka.Kafka",
                str(self.config_path),
            ],
            cwd=self.home,
        )

    def is_ready(self) -> bool:
        # the TCP check first keeps aiokafka from logging connection errors
        return port_is_open(self.address) and run_blocking(broker_answers(str(self.address)))

    def wait_ready(self, timeout: float) -> None:
        wait_until(self.name, self.is_ready, self.process.is_alive, timeout, self.log_path)

    def stop(self, timeout: float) -> None:
        # SIGTERM makes the broker flush and close its logs: the next start keeps all data
        self.process.stop(timeout)

    def _render_config(self) -> None:
        template = Template(self.template_path.read_text())
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            template.substitute(
                listen_host=self.address.host,
                broker_port=self.address.port,
                controller_port=self.controller.port,
                log_dirs=str(self.data_dir),
            )
        )

    def _format_storage(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_logged(
            self.name,
            [
                "java",
                f"-Dlog4j2.configurationFile={self.log4j_config}",
                "-cp",
                f"{self.lib_dir}/*",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                new_cluster_id(),
                "-c",
                str(self.config_path),
            ],
            self.log_path,
            cwd=self.home,
            timeout=120,
            step="formatting the KRaft log directory",
        )
