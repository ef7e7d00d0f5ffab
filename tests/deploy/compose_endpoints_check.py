"""The Kafka, registry and database addresses samtykke services connect to in compose.

Each address a samtykke service's settings name must be another compose
service, which it depends on and which listens on that port; a PostgreSQL URL's
login and database must be the ones the postgres service creates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic_settings import BaseSettings

from samtykke.adapters.settings import Settings

from .compose_ports_check import LOOPBACK_HOSTS, listening_ports
from .compose_service_check import (
    Service,
    dependencies,
    environment,
    image_name,
    samtykke_processes,
    services,
)
from .settings_check import env_name

DEFAULT_URL_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432}
ENDPOINT_FIELDS = ("kafka_bootstrap", "registry_url", "database_url")
# the endpoints a command connects to, where it is not all of them
ENDPOINTS_USED: dict[tuple[str, ...], tuple[str, ...]] = {
    ("projections", "provision"): ("database_url",),
    ("suppression", "serve"): ("kafka_bootstrap", "registry_url"),  # its index lives in memory
}


def endpoint_fields(words: Sequence[str]) -> tuple[str, ...]:
    used = (fields for command, fields in ENDPOINTS_USED.items() if tuple(words[: len(command)]) == command)
    return next(used, ENDPOINT_FIELDS)


def check_endpoints(compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings) -> list[str]:
    """Kafka, registry and database addresses point at a service, on a port it listens on."""
    known = services(compose)
    problems: list[str] = []
    for name, words, settings in samtykke_processes(compose, settings_cls):
        for field in endpoint_fields(words):
            value = str(getattr(settings, field))
            for address in value.split(",") if field == "kafka_bootstrap" else [value]:
                problems += [
                    f"{name}: {env_name(settings_cls, field)}: {problem}"
                    for problem in _endpoint_problems(address, known[name], known, settings_cls)
                ]
    return problems


def _endpoint_problems(
    address: str, client: Service, known: Mapping[str, Service], settings_cls: type[BaseSettings]
) -> list[str]:
    url = urlsplit(address if "://" in address else f"//{address}")
    host, port = url.hostname or "", url.port or DEFAULT_URL_PORTS.get(url.scheme)
    if host in LOOPBACK_HOSTS:
        return [f"{host} inside a container is the container itself, not a compose service"]
    if host not in known:
        return [f"host {host!r} is not a compose service"]
    problems: list[str] = []
    listening = listening_ports(known[host], settings_cls)
    if listening is not None and port not in listening:
        problems.append(f"{host} does not listen on port {port}")
    if host not in dependencies(client):
        problems.append(f"uses {host} but does not depend_on it")
    if image_name(known[host]) == "postgres":
        problems += _credential_problems(url.username, url.password, url.path, known[host])
    return problems


# logins the init scripts in deploy/postgres create, with the postgres service variable holding each password
INIT_SCRIPT_LOGINS = {
    "samtykke_consent": "CONSENT_DATABASE_PASSWORD",  # 20-consent.sh
    "samtykke_registry": "REGISTRY_DATABASE_PASSWORD",  # 10-registry.sh
}


def _credential_problems(user: str | None, password: str | None, path: str, postgres: Service) -> list[str]:
    """The URL's login and database exist on the postgres service.

    A URL without a login is a projector's: it logs in as its own role, which
    provisioning creates, so only the database is compared. A login other than
    the owner (POSTGRES_USER) must be one an init script creates.
    """
    env = environment(postgres)
    default_user = env.get("POSTGRES_USER", "postgres")
    problems = (
        []
        if path.lstrip("/") == env.get("POSTGRES_DB", default_user)
        else ["database does not match the postgres service's POSTGRES_DB"]
    )
    if user is None:
        return problems
    if user == default_user:
        password_variable = "POSTGRES_PASSWORD"
    elif user in INIT_SCRIPT_LOGINS:
        password_variable = INIT_SCRIPT_LOGINS[user]
    else:
        return [*problems, f"user {user!r} is neither POSTGRES_USER nor a login deploy/postgres creates"]
    if password != env.get(password_variable):
        problems.append(f"password does not match the postgres service's {password_variable}")
    return problems
