"""The Kubernetes manifests in deploy/k8s, read as documents, pods and containers.

`load_manifests` reads the kustomization and the documents of the files it
lists. The helpers find documents, decode ConfigMap and Secret data, reach into
a workload's pod template, match selectors to pod labels and resolve the
environment a container starts with.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

Body = dict[str, Any]
WORKLOADS = ("Deployment", "Job")


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
    return Manifests(
        folder,
        json.loads(json.dumps(kustomization)),
        [Document(d.file, json.loads(json.dumps(d.body))) for d in documents],
    )


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


# -- pods and containers ----------------------------------------------------------------


def pod_spec(workload: Document) -> Body:
    return dict(((workload.body.get("spec") or {}).get("template") or {}).get("spec") or {})


def pod_metadata(workload: Document) -> Body:
    return dict(((workload.body.get("spec") or {}).get("template") or {}).get("metadata") or {})


def containers(workload: Document) -> list[Body]:
    return list(pod_spec(workload).get("containers") or [])


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, Any]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


def selected_deployments(manifests: Manifests, selector: Mapping[str, Any] | None) -> list[Document]:
    return [doc for doc in manifests.of_kind("Deployment") if selects(selector, pod_metadata(doc).get("labels") or {})]


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
