"""Reading one docker-compose.yml service as compose would run it.

Its environment (with `${VAR:-default}` resolved as if no variable were set),
command, published ports, healthcheck ports, dependencies and mounts, and for a
samtykke service the settings and command it starts with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from pydantic_settings import BaseSettings

from .command_check import samtykke_command_problem
from .settings_check import env_prefix, settings_from_env

Service = Mapping[str, Any]

_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<braced>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<plain>\w+)")
_LOCAL_PORT = re.compile(r"\b(?:localhost|127\.0\.0\.1):(\d+)")


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


def one_shot_services(compose: Mapping[str, Any]) -> set[str]:
    """Services another one waits for to complete: they run once and exit."""
    return {
        target
        for service in services(compose).values()
        for target, condition in dependencies(service).items()
        if condition == "service_completed_successfully"
    }


class Mount(NamedTuple):
    kind: str  # "bind" or "volume"
    source: str
    target: str


def mounts(service: Service) -> list[Mount]:
    found: list[Mount] = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, Mapping):
            source = str(entry.get("source", ""))
            found.append(Mount(entry.get("type", "volume"), source, str(entry.get("target", ""))))
            continue
        source, _, rest = interpolate(entry).partition(":")
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        found.append(Mount(kind, source, rest.split(":", 1)[0]))
    return found


def image_name(service: Service) -> str:
    return str(service.get("image") or "").rsplit(":", 1)[0]


# -- samtykke services ----------------------------------------------------------------


def is_samtykke_service(service: Service, prefix: str = "SAMTYKKE_") -> bool:
    return any(key.startswith(prefix) for key in environment(service))


def effective_settings(service: Service, settings_cls: type[BaseSettings]) -> BaseSettings | None:
    return settings_from_env(environment(service), settings_cls)


def samtykke_processes(
    compose: Mapping[str, Any], settings_cls: type[BaseSettings]
) -> list[tuple[str, list[str], BaseSettings]]:
    """(name, command words, settings) of every samtykke service with a valid command and settings."""
    found: list[tuple[str, list[str], BaseSettings]] = []
    for name, service in services(compose).items():
        settings = effective_settings(service, settings_cls)
        words = command_words(service)
        if not is_samtykke_service(service, env_prefix(settings_cls)) or settings is None:
            continue
        if samtykke_command_problem(words) is None:  # else reported by check_commands
            found.append((name, words, settings))
    return found
