"""Kubernetes ports: what each Deployment listens on, and what declares, probes and selects it.

The port a container listens on follows from its `samtykke` command and
settings; its containerPort, readiness and liveness probes and Prometheus scrape
annotations must name that port, and every Service must target one.
"""

from __future__ import annotations

from .command_check import command_port
from .k8s_manifests_check import (
    Body,
    Document,
    Manifests,
    containers,
    pod_metadata,
    selected_deployments,
)
from .k8s_workload_check import Process

PROBE_PATHS = {"readinessProbe": "/ready", "livenessProbe": "/healthz"}
SCRAPE_ANNOTATIONS = {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics"}


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
                    problems.append(
                        f"{service.ref}: targetPort {target} is not a containerPort "
                        f"of {deployment.ref} ({', '.join(map(str, declared))})"
                    )
    return problems
