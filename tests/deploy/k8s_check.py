"""Static consistency checks for the Kubernetes manifests in deploy/k8s.

No cluster runs on the development and CI machines, so the manifests are read
and compared with each other, with `Settings`, with the real `samtykke` command
line and with the Dockerfile the image is built from. Every check returns a
list of human-readable problems, each naming the resource (`deployment/consent`),
empty when the manifests are consistent.

`check_manifests` runs them all. The checks of files, documents, autoscalers,
disruption budgets and images live here; reading the manifests is in
k8s_manifests_check.py, containers in k8s_workload_check.py and ports in
k8s_ports_check.py.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pydantic_settings import BaseSettings

from samtykke.adapters.settings import Settings

from .dockerfile_check import Image
from .k8s_manifests_check import (
    WORKLOADS,
    Document,
    Manifests,
    containers,
    selected_deployments,
)
from .k8s_ports_check import check_ports, check_services
from .k8s_workload_check import (
    Process,
    check_config_keys,
    check_workloads,
    workload_processes,
)
from .settings_check import shared_settings_problems


def check_manifests(manifests: Manifests, dockerfile: Path, settings_cls: type[BaseSettings] = Settings) -> list[str]:
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
        *check_publishing(processes),
        *check_disruption_budgets(manifests),
        *check_images(manifests),
        *shared_settings_problems(
            [(p.ref, p.args, p.settings) for p in processes if p.settings is not None], settings_cls
        ),
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
    problems += [f"{name} is not listed in kustomization.yaml resources" for name in on_disk if name not in listed]
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


# -- autoscalers, disruption budgets, images ------------------------------------------


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
            partitions = int(process.settings.topic_partitions)
            if high > partitions:
                problems.append(
                    f"{hpa.ref}: scales {ref} to {high} replicas, but its consumer "
                    f"group has {partitions} partitions per topic: the rest would idle"
                )
    return problems


def check_publishing(processes: list[Process]) -> list[str]:
    """Something publishes the outbox: a consent service that relays, or a workload running the relay."""
    apis = [p for p in processes if p.args == ["consent", "serve"] and p.settings is not None]
    relays = [p for p in processes if p.args == ["consent", "relay"]]
    if relays or any(getattr(p.settings, "consent_relay", True) for p in apis):
        return []
    return [
        f"{p.ref}: runs no relay (SAMTYKKE_CONSENT_RELAY=false) and no workload runs `samtykke consent relay`: "
        "nothing would publish the outbox"
        for p in apis
    ]


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
                problems.append(
                    f"{pdb.ref}: minAvailable {minimum} with {replicas} replicas of "
                    f"{deployment.ref} blocks every voluntary eviction"
                )
    return problems


def check_images(manifests: Manifests) -> list[str]:
    """Every samtykke container runs the one image the kustomization names."""
    used = {
        doc.ref: str(container.get("image", ""))
        for kind in WORKLOADS
        for doc in manifests.of_kind(kind)
        for container in containers(doc)
    }
    if not used:
        return []
    common, _ = Counter(used.values()).most_common(1)[0]
    problems = [
        f"{ref}: runs image {image!r}, the other workloads {common!r}" for ref, image in used.items() if image != common
    ]
    names = {str(entry.get("name")) for entry in manifests.kustomization.get("images") or []}
    if names and common.rsplit(":", 1)[0] not in names:
        problems.append(f"kustomization.yaml images name {sorted(names)}, but the workloads run {common!r}")
    return problems
