"""Static consistency checks for docker-compose.yml.

No Docker engine runs on the development and CI machines, so the compose file
cannot be started there. These checks read it (and the Dockerfiles it builds)
and compare it with the repository and with `Settings`: every check returns a
list of human-readable problems, empty when the file is consistent.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from samtykke.adapters.settings import Settings

Service = Mapping[str, Any]

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# ports an image listens on when nothing in its environment says otherwise
IMAGE_DEFAULT_PORTS = {"postgres": 5432, "apicurio/apicurio-registry": 8080}
DEFAULT_URL_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432}

_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<plain>\w+)"
)
_LOCAL_PORT = re.compile(r"\b(?:localhost|127\.0\.0\.1):(\d+)")


def load_compose(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as stream:
        data = yaml.safe_load(stream)
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ValueError(f"{path}: no `services` mapping")
    return data


def check_compose(
    compose: Mapping[str, Any], root: Path, settings_cls: type[BaseSettings] = Settings
) -> list[str]:
    """Every problem found in `compose`, whose relative paths start at `root`."""
    return [
        *check_builds(compose, root),
        *check_depends_on(compose),
        *check_volumes(compose, root),
        *check_samtykke_environment(compose, settings_cls),
        *check_ports(compose, settings_cls),
        *check_kafka_advertised_listeners(compose),
        *check_endpoints(compose, settings_cls),
    ]


# -- reading a service ------------------------------------------------------------


def interpolate(value: object) -> str:
    """Compose's `${VAR:-default}` syntax, resolved as if no variable were set."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("op") in {"-", ":-"}:
            return match.group("arg") or ""
        return ""  # unset without a default (or `:+`, `:?`): compose substitutes nothing

    return _INTERPOLATION.sub(replace, str(value))


def services(compose: Mapping[str, Any]) -> dict[str, Service]:
    return dict(compose.get("services") or {})


def environment(service: Service) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): interpolate(value) for key, value in env.items()}


def command_words(service: Service) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(word) for word in command]


def published_ports(service: Service) -> list[tuple[int | None, int]]:
    """(host port, container port) of each `ports` entry: "[ip:][host:]container[/proto]"."""
    ports: list[tuple[int | None, int]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, Mapping):
            published = entry.get("published")
            ports.append((int(published) if published else None, int(entry["target"])))
            continue
        parts = interpolate(entry).split("/")[0].rsplit(":", 2)
        host = parts[-2] if len(parts) > 1 and parts[-2] else None
        ports.append((int(host) if host else None, int(parts[-1])))
    return ports


def published_container_ports(service: Service) -> list[int]:
    return [container for _, container in published_ports(service)]


def healthcheck_ports(service: Service) -> set[int]:
    test = (service.get("healthcheck") or {}).get("test") or []
    text = test if isinstance(test, str) else " ".join(map(str, test))
    return {int(port) for port in _LOCAL_PORT.findall(text)}


def dependencies(service: Service) -> dict[str, str | None]:
    """Each service this one depends on, with its start condition."""
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return {str(name): None for name in depends}
    return {str(name): (spec or {}).get("condition") for name, spec in depends.items()}


def is_samtykke_service(service: Service, prefix: str = "SAMTYKKE_") -> bool:
    return any(key.startswith(prefix) for key in environment(service))


def _image_name(service: Service) -> str:
    return str(service.get("image") or "").rsplit(":", 1)[0]


def _env_prefix(settings_cls: type[BaseSettings]) -> str:
    return str(settings_cls.model_config.get("env_prefix", ""))


def _env_name(settings_cls: type[BaseSettings], field: str) -> str:
    return f"{_env_prefix(settings_cls)}{field}".upper()


# -- builds, dependencies, volumes ------------------------------------------------


def check_builds(compose: Mapping[str, Any], root: Path) -> list[str]:
    problems: list[str] = []
    for name, service in services(compose).items():
        build = service.get("build")
        if build is None:
            if not service.get("image"):
                problems.append(f"{name}: has neither an image nor a build")
            continue
        spec = {"context": build} if isinstance(build, str) else build
        context = root / str(spec.get("context", "."))
        dockerfile = context / str(spec.get("dockerfile", "Dockerfile"))
        if not dockerfile.is_file():
            problems.append(f"{name}: Dockerfile {dockerfile.relative_to(root)} does not exist")
            continue
        problems += [f"{name}: {p}" for p in check_dockerfile(dockerfile, context)]
        entrypoint = dockerfile_entrypoint(dockerfile)
        words = command_words(service)
        if entrypoint and words and words[0] == Path(entrypoint[0]).name:
            problems.append(
                f"{name}: command repeats the entrypoint {entrypoint[0]!r}; drop its first word"
            )
    return problems


def dockerfile_entrypoint(dockerfile: Path) -> list[str]:
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if line.strip().upper().startswith("ENTRYPOINT"):
            value = line.strip()[len("ENTRYPOINT") :].strip()
            words = json.loads(value) if value.startswith("[") else value.split()
            return [str(word) for word in words]
    return []


def check_dockerfile(dockerfile: Path, context: Path) -> list[str]:
    """Every COPY source exists in the build context and is not left out by .dockerignore."""
    ignored = _dockerignore_patterns(context)
    problems: list[str] = []
    for sources in _copy_sources(dockerfile):
        for source in sources:
            path = source.rstrip("/")
            if not (context / path).exists():
                problems.append(f"COPY source {source} does not exist in the build context")
            elif any(Path(path).match(pattern) for pattern in ignored):
                problems.append(f"COPY source {source} is excluded by .dockerignore")
    return problems


def _copy_sources(dockerfile: Path) -> Iterator[list[str]]:
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if not words or words[0].upper() not in {"COPY", "ADD"}:
            continue
        if any(word.startswith("--from") for word in words):
            continue  # copies from another stage, not from the context
        args = [word for word in words[1:] if not word.startswith("--")]
        yield args[:-1]


def _dockerignore_patterns(context: Path) -> list[str]:
    """Exclusions, simplified: matched against the end of a path; `!` re-includes are ignored."""
    ignore_file = context / ".dockerignore"
    if not ignore_file.is_file():
        return []
    lines = (line.strip() for line in ignore_file.read_text(encoding="utf-8").splitlines())
    return [
        line.rstrip("/").removeprefix("**/")
        for line in lines
        if line and not line.startswith(("#", "!"))
    ]


def check_depends_on(compose: Mapping[str, Any]) -> list[str]:
    known = services(compose)
    problems: list[str] = []
    for name, service in known.items():
        for target, condition in dependencies(service).items():
            if target not in known:
                problems.append(f"{name}: depends_on unknown service {target!r}")
            elif condition == "service_healthy" and not known[target].get("healthcheck"):
                problems.append(
                    f"{name}: waits for {target} to be healthy, but it has no healthcheck"
                )
    return problems


def check_volumes(compose: Mapping[str, Any], root: Path) -> list[str]:
    declared = set(compose.get("volumes") or {})
    problems: list[str] = []
    for name, service in services(compose).items():
        for entry in service.get("volumes") or []:
            if isinstance(entry, Mapping):
                kind, source = entry.get("type", "volume"), str(entry.get("source", ""))
            else:
                source = interpolate(entry).split(":", 1)[0]
                kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            if kind == "bind" and source.startswith(".") and not (root / source).exists():
                problems.append(f"{name}: bind-mounted host path {source} does not exist")
            elif kind == "volume" and source and source not in declared:
                problems.append(f"{name}: named volume {source!r} is not declared under volumes")
    return problems


# -- settings, ports, endpoints ---------------------------------------------------


def settings_values(
    service: Service, settings_cls: type[BaseSettings]
) -> tuple[dict[str, Any], list[str]]:
    """The service's SAMTYKKE_* variables as Settings field values, and the unknown names."""
    fields = settings_cls.model_fields
    by_env = {_env_name(settings_cls, field): field for field in fields}
    values: dict[str, Any] = {}
    unknown: list[str] = []
    for key, raw in environment(service).items():
        if not key.startswith(_env_prefix(settings_cls)):
            continue
        field = by_env.get(key.upper())
        if field is None:
            unknown.append(key)
            continue
        # pydantic-settings reads complex fields (dicts, lists) from the environment as JSON
        is_complex = typing.get_origin(fields[field].annotation) in {dict, list, set, tuple}
        values[field] = json.loads(raw) if is_complex else raw
    return values, unknown


def effective_settings(service: Service, settings_cls: type[BaseSettings]) -> BaseSettings | None:
    """The settings the service starts with (its variables over the defaults); None if invalid."""
    values, _ = settings_values(service, settings_cls)
    try:
        return settings_cls.model_validate(values)  # validates without reading this process's env
    except (ValidationError, ValueError):
        return None


def check_samtykke_environment(
    compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings
) -> list[str]:
    """Every SAMTYKKE_* variable names a Settings field and holds a value it accepts."""
    problems: list[str] = []
    for name, service in services(compose).items():
        try:
            values, unknown = settings_values(service, settings_cls)
            settings_cls.model_validate(values)
        except json.JSONDecodeError as error:
            problems.append(f"{name}: a JSON setting does not parse: {error}")
            continue
        except ValidationError as error:
            for detail in error.errors():
                field = str(detail["loc"][0]) if detail["loc"] else "?"
                problems.append(f"{name}: {_env_name(settings_cls, field)}: {detail['msg']}")
        problems += [f"{name}: {key} is not a Settings field" for key in unknown]
    return problems


def port_field(service: Service, settings_cls: type[BaseSettings]) -> str | None:
    """The `<component>_port` setting named by the command (`consent serve` → consent_port)."""
    fields = settings_cls.model_fields
    return next((f"{w}_port" for w in command_words(service) if f"{w}_port" in fields), None)


def listening_ports(
    service: Service, settings_cls: type[BaseSettings] = Settings
) -> set[int] | None:
    """Ports the service listens on inside its container; None when that cannot be told."""
    if is_samtykke_service(service, _env_prefix(settings_cls)):
        settings = effective_settings(service, settings_cls)
        field = port_field(service, settings_cls)
        if settings is None:
            return None  # its invalid values are reported by check_samtykke_environment
        return {int(getattr(settings, field))} if field else set()
    if _image_name(service) == "apache/kafka":
        listeners = environment(service).get("KAFKA_LISTENERS", "").split(",")
        return {int(address.rsplit(":", 1)[1]) for address in listeners if ":" in address}
    default = IMAGE_DEFAULT_PORTS.get(_image_name(service))
    return {default} if default else None


def check_ports(
    compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings
) -> list[str]:
    """Published container ports and healthcheck ports are ports the service listens on."""
    problems: list[str] = []
    for name, service in services(compose).items():
        listening = listening_ports(service, settings_cls)
        if listening is None:
            continue
        shown = ", ".join(map(str, sorted(listening))) or "no port (no <command>_port setting)"
        published = published_container_ports(service)
        for port in published:
            if port not in listening:
                problems.append(f"{name}: publishes container port {port} but listens on {shown}")
        for port in sorted(healthcheck_ports(service) - listening):
            problems.append(f"{name}: healthcheck probes port {port} but it listens on {shown}")
        samtykke = is_samtykke_service(service, _env_prefix(settings_cls))
        settings = effective_settings(service, settings_cls) if samtykke else None
        host = getattr(settings, "http_host", None)
        if published and host in LOOPBACK_HOSTS:
            problems.append(
                f"{name}: publishes ports but binds {host} only; set SAMTYKKE_HTTP_HOST=0.0.0.0"
            )
    return problems


def check_kafka_advertised_listeners(compose: Mapping[str, Any]) -> list[str]:
    """A listener advertised to the host is published on the same host port.

    Clients on the host bootstrap through the published port and then connect to
    the advertised address, so the two ports must be equal.
    """
    problems: list[str] = []
    for name, service in services(compose).items():
        if _image_name(service) != "apache/kafka":
            continue
        host_ports = {host for host, _ in published_ports(service) if host is not None}
        advertised = environment(service).get("KAFKA_ADVERTISED_LISTENERS", "").split(",")
        for address in advertised:
            url = urlsplit(address.strip())
            if url.hostname in LOOPBACK_HOSTS and url.port not in host_ports:
                problems.append(
                    f"{name}: advertises {url.hostname}:{url.port} to the host, "
                    "but does not publish that host port"
                )
    return problems


ENDPOINT_FIELDS = ("kafka_bootstrap", "registry_url", "database_url")


def check_endpoints(
    compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings
) -> list[str]:
    """Kafka, registry and database addresses point at a service, on a port it listens on."""
    known = services(compose)
    problems: list[str] = []
    for name, service in known.items():
        settings = effective_settings(service, settings_cls)
        if settings is None or not is_samtykke_service(service, _env_prefix(settings_cls)):
            continue
        for field in ENDPOINT_FIELDS:
            value = str(getattr(settings, field))
            for address in value.split(",") if field == "kafka_bootstrap" else [value]:
                problems += [
                    f"{name}: {_env_name(settings_cls, field)}: {problem}"
                    for problem in _endpoint_problems(address, service, known, settings_cls)
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
    if _image_name(known[host]) == "postgres":
        problems += _credential_problems(url.username, url.password, url.path, known[host])
    return problems


def _credential_problems(
    user: str | None, password: str | None, path: str, postgres: Service
) -> list[str]:
    env = environment(postgres)
    default_user = env.get("POSTGRES_USER", "postgres")
    expected = [
        ("user", user, "POSTGRES_USER", default_user),
        ("password", password, "POSTGRES_PASSWORD", None),
        ("database", path.lstrip("/"), "POSTGRES_DB", default_user),
    ]
    return [
        f"{part} does not match the postgres service's {variable}"
        for part, actual, variable, default in expected
        if actual != env.get(variable, default)
    ]
