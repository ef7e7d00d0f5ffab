"""The security docker-compose.yml must keep: an encrypted, authorising broker, a login per client.

- Every samtykke service that uses Kafka connects over TLS, logs in with its own user and a
  password variable (never a literal), trusts a CA file on a mounted volume, and waits for the
  one-shot service that gives its user that same password (`SCRAM_PASSWORD_<USER>`).
- The broker serves no plaintext listener and authorises with ACLs (`allow.everyone.if.no.acl.found`
  left false).
- No long-running service logs in to PostgreSQL as the superuser (POSTGRES_USER): that login is for
  one-shot provisioning; two projectors never share a role password variable.
- `SAMTYKKE_ALLOW_DEVELOPMENT_SECRETS` lets services keep published development secrets; it is
  acceptable only while every port is published on a loopback address.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic_settings import BaseSettings

from samtykke.adapters.settings import Settings

from .compose_endpoints_check import endpoint_fields
from .compose_ports_check import LOOPBACK_HOSTS
from .compose_service_check import (
    Service,
    command_words,
    dependencies,
    environment,
    image_name,
    interpolate,
    mounts,
    one_shot_services,
    samtykke_processes,
    services,
)
from .settings_check import env_name

PLAINTEXT_PROTOCOLS = frozenset({"PLAINTEXT", "SASL_PLAINTEXT"})
ALLOW_FLAG = "SAMTYKKE_ALLOW_DEVELOPMENT_SECRETS"
SCRAM_PREFIX = "SCRAM_PASSWORD_"
_VARIABLE = re.compile(r"\$\{(\w+)")


def check_security(compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings) -> list[str]:
    return [
        *check_kafka_clients(compose, settings_cls),
        *check_kafka_broker(compose),
        *check_database_logins(compose, settings_cls),
        *check_projector_passwords(compose),
        *check_development_secrets_flag(compose),
    ]


def raw_environment(service: Service) -> dict[str, str]:
    """The environment as written, `${VAR:-default}` kept: which variable a value comes from."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): str(value) for key, value in env.items()}


def _scram_user_variable(user: str) -> str:
    return SCRAM_PREFIX + user.upper().replace("-", "_")


# -- Kafka clients -----------------------------------------------------------------------


def check_kafka_clients(compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings) -> list[str]:
    known = services(compose)
    problems: list[str] = []
    for name, words, settings in samtykke_processes(compose, settings_cls):
        if "kafka_bootstrap" not in endpoint_fields(words):
            continue
        protocol = str(getattr(settings, "kafka_security_protocol", ""))
        variable = env_name(settings_cls, "kafka_security_protocol")
        if protocol in PLAINTEXT_PROTOCOLS:
            problems.append(f"{name}: connects to Kafka unencrypted ({variable}={protocol}); use SASL_SSL")
            continue
        problems += [f"{name}: {p}" for p in _ca_problems(known[name], settings, settings_cls)]
        if protocol.startswith("SASL_"):
            problems += [f"{name}: {p}" for p in _login_problems(name, known, settings_cls)]
    return problems


def _ca_problems(service: Service, settings: BaseSettings, settings_cls: type[BaseSettings]) -> list[str]:
    ca_file = getattr(settings, "kafka_ca_file", None)
    if ca_file is None:
        return [f"sets no {env_name(settings_cls, 'kafka_ca_file')}: it cannot verify the broker's certificate"]
    targets = [mount.target.rstrip("/") for mount in mounts(service)]
    if not any(str(ca_file).startswith(f"{target}/") for target in targets if target):
        return [f"{env_name(settings_cls, 'kafka_ca_file')} {ca_file} is on no volume the service mounts"]
    return []


def _login_problems(name: str, known: Mapping[str, Service], settings_cls: type[BaseSettings]) -> list[str]:
    raw = raw_environment(known[name])
    user_variable = env_name(settings_cls, "kafka_username")
    password_variable = env_name(settings_cls, "kafka_password")
    user = interpolate(raw.get(user_variable, ""))
    password = raw.get(password_variable, "")
    if not user or not _VARIABLE.search(password):
        return [f"logs in to Kafka without its own {user_variable} and a {password_variable} from a variable"]
    givers = {
        giver: raw_environment(service).get(_scram_user_variable(user))
        for giver, service in known.items()
        if _scram_user_variable(user) in raw_environment(service)
    }
    if not givers:
        return [f"no service creates its Kafka user {user!r} ({_scram_user_variable(user)})"]
    problems: list[str] = []
    for giver, given in givers.items():
        if given != password:
            problems.append(f"{giver} gives Kafka user {user!r} another password than its {password_variable}")
        if dependencies(known[name]).get(giver) != "service_completed_successfully":
            problems.append(f"does not wait for {giver}, which creates its Kafka user, to complete successfully")
    return problems


# -- the broker --------------------------------------------------------------------------


def check_kafka_broker(compose: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for name, service in services(compose).items():
        env = environment(service)
        if image_name(service) != "apache/kafka" or "broker" not in env.get("KAFKA_PROCESS_ROLES", ""):
            continue
        protocols = dict(
            entry.split(":", 1) for entry in env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "").split(",") if entry
        )
        for listener in filter(None, env.get("KAFKA_LISTENERS", "").split(",")):
            listener_name = listener.split("://", 1)[0]
            protocol = protocols.get(listener_name, listener_name)
            if protocol in PLAINTEXT_PROTOCOLS:
                problems.append(f"{name}: listener {listener_name} serves {protocol}; every listener must use TLS")
        if not env.get("KAFKA_AUTHORIZER_CLASS_NAME"):
            problems.append(f"{name}: has no authorizer (KAFKA_AUTHORIZER_CLASS_NAME): any client may do anything")
        if env.get("KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND", "false").lower() != "false":
            problems.append(f"{name}: KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND lets anyone use a resource without ACLs")
    return problems


# -- PostgreSQL ----------------------------------------------------------------------------


def check_database_logins(compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings) -> list[str]:
    """Only one-shot services log in as the superuser the postgres image creates."""
    known = services(compose)
    superusers = {
        environment(service).get("POSTGRES_USER", "postgres"): host
        for host, service in known.items()
        if image_name(service) == "postgres"
    }
    one_shot = one_shot_services(compose)
    problems: list[str] = []
    for name, _, settings in samtykke_processes(compose, settings_cls):
        url = urlsplit(str(getattr(settings, "database_url", "")))
        if name in one_shot or superusers.get(url.username or "") != url.hostname:
            continue
        problems.append(
            f"{name}: logs in to PostgreSQL as the superuser {url.username!r} (POSTGRES_USER); "
            "give it a login of its own (deploy/postgres)"
        )
    return problems


def check_projector_passwords(compose: Mapping[str, Any]) -> list[str]:
    """Each projector's role password comes from a variable of its own."""
    variable = env_name(Settings, "projection_role_password")
    by_source: dict[str, list[str]] = {}
    for name, service in services(compose).items():
        if command_words(service)[:2] != ["projections", "run"]:
            continue
        raw = raw_environment(service).get(variable, "")
        source = ", ".join(_VARIABLE.findall(raw)) or raw
        by_source.setdefault(source, []).append(name)
    return [
        f"{', '.join(names)}: share the role password {source or '(unset)'}; give each projector its own"
        for source, names in by_source.items()
        if len(names) > 1
    ]


# -- development secrets -------------------------------------------------------------------


def published_addresses(service: Service) -> list[tuple[str, str]]:
    """(host address, entry) of each published port; compose's default address is 0.0.0.0."""
    found: list[tuple[str, str]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, Mapping):
            found.append((str(entry.get("host_ip") or "0.0.0.0"), str(entry)))
            continue
        text = interpolate(entry).split("/")[0]
        parts = text.rsplit(":", 2)
        address = parts[0].strip("[]") if len(parts) == 3 and parts[0] else "0.0.0.0"
        found.append((address, text))
    return found


def check_development_secrets_flag(compose: Mapping[str, Any]) -> list[str]:
    known = services(compose)
    allowing = [name for name, service in known.items() if environment(service).get(ALLOW_FLAG, "").lower() == "true"]
    if not allowing:
        return []
    return [
        f"{name}: publishes {entry} beyond loopback, while {', '.join(allowing)} set {ALLOW_FLAG}=true; "
        "publish on 127.0.0.1 only"
        for name, service in known.items()
        for address, entry in published_addresses(service)
        if address not in LOOPBACK_HOSTS
    ]
