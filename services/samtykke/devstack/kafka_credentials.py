"""The local broker's SCRAM users and what a client needs to log in as one of them.

A secured local broker (see `devstack.kafka`) has one SCRAM-SHA-512 user per principal in
`devstack.acls`, with random passwords made once and kept in `<state>/kafka/credentials.json`
(mode 600, `{"admin": "...", "consent": "...", ...}`), and serves TLS with a certificate signed by a
local CA whose certificate is `<state>/kafka/tls/ca.pem`. The platform's clients find both through
their settings (`adapters.kafka.client_options`: the user `SAMTYKKE_KAFKA_USERNAME`, its password
from this file unless one is set). `client_credentials` gives the stack manager and the broker's
own tests the connection details of any principal of a given state folder.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtykke.adapters.settings import Settings
from samtykke.devstack.acls import SCRAM_USERS
from samtykke.devstack.layout import HostPort, StackLayout, kafka_address

SECURITY_PROTOCOL = "SASL_SSL"
SASL_MECHANISM = "SCRAM-SHA-512"
# SCRAM values and JAAS strings stay free of quoting trouble: letters, digits, '-' and '_' only
_PASSWORD_BYTES = 24


def kafka_home(layout: StackLayout) -> Path:
    return layout.state_dir / "kafka"


def credentials_path(layout: StackLayout) -> Path:
    return kafka_home(layout) / "credentials.json"


def ca_path(layout: StackLayout) -> Path:
    return kafka_home(layout) / "tls" / "ca.pem"


def controller_address(settings: Settings) -> HostPort:
    """KRaft's controller listener: the client port + 1."""
    address = kafka_address(settings)
    return HostPort(address.host, address.port + 1)


def benchmark_address(settings: Settings) -> HostPort:
    """The secured broker's plaintext listener for the benchmark floor: the client port + 2. Its
    clients are `User:ANONYMOUS`, allowed only the floor's own topics (`acls.BENCHMARK_TOPIC_PREFIX`)."""
    address = kafka_address(settings)
    return HostPort(address.host, address.port + 2)


def mtls_address(settings: Settings) -> HostPort:
    """The secured broker's mutual-TLS listener for clients: the client port + 4. A client
    certificate of the local CA is the login; its `CN` is the principal."""
    address = kafka_address(settings)
    return HostPort(address.host, address.port + 4)


def write_secret(path: Path, text: str) -> None:
    """Write a file only its owner may read, whatever the umask or an older copy's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


def new_password() -> str:
    return secrets.token_urlsafe(_PASSWORD_BYTES)


def load_credentials(path: Path) -> dict[str, str]:
    loaded = json.loads(path.read_text())
    if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
        raise ValueError(f"{path} is not a JSON object of user names and passwords")
    return {str(name): value for name, value in loaded.items()}


def ensure_credentials(path: Path, users: Iterable[str] = SCRAM_USERS) -> dict[str, str]:
    """The password of every user, made once: existing ones are kept, missing ones added."""
    existing = load_credentials(path) if path.is_file() else {}
    wanted = {name: existing.get(name) or new_password() for name in users}
    merged = {**existing, **wanted}
    if merged != existing or not path.is_file() or path.stat().st_mode & 0o077:
        write_secret(path, json.dumps(merged, indent=2) + "\n")
    return merged


@dataclass(frozen=True)
class KafkaClientCredentials:
    """How one principal reaches the secured local broker."""

    bootstrap: str
    ca_path: Path
    username: str
    password: str = field(repr=False)
    security_protocol: str = SECURITY_PROTOCOL
    sasl_mechanism: str = SASL_MECHANISM

    def ssl_context(self) -> ssl.SSLContext:
        # verifies the broker's certificate against the local CA, and its name (127.0.0.1, localhost)
        return ssl.create_default_context(cafile=str(self.ca_path))

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client."""
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
            "ssl_context": self.ssl_context(),
        }


def client_credentials(settings: Settings, principal: str, layout: StackLayout | None = None) -> KafkaClientCredentials:
    """The local stack's connection details for `principal` (one of `acls.SCRAM_USERS`);
    `FileNotFoundError` until a secured broker has been started once in this state folder."""
    layout = layout or StackLayout.from_settings(settings)
    passwords = load_credentials(credentials_path(layout))
    if principal not in passwords:
        raise KeyError(f"no Kafka user {principal!r} in {credentials_path(layout)}; known: {sorted(passwords)}")
    return KafkaClientCredentials(
        bootstrap=settings.kafka_bootstrap,
        ca_path=ca_path(layout),
        username=principal,
        password=passwords[principal],
    )
