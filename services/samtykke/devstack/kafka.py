"""Apache Kafka as a single KRaft node (broker + controller) on 127.0.0.1.

The broker classpath comes from Maven Central via files/pom.xml, the
config is rendered from files/server.properties.template on every start
(so port changes in the settings apply), and the log directory is formatted only
once: a restart keeps every topic and offset.

A secured broker (`secured=True`, or `SECURED_BY_DEFAULT`) serves clients on SASL_SSL with
SCRAM-SHA-512 users or OAUTHBEARER tokens of the local issuer (`devstack.issuer`, whose JWKS file
the broker reads), and on a mutual-TLS listener (port + 4) with client certificates of the local
CA; it authorises every one of them with the ACLs of `devstack.acls`. KRaft's controller
listener (port + 1) uses mutual TLS, a plaintext listener serves the benchmark floor (port + 2)
and a mutual-TLS one the stack manager (port + 3); files/listeners.secured.template says why.
At its start, TLS material and client certificates (`kafka_tls`), the issuer's signing key and
the users' passwords (`kafka_credentials`) are made if missing, the users are added when the
log directory is formatted, and once the broker listens, `files/ApplySecurity.java` upserts
every user and makes the broker's ACLs equal to
`acls.acl_rules` (one JVM, one connection). The upsert also gives users to a log directory
formatted without them (a plaintext stack switched to secured), and new ones to a lost
credentials file.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from functools import partial
from string import Template
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from samtykke.adapters.kafka_oauth import LOCAL_KAFKA_AUDIENCE, local_issuer_folder
from samtykke.adapters.settings import Settings
from samtykke.devstack.acls import ADMIN, CERTIFICATE_USERS, SCRAM_USERS, AclRule, acl_rules, render
from samtykke.devstack.issuer import LOCAL_ISSUER, LocalIssuer
from samtykke.devstack.kafka_credentials import (
    benchmark_address,
    client_credentials,
    controller_address,
    credentials_path,
    ensure_credentials,
    kafka_home,
    load_credentials,
    mtls_address,
    write_secret,
)
from samtykke.devstack.kafka_tls import BROKER_SUBJECT, BrokerTls
from samtykke.devstack.layout import HostPort, StackLayout, kafka_address
from samtykke.devstack.parts import Report, StackError
from samtykke.devstack.process import (
    DetachedProcess,
    port_is_open,
    run_blocking,
    run_logged,
    wait_until,
)

# The switch to a secured broker for `samtykke stack` and every KafkaBroker not told otherwise:
# every client logs in (`adapters.kafka.client_options`, SASL_SSL by default). A plaintext stack
# started before is converted at its next start (its users are added, its data kept); a test asks
# for a plaintext broker of its own with KafkaBroker(settings, layout, secured=False).
SECURED_BY_DEFAULT = True

HEAP_OPTIONS = ("-Xms256m", "-Xmx512m")
# Kafka 4 reads an OAuth URL (the JWKS) only if this system property lists it
OAUTH_ALLOWED_URLS_PROPERTY = "org.apache.kafka.sasl.oauthbearer.allowed.urls"
# the short Java runs of the set-up (format, keytool, javac, ApplySecurity): no optimising
# compiler, no parallel collector; halves a keytool run on a busy two-core machine
QUICK_JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
TOOL_JVM_OPTIONS = ("-Xmx128m", *QUICK_JVM_OPTIONS, "-Djava.awt.headless=true")
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


def argfile_line(argument: str) -> str:
    """One argument in a `java @argfile`: quoted, backslashes escaped."""
    if '"' in argument or "\n" in argument:
        raise ValueError(f"cannot pass {argument!r} in a java argument file")
    return '"' + argument.replace("\\", "\\\\") + '"'


def properties_text(values: Mapping[str, str]) -> str:
    """A Java properties file; only a backslash needs escaping in these values."""
    return "".join(f"{key}={value.replace(chr(92), chr(92) * 2)}\n" for key, value in values.items())


async def broker_answers(bootstrap: str, timeout: float = 10.0, **client_options: Any) -> bool:
    """A metadata round trip through aiokafka, the client the services use; `client_options`
    carry the security settings (`KafkaClientCredentials.client_options`)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), **client_options)
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

    def __init__(self, settings: Settings, layout: StackLayout, secured: bool | None = None) -> None:
        self.settings = settings
        self.layout = layout
        self.secured = SECURED_BY_DEFAULT if secured is None else secured
        self.address: HostPort = kafka_address(settings)
        self.controller = controller_address(settings)
        # served by a secured broker only
        self.benchmark = benchmark_address(settings)
        self.internal = HostPort(self.address.host, self.address.port + 3)
        self.mtls = mtls_address(settings)
        # the local issuer whose tokens the SASL_SSL listener takes (OAUTHBEARER)
        self.issuer_folder = local_issuer_folder(layout.state_dir)
        self.home = kafka_home(layout)
        self.lib_dir = self.home / "lib"
        self.data_dir = self.home / "data"
        self.config_path = self.home / "server.properties"
        self.template_path = layout.files_dir / "server.properties.template"
        self.pom_path = layout.files_dir / "pom.xml"
        self.log4j_config = layout.files_dir / "log4j2.yaml"
        self.tls = BrokerTls(self.home / "tls")
        self.credentials_path = credentials_path(layout)
        self.tools_dir = self.home / "tools"  # files/ApplySecurity.java, compiled
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

    def needs_restart(self) -> str | None:
        """A running broker serves the listeners of the config rendered at its start: one started
        plaintext is restarted secured (its users are added, its data kept), and back."""
        try:
            config = self.config_path.read_text()
        except OSError:
            return None
        serves_secured = "listeners=SASL_SSL://" in config
        if serves_secured == self.secured:
            return None
        return "serves plaintext, secured is wanted" if self.secured else "serves SASL_SSL, plaintext is wanted"

    def start(self) -> None:
        ports = [self.address, self.controller]
        if self.secured:
            ports += [self.benchmark, self.internal, self.mtls]
        for port in ports:
            if port_is_open(port):
                raise StackError(
                    self.name,
                    f"port {port} is already taken by a process this "
                    "stack did not start; stop it or change SAMTYKKE_KAFKA_BOOTSTRAP",
                    self.log_path,
                )
        if self.secured:
            self._prepare_security()
        self._render_config()
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage()
        oauth = [f"-D{OAUTH_ALLOWED_URLS_PROPERTY}={self.jwks_url}"] if self.secured else []
        self.process.spawn(
            [
                "java",
                *HEAP_OPTIONS,
                *JVM_OPTIONS,
                *oauth,
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
        if not port_is_open(self.address):
            return False
        if not self.secured:
            return run_blocking(broker_answers(str(self.address)))
        try:  # as `admin` over SASL_SSL, so the users, TLS and the authoriser all answer
            options = client_credentials(self.settings, ADMIN, self.layout).client_options()
        except (OSError, KeyError, ValueError):
            return False  # no passwords yet: this broker has never started secured
        return run_blocking(broker_answers(options.pop("bootstrap_servers"), **options))

    def wait_ready(self, timeout: float) -> None:
        began = time.monotonic()
        if self.secured:
            listening = partial(port_is_open, self.internal)
            wait_until(self.name, listening, self.process.is_alive, timeout, self.log_path)
            self.apply_security()
            timeout = max(1.0, timeout - (time.monotonic() - began))
        wait_until(self.name, self.is_ready, self.process.is_alive, timeout, self.log_path)

    def apply_security(self, rules: Iterable[AclRule] | None = None) -> None:
        """Upsert every SCRAM user and make the running broker's ACLs equal to `rules`
        (default: `acl_rules(settings)`), through the INTERNAL listener as the node itself."""
        passwords = load_credentials(self.credentials_path)
        plan = [f"scram\t{user}\t{passwords[user]}" for user in SCRAM_USERS]
        plan += render(acl_rules(self.settings) if rules is None else rules)
        plan_path, client_path = self.home / "security.plan", self.home / "internal-client.properties"
        write_secret(plan_path, "\n".join(plan) + "\n")
        write_secret(client_path, properties_text(self._internal_client()))
        try:
            run_logged(
                self.name,
                [
                    "java",
                    *TOOL_JVM_OPTIONS,
                    f"-Dlog4j2.configurationFile={self.layout.files_dir / 'tools-log4j2.yaml'}",
                    "-cp",
                    f"{self.tools_dir}:{self.lib_dir}/*",
                    "ApplySecurity",
                    str(client_path),
                    str(plan_path),
                ],
                self.log_path,
                cwd=self.home,
                timeout=120,
                step="applying the SCRAM users and ACLs",
            )
        finally:
            plan_path.unlink(missing_ok=True)

    @property
    def jwks_url(self) -> str:
        """The local issuer's JWKS as a file URL (`LocalIssuer.jwks_url`), read by the broker."""
        return (self.issuer_folder / "jwks.json").resolve().as_uri()

    def stop(self, timeout: float) -> None:
        # SIGTERM makes the broker flush and close its logs: the next start keeps all data
        self.process.stop(timeout)

    def _prepare_security(self) -> None:
        """TLS material, passwords and the compiled ApplySecurity: made once, kept."""
        for tool in ("keytool", "javac"):
            if shutil.which(tool) is None:
                raise StackError(self.name, f"{tool} is required for a secured broker (a JDK 17+)", self.log_path)

        def keytool(arguments: Iterable[str], step: str) -> None:
            command = ["keytool", *(f"-J{option}" for option in QUICK_JVM_OPTIONS), *arguments]
            run_logged(self.name, command, self.log_path, cwd=self.home, timeout=60, step=step)

        self.home.mkdir(parents=True, exist_ok=True)
        self.tls.ensure_material(self.address.host, keytool)
        self.tls.ensure_client_certificates(CERTIFICATE_USERS)
        # the broker reads the JWKS at start: the issuer's key and JWKS must exist before it
        LocalIssuer(self.issuer_folder)
        ensure_credentials(self.credentials_path)
        self._compile_tools()

    def _compile_tools(self) -> None:
        source = self.layout.files_dir / "ApplySecurity.java"
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        stamp = self.tools_dir / "ApplySecurity.sha256"
        if stamp.is_file() and stamp.read_text() == digest and (self.tools_dir / "ApplySecurity.class").is_file():
            return
        shutil.rmtree(self.tools_dir, ignore_errors=True)
        run_logged(
            self.name,
            [
                "javac",
                *(f"-J{option}" for option in QUICK_JVM_OPTIONS),
                "-nowarn",
                "-cp",
                f"{self.lib_dir}/*",
                "-d",
                str(self.tools_dir),
                str(source),
            ],
            self.log_path,
            cwd=self.home,
            timeout=120,
            step="compiling ApplySecurity.java",
        )
        stamp.write_text(digest)

    def _render_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        ports = {
            "listen_host": self.address.host,
            "broker_port": self.address.port,
            "controller_port": self.controller.port,
        }
        if self.secured:
            listeners = Template((self.layout.files_dir / "listeners.secured.template").read_text()).substitute(
                ports,
                benchmark_port=self.benchmark.port,
                internal_port=self.internal.port,
                mtls_port=self.mtls.port,
                jwks_url=self.jwks_url,
                oauth_audience=LOCAL_KAFKA_AUDIENCE,
                oauth_issuer=LOCAL_ISSUER,
                inter_broker_user=ADMIN,
                inter_broker_password=load_credentials(self.credentials_path)[ADMIN],
                keystore=str(self.tls.keystore),
                keystore_password=self.tls.keystore_password,
                truststore=str(self.tls.truststore),
                truststore_password=self.tls.truststore_password,
                broker_subject=BROKER_SUBJECT,
            )
        else:
            listeners = Template((self.layout.files_dir / "listeners.plaintext.template").read_text()).substitute(ports)
        template = Template(self.template_path.read_text())
        # a secured broker's config holds passwords
        write_secret(self.config_path, template.substitute(ports, listeners=listeners, log_dirs=str(self.data_dir)))

    def _internal_client(self) -> dict[str, str]:
        """The node's own identity on the INTERNAL listener (mutual TLS): a super user."""
        return {
            "bootstrap.servers": str(self.internal),
            "security.protocol": "SSL",
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.tls.keystore),
            "ssl.keystore.password": self.tls.keystore_password,
            "ssl.key.password": self.tls.keystore_password,
            "ssl.truststore.type": "PKCS12",
            "ssl.truststore.location": str(self.tls.truststore),
            "ssl.truststore.password": self.tls.truststore_password,
            "default.api.timeout.ms": "60000",
        }

    def _format_storage(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        arguments = ["kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(self.config_path)]
        if self.secured:
            # KIP-900: the users exist from the first start, so the broker's own SASL_SSL login works
            passwords = load_credentials(self.credentials_path)
            for user in SCRAM_USERS:
                arguments += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={passwords[user]}]"]
        # in an argument file, the passwords stay out of the log and of the process list
        argfile = self.home / "format.args"
        write_secret(argfile, "".join(argfile_line(argument) + "\n" for argument in arguments))
        try:
            run_logged(
                self.name,
                [
                    "java",
                    *QUICK_JVM_OPTIONS,
                    f"-Dlog4j2.configurationFile={self.log4j_config}",
                    "-cp",
                    f"{self.lib_dir}/*",
                    f"@{argfile}",
                ],
                self.log_path,
                cwd=self.home,
                timeout=120,
                step="formatting the KRaft log directory",
            )
        finally:
            argfile.unlink(missing_ok=True)
