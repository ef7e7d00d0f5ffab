"""Static consistency checks for docker-compose.yml.

No Docker engine runs on the development and CI machines, so the compose file
cannot be started there. These checks read it (and the Dockerfiles it builds,
and the Prometheus configuration it mounts) and compare it with the repository,
with `Settings` and with the real `samtykke` command line: every check returns
a list of human-readable problems, empty when the file is consistent.

The pieces that do not depend on compose (a Dockerfile's instructions, whether
an argument list is a `samtykke` command, which port it serves on, settings that
several services must share) are used by k8s_check.py as well.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import typing
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple, cast
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from samtykke.adapters.settings import Settings
from samtykke.cli import build_parser
from samtykke.projections.domains import DOMAINS

Service = Mapping[str, Any]

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# ports an image listens on when nothing in its environment says otherwise
IMAGE_DEFAULT_PORTS = {
    "postgres": 5432,
    "apicurio/apicurio-registry": 8080,
    "prom/prometheus": 9090,
    "grafana/grafana": 3000,
}
DEFAULT_URL_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432}
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
LONG_RUNNING_RESTARTS = frozenset({"always", "unless-stopped", "on-failure"})

# A service running the first command must wait for one running the second to complete.
PREREQUISITES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("projections", "run"): ("projections", "provision"),
}

_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<plain>\w+)"
)
_LOCAL_PORT = re.compile(r"\b(?:localhost|127\.0\.0\.1):(\d+)")


def load_compose(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as stream:
        data = yaml.safe_load(stream)
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ValueError(f"{path}: no `services` mapping")
    # YAML aliases share one object between services; a plain copy lets a test edit one
    return cast(dict[str, Any], json.loads(json.dumps(data)))


def check_compose(
    compose: Mapping[str, Any], root: Path, settings_cls: type[BaseSettings] = Settings
) -> list[str]:
    """Every problem found in `compose`, whose relative paths start at `root`."""
    return [
        *check_builds(compose, root, settings_cls),
        *check_images(compose),
        *check_depends_on(compose),
        *check_lifecycle(compose),
        *check_start_order(compose),
        *check_volumes(compose, root),
        *check_samtykke_environment(compose, settings_cls),
        *check_commands(compose, settings_cls),
        *check_ports(compose, settings_cls),
        *check_shared_settings(compose, settings_cls),
        *check_kafka_advertised_listeners(compose),
        *check_endpoints(compose, settings_cls),
        *check_prometheus_targets(compose, root, settings_cls),
    ]


# -- the samtykke command line and settings (shared with k8s_check) ---------------


@lru_cache(maxsize=1)
def _samtykke_parser() -> Any:
    return build_parser()


def samtykke_command_problem(words: Sequence[str]) -> str | None:
    """Why the real parser rejects `samtykke <words>`; None when it accepts them."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            _samtykke_parser().parse_args(list(words))
    except SystemExit as stop:
        if stop.code == 0:
            return "it only prints the help"
        lines = errors.getvalue().strip().splitlines() or ["rejected"]
        return lines[-1].split("error: ", 1)[-1]
    return None


def command_port(words: Sequence[str], settings: BaseSettings) -> int | None:
    """The port `samtykke <words>` serves HTTP on (/metrics, /healthz, /ready); None if none."""
    if list(words[:2]) == ["projections", "run"] and len(words) > 2 and words[2] in DOMAINS:
        return DOMAINS[words[2]].web_port(cast(Settings, settings))
    fields = type(settings).model_fields
    field = next((f"{word}_port" for word in words if f"{word}_port" in fields), None)
    return int(getattr(settings, field)) if field else None


def env_prefix(settings_cls: type[BaseSettings]) -> str:
    return str(settings_cls.model_config.get("env_prefix", ""))


def env_name(settings_cls: type[BaseSettings], field: str) -> str:
    return f"{env_prefix(settings_cls)}{field}".upper()


def settings_values(
    env: Mapping[str, str], settings_cls: type[BaseSettings]
) -> tuple[dict[str, Any], list[str]]:
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
            f"{env_name(settings_cls, str(d['loc'][0]) if d['loc'] else '?')}: {d['msg']}"
            for d in error.errors()
        ] + [f"{key} is not a Settings field" for key in unknown]
    return [f"{key} is not a Settings field" for key in unknown]


def settings_from_env(
    env: Mapping[str, str], settings_cls: type[BaseSettings]
) -> BaseSettings | None:
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
        def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: Any,
                                       *_: Any, **__: Any) -> tuple[Any, ...]:
            return (init_settings,)

    return Given


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
        "the suppression index matches the consent service's identifier hashes"),
    "projection_role_password": SharedSetting(
        (("projections", "provision"), ("projections", "run")),
        "projectors log in with the password provisioning set on their roles"),
    "database_url": SharedSetting(
        (("consent", "serve"), ("projections",)),
        "every component uses one PostgreSQL database", _server_and_database),
    **{
        field: SharedSetting(
            (("consent", "serve"), ("projections", "run"), ("suppression", "serve")),
            "every component uses the same Kafka, registry and topics")
        for field in ("kafka_bootstrap", "registry_url", "topic_changes", "topic_subjects",
                      "topic_partitions")
    },
}


def shared_settings_problems(
    processes: Sequence[tuple[str, Sequence[str], BaseSettings]],
    settings_cls: type[BaseSettings] = Settings,
) -> list[str]:
    """(name, command words, settings) of each process: shared settings agree between them."""
    problems: list[str] = []
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
            f"{name}: {env_name(settings_cls, field)} differs from {', '.join(agreeing)}'s; "
            f"{shared.reason}"
            for name, value in users
            if repr(value) != common
        ]
    return problems


# -- Dockerfiles (shared with k8s_check) --------------------------------------------


def dockerfile_instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments left out."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def dockerfile_entrypoint(dockerfile: Path) -> list[str]:
    for keyword, value in dockerfile_instructions(dockerfile):
        if keyword == "ENTRYPOINT":
            words = json.loads(value) if value.startswith("[") else value.split()
            return [str(word) for word in words]
    return []


def dockerfile_env(dockerfile: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, value in dockerfile_instructions(dockerfile):
        if keyword != "ENV":
            continue
        words = shlex.split(value)
        if words and "=" not in words[0]:  # the legacy `ENV KEY value` form
            env[words[0]] = " ".join(words[1:])
        else:
            for word in words:
                key, _, assigned = word.partition("=")
                env[key] = assigned
    return env


def dockerfile_exposed(dockerfile: Path) -> set[int]:
    return {
        int(port.split("/")[0])
        for keyword, value in dockerfile_instructions(dockerfile)
        if keyword == "EXPOSE"
        for port in value.split()
    }


def dockerfile_user(dockerfile: Path) -> str | None:
    """The user (`uid[:gid]` or name) the image runs as; None when it stays root."""
    users = [value for keyword, value in dockerfile_instructions(dockerfile) if keyword == "USER"]
    return users[-1] if users else None


def check_dockerfile(
    dockerfile: Path, context: Path, settings_cls: type[BaseSettings] = Settings
) -> list[str]:
    """COPY sources exist and are sent; image settings are valid and their folders exist."""
    return [
        *_copy_problems(dockerfile, context),
        *(f"ENV {p}" for p in settings_problems(dockerfile_env(dockerfile), settings_cls)),
        *_image_path_problems(dockerfile, context, settings_cls),
    ]


def _copy_problems(dockerfile: Path, context: Path) -> list[str]:
    ignored = _dockerignore_patterns(context)
    problems: list[str] = []
    for sources, _, _ in _copies(dockerfile):
        for source in sources:
            path = source.rstrip("/")
            if not (context / path).exists():
                problems.append(f"COPY source {source} does not exist in the build context")
            elif any(Path(path).match(pattern) for pattern in ignored):
                problems.append(f"COPY source {source} is excluded by .dockerignore")
    return problems


def _copies(dockerfile: Path) -> Iterator[tuple[list[str], str, str]]:
    """(sources, destination, working directory) of each COPY/ADD from the build context."""
    workdir = "/"
    for keyword, value in dockerfile_instructions(dockerfile):
        if keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / value)
        if keyword not in {"COPY", "ADD"} or "--from" in value:
            continue  # a copy from another stage is not from the context
        args = [word for word in value.split() if not word.startswith("--")]
        yield args[:-1], args[-1], workdir


def _image_path_problems(
    dockerfile: Path, context: Path, settings_cls: type[BaseSettings]
) -> list[str]:
    """A folder an image setting names is copied into the image or created by a RUN."""
    fields = settings_cls.model_fields
    runs = " ".join(value for keyword, value in dockerfile_instructions(dockerfile) if keyword == "RUN")
    problems: list[str] = []
    for key, value in dockerfile_env(dockerfile).items():
        field = key.removeprefix(env_prefix(settings_cls)).lower()
        if field not in fields or fields[field].annotation is not Path:
            continue
        copied = _copied_from(dockerfile, PurePosixPath(value))
        if copied is not None and not (context / copied).exists():
            problems.append(f"ENV {key}={value}: {copied} is not in the build context")
        elif copied is None and value not in runs:
            problems.append(f"ENV {key}={value}: nothing in the image creates {value}")
    return problems


def _copied_from(dockerfile: Path, path: PurePosixPath) -> str | None:
    """The build-context path that ends up at `path` in the image, if a COPY puts it there."""
    for sources, destination, workdir in _copies(dockerfile):
        target = PurePosixPath(workdir) / destination
        if len(sources) == 1 and destination.endswith("/") and path.is_relative_to(target):
            return str(PurePosixPath(sources[0]) / path.relative_to(target))
    return None


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


def is_samtykke_service(service: Service, prefix: str = "SAMTYKKE_") -> bool:
    return any(key.startswith(prefix) for key in environment(service))


def _image_name(service: Service) -> str:
    return str(service.get("image") or "").rsplit(":", 1)[0]


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


# -- builds, images, dependencies, lifecycle, volumes ---------------------------------


def _build_paths(service: Service, root: Path) -> tuple[Path, Path] | None:
    """(context, Dockerfile) of a service that builds its image."""
    build = service.get("build")
    if build is None:
        return None
    spec = {"context": build} if isinstance(build, str) else build
    context = root / str(spec.get("context", "."))
    return context, context / str(spec.get("dockerfile", "Dockerfile"))


def check_builds(
    compose: Mapping[str, Any], root: Path, settings_cls: type[BaseSettings] = Settings
) -> list[str]:
    problems: list[str] = []
    for name, service in services(compose).items():
        paths = _build_paths(service, root)
        if paths is None:
            if not service.get("image"):
                problems.append(f"{name}: has neither an image nor a build")
            continue
        context, dockerfile = paths
        if not dockerfile.is_file():
            problems.append(f"{name}: Dockerfile {dockerfile.relative_to(root)} does not exist")
            continue
        problems += [f"{name}: {p}" for p in check_dockerfile(dockerfile, context, settings_cls)]
        entrypoint = dockerfile_entrypoint(dockerfile)
        words = command_words(service)
        if entrypoint and words and words[0] == Path(entrypoint[0]).name:
            problems.append(
                f"{name}: command repeats the entrypoint {entrypoint[0]!r}; drop its first word"
            )
        exposed = dockerfile_exposed(dockerfile)
        for port in sorted((listening_ports(service, settings_cls) or set()) - exposed):
            problems.append(
                f"{name}: listens on {port}, which {dockerfile.relative_to(root)} does not EXPOSE"
            )
    return problems


def check_images(compose: Mapping[str, Any]) -> list[str]:
    """Services that build the same Dockerfile tag it with the same image name."""
    tags: dict[str, dict[str, str]] = {}
    for name, service in services(compose).items():
        build = service.get("build")
        if build is not None:
            key = json.dumps(build, sort_keys=True)
            tags.setdefault(key, {})[name] = str(service.get("image") or "")
    problems: list[str] = []
    for users in tags.values():
        common, _ = Counter(users.values()).most_common(1)[0]
        problems += [
            f"{name}: tags the shared build as {image!r}, the others as {common!r}"
            for name, image in users.items()
            if image != common
        ]
    return problems


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


def one_shot_services(compose: Mapping[str, Any]) -> set[str]:
    """Services another one waits for to complete: they run once and exit."""
    return {
        target
        for service in services(compose).values()
        for target, condition in dependencies(service).items()
        if condition == "service_completed_successfully"
    }


def check_lifecycle(compose: Mapping[str, Any]) -> list[str]:
    """Long-running services restart and report health; one-shot services are not restarted."""
    one_shot = one_shot_services(compose)
    problems: list[str] = []
    for name, service in services(compose).items():
        restart = str(service.get("restart", "no")).split(":")[0]
        if name in one_shot:
            if restart in {"always", "unless-stopped"}:
                problems.append(
                    f"{name}: others wait for it to complete, but restart: {restart} reruns it"
                )
            continue
        if not service.get("healthcheck"):
            problems.append(f"{name}: long-running but has no healthcheck")
        if restart not in LONG_RUNNING_RESTARTS:
            problems.append(f"{name}: long-running but restart is {restart!r}")
    return problems


def check_start_order(compose: Mapping[str, Any]) -> list[str]:
    """A service whose command needs another command's result waits for it to complete."""
    known = services(compose)
    problems: list[str] = []
    for name, service in known.items():
        words = command_words(service)
        for command, needed in PREREQUISITES.items():
            if tuple(words[: len(command)]) != command:
                continue
            ready = [
                target
                for target, condition in dependencies(service).items()
                if condition == "service_completed_successfully"
                and tuple(command_words(known.get(target, {}))[: len(needed)]) == needed
            ]
            if not ready:
                problems.append(
                    f"{name}: runs `{' '.join(command)}` but does not wait for a "
                    f"`{' '.join(needed)}` service to complete successfully"
                )
    return problems


def check_volumes(compose: Mapping[str, Any], root: Path) -> list[str]:
    declared = set(compose.get("volumes") or {})
    problems: list[str] = []
    for name, service in services(compose).items():
        for mount in mounts(service):
            if mount.kind == "bind" and mount.source.startswith(".") and not (root / mount.source).exists():
                problems.append(f"{name}: bind-mounted host path {mount.source} does not exist")
            elif mount.kind == "volume" and mount.source and mount.source not in declared:
                problems.append(f"{name}: named volume {mount.source!r} is not declared under volumes")
    return problems


# -- settings, commands, ports, endpoints ----------------------------------------------


def check_samtykke_environment(
    compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings
) -> list[str]:
    """Every SAMTYKKE_* variable names a Settings field and holds a value it accepts."""
    return [
        f"{name}: {problem}"
        for name, service in services(compose).items()
        for problem in settings_problems(environment(service), settings_cls)
    ]


def check_commands(
    compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings
) -> list[str]:
    """Every samtykke service runs a command the real `samtykke` parser accepts."""
    problems: list[str] = []
    for name, service in services(compose).items():
        if not is_samtykke_service(service, env_prefix(settings_cls)):
            continue
        words = command_words(service)
        if words[:1] == ["samtykke"]:
            continue  # the entrypoint repeated: check_builds says so more plainly
        problem = samtykke_command_problem(words)
        if problem:
            problems.append(f"{name}: `samtykke {' '.join(words)}` is not a samtykke command: {problem}")
    return problems


def listening_ports(
    service: Service, settings_cls: type[BaseSettings] = Settings
) -> set[int] | None:
    """Ports the service listens on inside its container; None when that cannot be told."""
    if is_samtykke_service(service, env_prefix(settings_cls)):
        settings = effective_settings(service, settings_cls)
        words = command_words(service)
        if settings is None or samtykke_command_problem(words) is not None:
            return None  # reported by check_samtykke_environment or check_commands
        port = command_port(words, settings)
        return {port} if port is not None else set()
    if _image_name(service) == "apache/kafka":
        listeners = environment(service).get("KAFKA_LISTENERS", "").split(",")
        return {int(address.rsplit(":", 1)[1]) for address in listeners if ":" in address}
    default = IMAGE_DEFAULT_PORTS.get(_image_name(service))
    return {default} if default else None


def _shown(ports: set[int]) -> str:
    return ", ".join(map(str, sorted(ports))) or "no port (its command serves no HTTP)"


def check_ports(
    compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings
) -> list[str]:
    """Published container ports and healthcheck ports are ports the service listens on."""
    problems: list[str] = []
    for name, service in services(compose).items():
        listening = listening_ports(service, settings_cls)
        if listening is None:
            continue
        published = published_container_ports(service)
        for port in published:
            if port not in listening:
                problems.append(
                    f"{name}: publishes container port {port} but listens on {_shown(listening)}"
                )
        for port in sorted(healthcheck_ports(service) - listening):
            problems.append(
                f"{name}: healthcheck probes port {port} but it listens on {_shown(listening)}"
            )
        samtykke = is_samtykke_service(service, env_prefix(settings_cls))
        settings = effective_settings(service, settings_cls) if samtykke else None
        host = getattr(settings, "http_host", None)
        if published and host in LOOPBACK_HOSTS:
            problems.append(
                f"{name}: publishes ports but binds {host} only; set SAMTYKKE_HTTP_HOST=0.0.0.0"
            )
    return problems


def check_shared_settings(
    compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings
) -> list[str]:
    return shared_settings_problems(samtykke_processes(compose, settings_cls), settings_cls)


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
# the endpoints a command connects to, where it is not all of them
ENDPOINTS_USED: dict[tuple[str, ...], tuple[str, ...]] = {
    ("projections", "provision"): ("database_url",),
    ("suppression", "serve"): ("kafka_bootstrap", "registry_url"),  # its index lives in memory
}


def endpoint_fields(words: Sequence[str]) -> tuple[str, ...]:
    used = (fields for command, fields in ENDPOINTS_USED.items()
            if tuple(words[: len(command)]) == command)
    return next(used, ENDPOINT_FIELDS)


def check_endpoints(
    compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings
) -> list[str]:
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
    if _image_name(known[host]) == "postgres":
        problems += _credential_problems(url.username, url.password, url.path, known[host])
    return problems


def _credential_problems(
    user: str | None, password: str | None, path: str, postgres: Service
) -> list[str]:
    """The URL's login and database exist on the postgres service.

    A URL without a login is a projector's: it logs in as its own role, which
    provisioning creates, so only the database is compared.
    """
    env = environment(postgres)
    default_user = env.get("POSTGRES_USER", "postgres")
    expected: list[tuple[str, str | None, str, str | None]] = [
        ("database", path.lstrip("/"), "POSTGRES_DB", default_user)
    ]
    if user is not None:
        expected += [
            ("user", user, "POSTGRES_USER", default_user),
            ("password", password, "POSTGRES_PASSWORD", None),
        ]
    return [
        f"{part} does not match the postgres service's {variable}"
        for part, actual, variable, default in expected
        if actual != env.get(variable, default)
    ]


# -- Prometheus ----------------------------------------------------------------------


def prometheus_configs(compose: Mapping[str, Any], root: Path) -> Iterator[tuple[str, Path]]:
    """(service, host file) of each Prometheus configuration compose mounts and that exists.

    A mounted file that is missing is reported by check_volumes.
    """
    for name, service in services(compose).items():
        for mount in mounts(service):
            path = root / mount.source
            if mount.kind == "bind" and mount.target == PROMETHEUS_CONFIG and path.is_file():
                yield name, path


def scrape_targets(config: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(job, host, port) of every static target."""
    found: list[tuple[str, str, int]] = []
    for job in config.get("scrape_configs") or []:
        for static in job.get("static_configs") or []:
            for target in static.get("targets") or []:
                host, _, port = str(target).rpartition(":")
                found.append((str(job.get("job_name")), host, int(port)))
    return found


def check_prometheus_targets(
    compose: Mapping[str, Any], root: Path, settings_cls: type[BaseSettings] = Settings
) -> list[str]:
    """Every samtykke service that serves /metrics is scraped, on the port it listens on."""
    known = services(compose)
    problems: list[str] = []
    for prometheus, path in prometheus_configs(compose, root):
        shown_path = path.relative_to(root) if path.is_relative_to(root) else path
        targets = scrape_targets(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        scraped = {host for _, host, _ in targets}
        for job, host, port in targets:
            listening = listening_ports(known[host], settings_cls) if host in known else None
            if listening is not None and port not in listening:
                problems.append(
                    f"{host}: {prometheus} job {job!r} in {shown_path} scrapes port {port}, "
                    f"but it listens on {_shown(listening)}"
                )
        for name, words, settings in samtykke_processes(compose, settings_cls):
            serves = command_port(words, settings)
            if serves is not None and name not in scraped:
                problems.append(f"{name}: {prometheus} does not scrape it: {shown_path} has no "
                                f"target {name}:{serves}")
    return problems
