"""Static consistency checks for the Kubernetes manifests in deploy/k8s.

No cluster runs on the development and CI machines, so the manifests are read
and compared with each other, with `Settings`, with the real `samtykke` command
line and with the Dockerfile the image is built from. Every check returns a
list of human-readable problems, each naming the resource (`deployment/consent`),
empty when the manifests are consistent.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic_settings import BaseSettings

from samtykke.adapters.settings import Settings

try:  # tests/unit as a plain folder on sys.path (pytest's default), or as a package
    from compose_check import (
        command_port,
        dockerfile_env,
        dockerfile_user,
        env_name,
        env_prefix,
        samtykke_command_problem,
        settings_from_env,
        settings_problems,
        shared_settings_problems,
    )
except ImportError:
    from .compose_check import (  # type: ignore[no-redef]
        command_port,
        dockerfile_env,
        dockerfile_user,
        env_name,
        env_prefix,
        samtykke_command_problem,
        settings_from_env,
        settings_problems,
        shared_settings_problems,
    )

Body = dict[str, Any]
WORKLOADS = ("Deployment", "Job")
PROBE_PATHS = {"readinessProbe": "/ready", "livenessProbe": "/healthz"}
SCRAPE_ANNOTATIONS = {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics"}
RESOURCES = ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory")


@dataclass
class Document:
    file: str
    body: Body

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name", ""))

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


@dataclass
class Manifests:
    folder: Path
    kustomization: Body
    documents: list[Document]

    def of_kind(self, kind: str) -> list[Document]:
        return [doc for doc in self.documents if doc.kind == kind]

    def find(self, kind: str, name: str) -> Document | None:
        return next((doc for doc in self.of_kind(kind) if doc.name == name), None)


class Image(NamedTuple):
    """What the Dockerfile decides for every container: its environment and user."""

    env: dict[str, str]
    uid: str | None

    @classmethod
    def read(cls, dockerfile: Path) -> Image:
        user = dockerfile_user(dockerfile)
        return cls(dockerfile_env(dockerfile), user.split(":")[0] if user else None)


class Process(NamedTuple):
    """One container as it will run: `samtykke <args>` with these settings."""

    ref: str
    args: list[str]
    settings: BaseSettings | None


def load_manifests(folder: Path) -> Manifests:
    """The kustomization and every document of the files it lists that exist."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    documents = [
        Document(str(resource), body)
        for resource in kustomization.get("resources") or []
        if (folder / str(resource)).is_file()
        for body in yaml.safe_load_all((folder / str(resource)).read_text(encoding="utf-8"))
        if body is not None
    ]
    # YAML aliases share objects; a plain copy lets a test edit one place
    return Manifests(folder, json.loads(json.dumps(kustomization)),
                     [Document(d.file, json.loads(json.dumps(d.body))) for d in documents])


def check_manifests(
    manifests: Manifests, dockerfile: Path, settings_cls: type[BaseSettings] = Settings
) -> list[str]:
    image = Image.read(dockerfile)
    processes = list(workload_processes(manifests, image, settings_cls))
    return [
        *check_kustomization(manifests),
        *check_documents(manifests),
        *check_config_keys(manifests, settings_cls),
        *check_workloads(manifests, image, settings_cls),
        *check_ports(manifests, processes),
        *check_services(manifests),
        *check_autoscalers(manifests, processes),
        *check_disruption_budgets(manifests),
        *check_images(manifests),
        *shared_settings_problems(
            [(p.ref, p.args, p.settings) for p in processes if p.settings is not None],
            settings_cls),
    ]


# -- files and documents ------------------------------------------------------------


def check_kustomization(manifests: Manifests) -> list[str]:
    """Every manifest file is listed, every listed file exists, one namespace."""
    listed = [str(r) for r in manifests.kustomization.get("resources") or []]
    problems = [
        f"kustomization.yaml lists {resource}, which does not exist"
        for resource in listed
        if not (manifests.folder / resource).is_file()
    ]
    on_disk = sorted(p.name for p in manifests.folder.glob("*.y*ml") if p.stem != "kustomization")
    problems += [
        f"{name} is not listed in kustomization.yaml resources"
        for name in on_disk
        if name not in listed
    ]
    namespace = manifests.kustomization.get("namespace")
    names = [doc.name for doc in manifests.of_kind("Namespace")]
    if namespace and names and namespace not in names:
        problems.append(f"kustomization.yaml deploys into {namespace}, but the Namespace is {names}")
    return problems


def check_documents(manifests: Manifests) -> list[str]:
    problems: list[str] = []
    seen = Counter((doc.kind, doc.name) for doc in manifests.documents)
    for doc in manifests.documents:
        missing = [key for key in ("apiVersion", "kind") if not doc.body.get(key)]
        missing += [] if doc.name else ["metadata.name"]
        if missing:
            problems.append(f"{doc.file}: a document has no {', '.join(missing)}")
    problems += [f"{kind.lower()}/{name} is defined {n} times" for (kind, name), n in seen.items() if n > 1]
    return problems


def config_data(manifests: Manifests, kind: str, name: str) -> dict[str, str] | None:
    """The keys of a ConfigMap or Secret (Secret `data` decoded); None if it is not defined."""
    doc = manifests.find(kind, name)
    if doc is None:
        return None
    data = {str(k): str(v) for k, v in (doc.body.get("data") or {}).items()}
    if kind != "Secret":
        return data
    decoded = {k: base64.b64decode(v).decode() for k, v in data.items()}
    return {**decoded, **{str(k): str(v) for k, v in (doc.body.get("stringData") or {}).items()}}


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


# -- workloads -------------------------------------------------------------------------


def pod_spec(workload: Document) -> Body:
    return dict(((workload.body.get("spec") or {}).get("template") or {}).get("spec") or {})


def pod_metadata(workload: Document) -> Body:
    return dict(((workload.body.get("spec") or {}).get("template") or {}).get("metadata") or {})


def containers(workload: Document) -> list[Body]:
    return list(pod_spec(workload).get("containers") or [])


_SOURCES = (("ConfigMap", "configMapRef", "configMapKeyRef"), ("Secret", "secretRef", "secretKeyRef"))


class ContainerEnv(NamedTuple):
    values: dict[str, str]  # the whole environment: image, then envFrom, then env
    literal: dict[str, str]  # its own `env` entries with a `value`
    referenced: list[str]  # its own `env` entries taken from a ConfigMap or Secret key
    problems: list[str]  # references that do not resolve


def container_env(container: Body, manifests: Manifests, base: Mapping[str, str]) -> ContainerEnv:
    env: dict[str, str] = dict(base)
    literal: dict[str, str] = {}
    own: dict[str, str] = {}
    referenced: list[str] = []
    problems: list[str] = []
    for source in container.get("envFrom") or []:
        for kind, ref_key, _ in _SOURCES:
            ref = source.get(ref_key)
            data = config_data(manifests, kind, ref["name"]) if ref else None
            if ref and data is None and not ref.get("optional"):
                problems.append(f"envFrom names {kind} {ref['name']}, which is not defined")
            env.update({f"{source.get('prefix', '')}{k}": v for k, v in (data or {}).items()})
    for var in container.get("env") or []:
        name = str(var["name"])
        if "value" in var:
            own[name] = literal[name] = str(var["value"])
        for kind, _, key_ref in _SOURCES:
            ref = (var.get("valueFrom") or {}).get(key_ref)
            if ref is None:
                continue
            referenced.append(name)
            data = config_data(manifests, kind, ref["name"])
            if data is None:
                problems.append(f"env {name}: {kind} {ref['name']} is not defined")
            elif ref["key"] not in data:
                problems.append(f"env {name}: {kind} {ref['name']} has no key {ref['key']}")
            else:
                own[name] = data[ref["key"]]
    # an `env` entry wins over `envFrom`
    return ContainerEnv({**env, **own}, literal, referenced, problems)


def workload_processes(
    manifests: Manifests, image: Image, settings_cls: type[BaseSettings]
) -> Iterator[Process]:
    for kind in WORKLOADS:
        for doc in manifests.of_kind(kind):
            for container in containers(doc):
                env = container_env(container, manifests, image.env).values
                args = [str(word) for word in container.get("args") or []]
                valid = samtykke_command_problem(args) is None
                yield Process(doc.ref, args, settings_from_env(env, settings_cls) if valid else None)


def check_workloads(
    manifests: Manifests, image: Image, settings_cls: type[BaseSettings]
) -> list[str]:
    problems: list[str] = []
    for kind in WORKLOADS:
        for doc in manifests.of_kind(kind):
            for container in containers(doc):
                problems += [
                    f"{doc.ref}: {p}"
                    for p in _container_problems(doc, container, manifests, image, settings_cls)
                ]
            problems += [f"{doc.ref}: {p}" for p in _selector_problems(doc)]
    return problems


def _container_problems(
    doc: Document, container: Body, manifests: Manifests, image: Image,
    settings_cls: type[BaseSettings],
) -> list[str]:
    env = container_env(container, manifests, image.env)
    # values from a ConfigMap or Secret are checked once, by check_config_keys
    fields = {env_name(settings_cls, field) for field in settings_cls.model_fields}
    problems = [*env.problems, *settings_problems(env.literal, settings_cls)]
    problems += [f"{name} is not a Settings field" for name in env.referenced
                 if name.startswith(env_prefix(settings_cls)) and name not in fields]
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
    missing = [
        path for path in RESOURCES
        if (resources.get(path.split(".")[0]) or {}).get(path.split(".")[1]) is None
    ]
    return [f"sets no resources {', '.join(missing)}"] if missing else []


def _state_dir_problems(
    container: Body, settings: BaseSettings, settings_cls: type[BaseSettings]
) -> list[str]:
    """A read-only root filesystem leaves the state folder writable through a mount."""
    if not (container.get("securityContext") or {}).get("readOnlyRootFilesystem"):
        return []
    state_dir = str(getattr(settings, "state_dir", ""))
    mounted = {str(m.get("mountPath", "")).rstrip("/") for m in container.get("volumeMounts") or []}
    if not state_dir or state_dir in mounted:
        return []
    return [
        f"root filesystem is read-only, but nothing is mounted at "
        f"{env_prefix(settings_cls)}STATE_DIR {state_dir}"
    ]


def _selector_problems(doc: Document) -> list[str]:
    selector = ((doc.body.get("spec") or {}).get("selector") or {}).get("matchLabels")
    labels = pod_metadata(doc).get("labels") or {}
    if doc.kind == "Deployment" and not _selects(selector, labels):
        return [f"selector {selector} does not match its pod labels {labels}"]
    return []


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, Any]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


# -- ports, probes, scraping -----------------------------------------------------------


def container_ports(container: Body) -> dict[int, str | None]:
    return {int(p["containerPort"]): p.get("name") for p in container.get("ports") or []}


def _resolve(port: object, container: Body) -> int | None:
    """A port given by number or by the name of a containerPort."""
    if isinstance(port, int) or str(port).isdigit():
        return int(str(port))
    return next((n for n, name in container_ports(container).items() if name == port), None)


def check_ports(manifests: Manifests, processes: list[Process]) -> list[str]:
    """containerPort = the port its settings make it listen on = probe ports = scrape annotation."""
    by_ref = {p.ref: p for p in processes}
    problems: list[str] = []
    for doc in manifests.of_kind("Deployment"):
        process = by_ref.get(doc.ref)
        if process is None or process.settings is None:
            continue  # its command or settings are reported by check_workloads
        port = command_port(process.args, process.settings)
        for container in containers(doc):
            problems += [f"{doc.ref}: {p}" for p in _port_problems(container, port)]
        problems += [f"{doc.ref}: {p}" for p in _annotation_problems(doc, port)]
    return problems


def _port_problems(container: Body, port: int | None) -> list[str]:
    listening = f"its settings make it listen on {port}" if port else "its command serves no HTTP"
    declared = container_ports(container)
    problems = [f"declares containerPort {p}, but {listening}" for p in declared if p != port]
    if port is not None and port not in declared:
        problems.append(f"listens on {port}, but declares no such containerPort")
    for probe, path in PROBE_PATHS.items():
        http = (container.get(probe) or {}).get("httpGet")
        if port is None:
            continue
        if http is None:
            problems.append(f"has no {probe} (httpGet {path})")
            continue
        probed = _resolve(http.get("port"), container)
        if probed != port:
            problems.append(f"{probe} probes port {http.get('port')}, but {listening}")
        if http.get("path") != path:
            problems.append(f"{probe} probes {http.get('path')}, not {path}")
    return problems


def _annotation_problems(doc: Document, port: int | None) -> list[str]:
    if port is None:
        return []
    annotations = pod_metadata(doc).get("annotations") or {}
    expected = {**SCRAPE_ANNOTATIONS, "prometheus.io/port": str(port)}
    return [
        f"pod annotation {key}={annotations.get(key)!r}, expected {value!r}"
        for key, value in expected.items()
        if str(annotations.get(key)) != value
    ]


# -- services, autoscalers, disruption budgets, images --------------------------------


def selected_deployments(manifests: Manifests, selector: Mapping[str, Any] | None) -> list[Document]:
    return [
        doc for doc in manifests.of_kind("Deployment")
        if _selects(selector, pod_metadata(doc).get("labels") or {})
    ]


def check_services(manifests: Manifests) -> list[str]:
    """Each Service selects a Deployment's pods and targets one of their containerPorts."""
    problems: list[str] = []
    for service in manifests.of_kind("Service"):
        spec = service.body.get("spec") or {}
        selected = selected_deployments(manifests, spec.get("selector"))
        if not selected:
            problems.append(f"{service.ref}: selector {spec.get('selector')} matches no Deployment's pods")
        for entry in spec.get("ports") or []:
            target = entry.get("targetPort", entry.get("port"))
            for deployment in selected:
                ports = [c for c in containers(deployment) if _resolve(target, c) in container_ports(c)]
                if not ports:
                    declared = sorted(p for c in containers(deployment) for p in container_ports(c))
                    problems.append(f"{service.ref}: targetPort {target} is not a containerPort "
                                    f"of {deployment.ref} ({', '.join(map(str, declared))})")
    return problems


def check_autoscalers(manifests: Manifests, processes: list[Process]) -> list[str]:
    """Each HPA scales an existing Deployment, a projector no further than its partitions."""
    by_ref = {p.ref: p for p in processes}
    problems: list[str] = []
    for hpa in manifests.of_kind("HorizontalPodAutoscaler"):
        spec = hpa.body.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        ref = f"{str(target.get('kind', '')).lower()}/{target.get('name')}"
        if target.get("kind") != "Deployment" or manifests.find("Deployment", str(target.get("name"))) is None:
            problems.append(f"{hpa.ref}: scales {ref}, which is not a Deployment in the manifests")
            continue
        low, high = int(spec.get("minReplicas", 1)), int(spec.get("maxReplicas", 0))
        if low > high:
            problems.append(f"{hpa.ref}: minReplicas {low} exceeds maxReplicas {high}")
        process = by_ref.get(ref)
        if process and process.settings is not None and process.args[:2] == ["projections", "run"]:
            partitions = int(getattr(process.settings, "topic_partitions"))
            if high > partitions:
                problems.append(f"{hpa.ref}: scales {ref} to {high} replicas, but its consumer "
                                f"group has {partitions} partitions per topic: the rest would idle")
    return problems


def least_replicas(manifests: Manifests, deployment: Document) -> int:
    """Replicas a Deployment may have: its autoscaler's minimum, else its own count."""
    for hpa in manifests.of_kind("HorizontalPodAutoscaler"):
        target = (hpa.body.get("spec") or {}).get("scaleTargetRef") or {}
        if target.get("kind") == "Deployment" and target.get("name") == deployment.name:
            return int(hpa.body["spec"].get("minReplicas", 1))
    return int((deployment.body.get("spec") or {}).get("replicas", 1))


def check_disruption_budgets(manifests: Manifests) -> list[str]:
    """Each PDB selects a Deployment's pods and still lets a node drain."""
    problems: list[str] = []
    for pdb in manifests.of_kind("PodDisruptionBudget"):
        spec = pdb.body.get("spec") or {}
        selector = (spec.get("selector") or {}).get("matchLabels")
        selected = selected_deployments(manifests, selector)
        if not selected:
            problems.append(f"{pdb.ref}: selector {selector} matches no Deployment's pods")
        minimum = spec.get("minAvailable")
        for deployment in selected:
            replicas = least_replicas(manifests, deployment)
            if isinstance(minimum, int) and minimum >= replicas:
                problems.append(f"{pdb.ref}: minAvailable {minimum} with {replicas} replicas of "
                                f"{deployment.ref} blocks every voluntary eviction")
    return problems


def check_images(manifests: Manifests) -> list[str]:
    """Every samtykke container runs the one image the kustomization names."""
    used = {
        doc.ref: str(container.get("image", ""))
        for kind in WORKLOADS for doc in manifests.of_kind(kind) for container in containers(doc)
    }
    if not used:
        return []
    common, _ = Counter(used.values()).most_common(1)[0]
    problems = [
        f"{ref}: runs image {image!r}, the other workloads {common!r}"
        for ref, image in used.items()
        if image != common
    ]
    names = {str(entry.get("name")) for entry in manifests.kustomization.get("images") or []}
    if names and common.rsplit(":", 1)[0] not in names:
        problems.append(f"kustomization.yaml images name {sorted(names)}, "
                        f"but the workloads run {common!r}")
    return problems
