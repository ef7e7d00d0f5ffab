"""Static consistency checks for docker-compose.yml.

No Docker engine runs on the development and CI machines, so the compose file
cannot be started there. These checks read it (and the Dockerfiles it builds,
and the Prometheus configuration it mounts) and compare it with the repository,
with `Settings` and with the real `samtykke` command line: every check returns
a list of human-readable problems, empty when the file is consistent.

`check_compose` runs them all. The checks of builds, dependencies, lifecycle,
volumes, settings and commands live here; reading a service is in
compose_service_check.py, ports and scraping in compose_ports_check.py and
endpoints in compose_endpoints_check.py, Kafka, database and port security in
compose_security_check.py. What does not depend on compose (a
Dockerfile, the `samtykke` command line, Settings) is in dockerfile_check.py,
command_check.py and settings_check.py, which k8s_check.py uses as well.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic_settings import BaseSettings

from samtykke.adapters.settings import Settings

from .command_check import samtykke_command_problem
from .compose_endpoints_check import check_endpoints
from .compose_ports_check import (
    check_kafka_advertised_listeners,
    check_ports,
    check_prometheus_targets,
    listening_ports,
)
from .compose_security_check import check_security
from .compose_service_check import (
    Service,
    command_words,
    dependencies,
    environment,
    is_samtykke_service,
    mounts,
    one_shot_services,
    samtykke_processes,
    services,
)
from .dockerfile_check import (
    check_dockerfile,
    dockerfile_entrypoint,
    dockerfile_exposed,
)
from .settings_check import (
    env_prefix,
    settings_problems,
    shared_settings_problems,
)

LONG_RUNNING_RESTARTS = frozenset({"always", "unless-stopped", "on-failure"})

# A service running the first command must wait for one running the second to complete.
PREREQUISITES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("projections", "run"): ("projections", "provision"),
}


def load_compose(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as stream:
        data = yaml.safe_load(stream)
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ValueError(f"{path}: no `services` mapping")
    # YAML aliases share one object between services; a plain copy lets a test edit one
    return cast(dict[str, Any], json.loads(json.dumps(data)))


def check_compose(compose: Mapping[str, Any], root: Path, settings_cls: type[BaseSettings] = Settings) -> list[str]:
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
        *check_security(compose, settings_cls),
    ]


# -- builds, images, dependencies, lifecycle, volumes ---------------------------------


def _build_paths(service: Service, root: Path) -> tuple[Path, Path] | None:
    """(context, Dockerfile) of a service that builds its image."""
    build = service.get("build")
    if build is None:
        return None
    spec = {"context": build} if isinstance(build, str) else build
    context = root / str(spec.get("context", "."))
    return context, context / str(spec.get("dockerfile", "Dockerfile"))


def check_builds(compose: Mapping[str, Any], root: Path, settings_cls: type[BaseSettings] = Settings) -> list[str]:
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
            problems.append(f"{name}: command repeats the entrypoint {entrypoint[0]!r}; drop its first word")
        exposed = dockerfile_exposed(dockerfile)
        for port in sorted((listening_ports(service, settings_cls) or set()) - exposed):
            problems.append(f"{name}: listens on {port}, which {dockerfile.relative_to(root)} does not EXPOSE")
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
                problems.append(f"{name}: waits for {target} to be healthy, but it has no healthcheck")
    return problems


def check_lifecycle(compose: Mapping[str, Any]) -> list[str]:
    """Long-running services restart and report health; one-shot services are not restarted."""
    one_shot = one_shot_services(compose)
    problems: list[str] = []
    for name, service in services(compose).items():
        restart = str(service.get("restart", "no")).split(":")[0]
        if name in one_shot:
            if restart in {"always", "unless-stopped"}:
                problems.append(f"{name}: others wait for it to complete, but restart: {restart} reruns it")
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


# -- settings and commands -------------------------------------------------------------


def check_samtykke_environment(compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings) -> list[str]:
    """Every SAMTYKKE_* variable names a Settings field and holds a value it accepts."""
    return [
        f"{name}: {problem}"
        for name, service in services(compose).items()
        for problem in settings_problems(environment(service), settings_cls)
    ]


def check_commands(compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings) -> list[str]:
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


def check_shared_settings(compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings) -> list[str]:
    return shared_settings_problems(samtykke_processes(compose, settings_cls), settings_cls)
