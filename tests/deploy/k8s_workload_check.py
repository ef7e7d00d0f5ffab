"""What each Kubernetes workload container runs: its settings, command, security and resources.

`workload_processes` gives the `samtykke` command and settings of every
container. The checks report ConfigMap and Secret keys that are not valid
settings, environment references that do not resolve, commands the real parser
rejects, security contexts that do not match the image's user, missing resource
requests and limits, an unwritable state folder and a Deployment selector that
misses its own pods.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from pydantic_settings import BaseSettings

from .command_check import samtykke_command_problem
from .dockerfile_check import Image
from .k8s_manifests_check import (
    WORKLOADS,
    Body,
    Document,
    Manifests,
    config_data,
    container_env,
    containers,
    pod_metadata,
    pod_spec,
    selects,
)
from .settings_check import (
    env_name,
    env_prefix,
    settings_from_env,
    settings_problems,
)

RESOURCES = ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory")


class Process(NamedTuple):
    """One container as it will run: `samtykke <args>` with these settings."""

    ref: str
    args: list[str]
    settings: BaseSettings | None


def workload_processes(manifests: Manifests, image: Image, settings_cls: type[BaseSettings]) -> Iterator[Process]:
    for kind in WORKLOADS:
        for doc in manifests.of_kind(kind):
            for container in containers(doc):
                env = container_env(container, manifests, image.env).values
                args = [str(word) for word in container.get("args") or []]
                valid = samtykke_command_problem(args) is None
                yield Process(doc.ref, args, settings_from_env(env, settings_cls) if valid else None)


def check_config_keys(manifests: Manifests, settings_cls: type[BaseSettings]) -> list[str]:
    """Every ConfigMap and Secret key is a Settings variable holding a value it accepts."""
    problems: list[str] = []
    for doc in [*manifests.of_kind("ConfigMap"), *manifests.of_kind("Secret")]:
        data = config_data(manifests, doc.kind, doc.name) or {}
        fields = {env_name(settings_cls, field) for field in settings_cls.model_fields}
        problems += [f"{doc.ref}: key {key} is not a Settings field" for key in data if key not in fields]
        known = {key: value for key, value in data.items() if key in fields}
        problems += [f"{doc.ref}: {p}" for p in settings_problems(known, settings_cls)]
    return problems


def check_workloads(manifests: Manifests, image: Image, settings_cls: type[BaseSettings]) -> list[str]:
    problems: list[str] = []
    for kind in WORKLOADS:
        for doc in manifests.of_kind(kind):
            for container in containers(doc):
                problems += [
                    f"{doc.ref}: {p}" for p in _container_problems(doc, container, manifests, image, settings_cls)
                ]
            problems += [f"{doc.ref}: {p}" for p in _selector_problems(doc)]
    return problems


def _container_problems(
    doc: Document,
    container: Body,
    manifests: Manifests,
    image: Image,
    settings_cls: type[BaseSettings],
) -> list[str]:
    env = container_env(container, manifests, image.env)
    # values from a ConfigMap or Secret are checked once, by check_config_keys
    fields = {env_name(settings_cls, field) for field in settings_cls.model_fields}
    problems = [*env.problems, *settings_problems(env.literal, settings_cls)]
    problems += [
        f"{name} is not a Settings field"
        for name in env.referenced
        if name.startswith(env_prefix(settings_cls)) and name not in fields
    ]
    if container.get("command"):
        problems.append("sets command, which replaces the image's `samtykke` entrypoint; use args")
    args = [str(word) for word in container.get("args") or []]
    problem = samtykke_command_problem(args)
    if problem:
        problems.append(f"`samtykke {' '.join(args)}` is not a samtykke command: {problem}")
    problems += _security_problems(pod_spec(doc), container, image)
    problems += _resource_problems(container)
    settings = settings_from_env(env.values, settings_cls)
    if settings is not None:
        problems += _state_dir_problems(container, settings, settings_cls)
    return problems


def _security_problems(pod: Body, container: Body, image: Image) -> list[str]:
    context = {**(pod.get("securityContext") or {}), **(container.get("securityContext") or {})}
    problems: list[str] = []
    if context.get("runAsNonRoot") is not True:
        problems.append("does not set securityContext.runAsNonRoot: true")
    user = context.get("runAsUser")
    if image.uid is not None and str(user) != image.uid:
        problems.append(f"runs as user {user}, but the image's user is {image.uid}")
    return problems


def _resource_problems(container: Body) -> list[str]:
    resources = container.get("resources") or {}
    missing = [path for path in RESOURCES if (resources.get(path.split(".")[0]) or {}).get(path.split(".")[1]) is None]
    return [f"sets no resources {', '.join(missing)}"] if missing else []


def _state_dir_problems(container: Body, settings: BaseSettings, settings_cls: type[BaseSettings]) -> list[str]:
    """A read-only root filesystem leaves the state folder writable through a mount."""
    if not (container.get("securityContext") or {}).get("readOnlyRootFilesystem"):
        return []
    state_dir = str(getattr(settings, "state_dir", ""))
    mounted = {str(m.get("mountPath", "")).rstrip("/") for m in container.get("volumeMounts") or []}
    if not state_dir or state_dir in mounted:
        return []
    return [f"root filesystem is read-only, but nothing is mounted at {env_prefix(settings_cls)}STATE_DIR {state_dir}"]


def _selector_problems(doc: Document) -> list[str]:
    selector = ((doc.body.get("spec") or {}).get("selector") or {}).get("matchLabels")
    labels = pod_metadata(doc).get("labels") or {}
    if doc.kind == "Deployment" and not selects(selector, labels):
        return [f"selector {selector} does not match its pod labels {labels}"]
    return []
