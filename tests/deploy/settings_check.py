"""Environment variables read as `Settings`, and the settings processes must share.

A compose service, a Dockerfile's ENV lines and a Kubernetes container all hand
SAMTYKKE_* variables to a process. These helpers name the variable of a field,
validate variables against `Settings`, build the settings a process starts
with, and report processes that disagree on a value they must share.
"""

from __future__ import annotations

import json
import typing
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from samtykke.adapters.settings import Settings


def env_prefix(settings_cls: type[BaseSettings]) -> str:
    return str(settings_cls.model_config.get("env_prefix", ""))


def env_name(settings_cls: type[BaseSettings], field: str) -> str:
    return f"{env_prefix(settings_cls)}{field}".upper()


def settings_values(env: Mapping[str, str], settings_cls: type[BaseSettings]) -> tuple[dict[str, Any], list[str]]:
    """The prefixed variables of `env` as Settings field values, and the unknown names."""
    fields = settings_cls.model_fields
    by_env = {env_name(settings_cls, field): field for field in fields}
    values: dict[str, Any] = {}
    unknown: list[str] = []
    for key, raw in env.items():
        if not key.startswith(env_prefix(settings_cls)):
            continue
        field = by_env.get(key.upper())
        if field is None:
            unknown.append(key)
            continue
        # pydantic-settings reads complex fields (dicts, lists) from the environment as JSON
        is_complex = typing.get_origin(fields[field].annotation) in {dict, list, set, tuple}
        values[field] = json.loads(raw) if is_complex else raw
    return values, unknown


def settings_problems(env: Mapping[str, str], settings_cls: type[BaseSettings]) -> list[str]:
    """Every prefixed variable names a Settings field and holds a value it accepts."""
    try:
        values, unknown = settings_values(env, settings_cls)
        settings_cls.model_validate(values)
    except json.JSONDecodeError as error:
        return [f"a JSON setting does not parse: {error}"]
    except ValidationError as error:
        return [
            f"{env_name(settings_cls, str(d['loc'][0]) if d['loc'] else '?')}: {d['msg']}" for d in error.errors()
        ] + [f"{key} is not a Settings field" for key in unknown]
    return [f"{key} is not a Settings field" for key in unknown]


def settings_from_env(env: Mapping[str, str], settings_cls: type[BaseSettings]) -> BaseSettings | None:
    """The settings a process starts with (its variables over the defaults); None if invalid."""
    try:
        values, _ = settings_values(env, settings_cls)
        return _without_ambient_env(settings_cls)(**values)
    except (ValidationError, ValueError):
        return None


def _without_ambient_env(settings_cls: type[BaseSettings]) -> type[BaseSettings]:
    """The settings class reading only what it is given: a SAMTYKKE_* variable of the process
    running the check (a developer's port override) must not leak into the checked service."""

    class Given(settings_cls):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: Any, *_: Any, **__: Any
        ) -> tuple[Any, ...]:
            return (init_settings,)

    return Given


# -- settings several processes share ------------------------------------------------


def _server_and_database(url: object) -> str:
    """A database URL without its login: projectors connect with their own role."""
    parts = urlsplit(str(url))
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


class SharedSetting(NamedTuple):
    commands: tuple[tuple[str, ...], ...]  # command prefixes of the processes that use it
    reason: str
    compared: Callable[[object], object] = str


# settings whose value every process that uses it must agree on
SHARED_SETTINGS: dict[str, SharedSetting] = {
    "identifier_hash_key": SharedSetting(
        (("consent", "serve"), ("suppression", "serve")),
        "the suppression index matches the consent service's identifier hashes",
    ),
    "database_url": SharedSetting(
        (("consent", "serve"), ("projections",)), "every component uses one PostgreSQL database", _server_and_database
    ),
    **{
        field: SharedSetting(
            (("consent", "serve"), ("projections", "run"), ("suppression", "serve")),
            "every component uses the same Kafka, registry and topics",
        )
        for field in ("kafka_bootstrap", "registry_url", "topic_changes", "topic_subjects", "topic_partitions")
    },
}


def projector_password_problems(processes: Sequence[tuple[str, Sequence[str], BaseSettings]]) -> list[str]:
    """Each projector logs in with the password provisioning sets on its domain's role.

    Both sides choose it as `Domain.password` does: the domain's entry of
    `projection_role_passwords`, else `projection_role_password`. So one password shared by
    every projector (deploy/k8s) and one per projector (docker-compose.yml) are both checked.
    """
    from samtykke.projections.domains import DOMAINS

    provisioners = [(name, settings) for name, words, settings in processes if list(words[:2]) == PROVISION]
    problems: list[str] = []
    for name, words, settings in processes:
        if list(words[:2]) != RUN or len(words) < 3 or words[2] not in DOMAINS:
            continue
        domain = DOMAINS[words[2]]
        if not isinstance(settings, Settings):
            continue
        differing = [
            provisioner
            for provisioner, provisioned in provisioners
            if isinstance(provisioned, Settings) and domain.password(provisioned) != domain.password(settings)
        ]
        if differing:
            problems.append(
                f"{name}: its role password for {domain.name} differs from the one {', '.join(differing)} sets "
                f"({env_name(Settings, 'projection_role_password')} or its entry in "
                f"{env_name(Settings, 'projection_role_passwords')}); projectors log in with the password "
                "provisioning set on their roles"
            )
    return problems


PROVISION = ["projections", "provision"]
RUN = ["projections", "run"]


def shared_settings_problems(
    processes: Sequence[tuple[str, Sequence[str], BaseSettings]],
    settings_cls: type[BaseSettings] = Settings,
) -> list[str]:
    """(name, command words, settings) of each process: shared settings agree between them."""
    problems: list[str] = projector_password_problems(processes)
    for field, shared in SHARED_SETTINGS.items():
        users = [
            (name, shared.compared(getattr(settings, field)))
            for name, words, settings in processes
            if any(list(words[: len(prefix)]) == list(prefix) for prefix in shared.commands)
        ]
        if len({repr(value) for _, value in users}) < 2:
            continue
        common, _ = Counter(repr(value) for _, value in users).most_common(1)[0]
        agreeing = [name for name, value in users if repr(value) == common]
        problems += [
            f"{name}: {env_name(settings_cls, field)} differs from {', '.join(agreeing)}'s; {shared.reason}"
            for name, value in users
            if repr(value) != common
        ]
    return problems
