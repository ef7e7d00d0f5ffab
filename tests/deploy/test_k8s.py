"""The Kubernetes manifests in deploy/k8s stay consistent with each other, Settings,
the `samtykke` command line and the Dockerfile.

No cluster runs here, so the manifests are checked statically: the real files
must yield no problems, and each deliberate mistake below must be reported,
naming the resource and the problem.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from samtykke.adapters.safety import PLACEHOLDER_MARKERS, development_secrets, refusal, service_secrets
from samtykke.adapters.settings import Settings

from .dockerfile_check import Image
from .k8s_check import check_manifests
from .k8s_manifests_check import (
    Document,
    Manifests,
    containers,
    load_manifests,
)
from .k8s_workload_check import workload_processes

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
PORTS = {
    "consent": 8000,
    "relay": 8300,
    "projector-marketing": 8101,
    "projector-analytics": 8102,
    "projector-customer-service": 8103,
    "suppression": 8200,
}


@lru_cache(maxsize=1)
def _loaded() -> Manifests:
    return load_manifests(K8S)


@pytest.fixture
def manifests() -> Manifests:
    """A private copy of the parsed manifests, free to break."""
    return copy.deepcopy(_loaded())


def _doc(manifests: Manifests, kind: str, name: str) -> dict[str, Any]:
    doc = manifests.find(kind, name)
    assert doc is not None, f"{kind} {name}"
    return doc.body


def _container(manifests: Manifests, name: str, kind: str = "Deployment") -> dict[str, Any]:
    doc = manifests.find(kind, name)
    assert doc is not None
    return containers(doc)[0]


def _pod(manifests: Manifests, name: str) -> dict[str, Any]:
    template: dict[str, Any] = _doc(manifests, "Deployment", name)["spec"]["template"]
    return template


def _problems(manifests: Manifests) -> list[str]:
    """Problems the in-memory edits introduced, beyond any the real files already have
    (those fail test_real_manifests_are_consistent on their own)."""
    baseline = check_manifests(_loaded(), DOCKERFILE)
    return [p for p in check_manifests(manifests, DOCKERFILE) if p not in baseline]


# -- the real manifests ------------------------------------------------------------------


def test_real_manifests_are_consistent(manifests: Manifests) -> None:
    assert check_manifests(manifests, DOCKERFILE) == []


def test_every_component_is_deployed(manifests: Manifests) -> None:
    assert {doc.name for doc in manifests.of_kind("Deployment")} == set(PORTS)
    assert {doc.name for doc in manifests.of_kind("Service")} == set(PORTS)
    assert {doc.name for doc in manifests.of_kind("PodDisruptionBudget")} == set(PORTS)
    assert [containers(job)[0]["args"] for job in manifests.of_kind("Job")] == [["projections", "provision"]]


def test_only_stateless_http_services_autoscale(manifests: Manifests) -> None:
    targets = {doc.body["spec"]["scaleTargetRef"]["name"] for doc in manifests.of_kind("HorizontalPodAutoscaler")}
    assert targets == {"consent", "suppression"}


@pytest.mark.parametrize(("name", "port"), PORTS.items())
def test_fixed_ports(manifests: Manifests, name: str, port: int) -> None:
    assert [p["containerPort"] for p in _container(manifests, name)["ports"]] == [port]
    assert _pod(manifests, name)["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_projectors_hold_no_owner_login(manifests: Manifests) -> None:
    config = _doc(manifests, "ConfigMap", "samtykke-config")["data"]
    assert "@" not in config["SAMTYKKE_DATABASE_URL"]
    for name in PORTS:
        if name.startswith("projector-"):
            env = {var["name"] for var in _container(manifests, name).get("env", [])}
            assert "SAMTYKKE_DATABASE_URL" not in env, name


def test_the_shipped_secret_is_refused_at_start_up_naming_each_placeholder(
    manifests: Manifests, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Secret holds placeholders; a service started with them and the ConfigMap stops at once."""
    config = _doc(manifests, "ConfigMap", "samtykke-config")["data"]
    secret = _doc(manifests, "Secret", "samtykke-secrets")["stringData"]
    for key, value in (config | secret).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    refused = set(development_secrets(settings))
    assert {k for k in secret if k.removeprefix("SAMTYKKE_").lower() in Settings.model_fields} <= refused
    reason = refusal(settings)
    assert reason is not None and "SAMTYKKE_ENVIRONMENT=production" in reason


def test_every_workload_starts_with_the_operators_own_secrets(manifests: Manifests) -> None:
    """With the placeholders replaced, no process is refused: each is held only to the secrets it uses
    (a projector is given none of the API's keys)."""
    for doc in manifests.of_kind("Secret"):
        data = doc.body.get("stringData") or {}
        for key, value in data.items():
            for marker in PLACEHOLDER_MARKERS:
                value = value.replace(marker, f"own-{key.lower()}")
            data[key] = value
        if "SAMTYKKE_IDENTIFIER_ENCRYPTION_KEY" in data:
            data["SAMTYKKE_IDENTIFIER_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    serving = [p for p in workload_processes(manifests, Image.read(DOCKERFILE), Settings) if p.ref.startswith("deploy")]
    assert len(serving) == len(PORTS)
    for process in serving:
        assert isinstance(process.settings, Settings), process.ref
        assert refusal(process.settings, service_secrets(process.args)) is None, process.ref


def test_kustomize_renders_every_document_into_the_namespace(manifests: Manifests) -> None:
    # `make test` installs kubectl (Debian's kubernetes-client) when it is missing
    assert shutil.which("kubectl"), "kubectl not found: run `make monitoring-tools`"
    rendered = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True).stdout
    documents = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert len(documents) == len(manifests.documents)
    namespaced = [doc for doc in documents if doc["kind"] != "Namespace"]
    assert {doc["metadata"]["namespace"] for doc in namespaced} == {"samtykke"}


# -- deliberate mistakes: files and configuration --------------------------------------


def test_listed_file_that_does_not_exist_is_reported(manifests: Manifests) -> None:
    manifests.kustomization["resources"].append("ingress.yaml")
    assert _problems(manifests) == ["kustomization.yaml lists ingress.yaml, which does not exist"]


def test_manifest_file_left_out_of_kustomization_is_reported(manifests: Manifests) -> None:
    manifests.kustomization["resources"].remove("suppression.yaml")
    assert _problems(manifests) == ["suppression.yaml is not listed in kustomization.yaml resources"]


def test_namespace_other_than_the_kustomization_one_is_reported(manifests: Manifests) -> None:
    manifests.kustomization["namespace"] = "consent"
    assert _problems(manifests) == ["kustomization.yaml deploys into consent, but the Namespace is ['samtykke']"]


def test_document_without_a_kind_is_reported(manifests: Manifests) -> None:
    manifests.documents.append(Document("extra.yaml", {"apiVersion": "v1", "metadata": {"name": "x"}}))
    assert _problems(manifests) == ["extra.yaml: a document has no kind"]


def test_unknown_configmap_key_is_reported(manifests: Manifests) -> None:
    _doc(manifests, "ConfigMap", "samtykke-config")["data"]["SAMTYKKE_CONSENT_PROT"] = "8000"
    assert _problems(manifests) == ["configmap/samtykke-config: key SAMTYKKE_CONSENT_PROT is not a Settings field"]


def test_configmap_value_settings_rejects_is_reported(manifests: Manifests) -> None:
    _doc(manifests, "ConfigMap", "samtykke-config")["data"]["SAMTYKKE_SUPPRESSION_PORT"] = "eighty"
    assert _problems(manifests) == [
        "configmap/samtykke-config: SAMTYKKE_SUPPRESSION_PORT: Input should be a valid integer, "
        "unable to parse string as an integer"
    ]


def test_secret_value_settings_rejects_is_reported(manifests: Manifests) -> None:
    secret = _doc(manifests, "Secret", "samtykke-secrets")["stringData"]
    secret["SAMTYKKE_API_KEYS"] = '{"dev-admin": ["superuser"]}'
    assert _problems(manifests) == [
        "secret/samtykke-secrets: SAMTYKKE_API_KEYS: Value error, api key dev-…: unknown scopes ['superuser']"
    ]


def test_missing_configmap_key_moves_the_port_and_is_reported(manifests: Manifests) -> None:
    del _doc(manifests, "ConfigMap", "samtykke-config")["data"]["SAMTYKKE_SUPPRESSION_PORT"]
    # Settings' default port (18200) applies, which nothing else expects
    assert _problems(manifests) == [
        "deployment/suppression: declares containerPort 8200, but its settings make it listen on 18200",
        "deployment/suppression: listens on 18200, but declares no such containerPort",
        "deployment/suppression: readinessProbe probes port 8200, but its settings make it listen on 18200",
        "deployment/suppression: livenessProbe probes port 8200, but its settings make it listen on 18200",
        "deployment/suppression: pod annotation prometheus.io/port='8200', expected '18200'",
    ]


def test_configmap_key_reference_to_a_missing_key_is_reported(manifests: Manifests) -> None:
    _container(manifests, "consent")["env"].append(
        {
            "name": "SAMTYKKE_SWEEPER_INTERVAL_SECONDS",
            "valueFrom": {"configMapKeyRef": {"name": "samtykke-config", "key": "SAMTYKKE_SWEEPER"}},
        }
    )
    assert _problems(manifests) == [
        "deployment/consent: env SAMTYKKE_SWEEPER_INTERVAL_SECONDS: ConfigMap samtykke-config "
        "has no key SAMTYKKE_SWEEPER"
    ]


def test_missing_secret_key_is_reported(manifests: Manifests) -> None:
    del _doc(manifests, "Secret", "samtykke-secrets")["stringData"]["SAMTYKKE_API_KEYS"]
    assert _problems(manifests) == [
        "deployment/consent: env SAMTYKKE_API_KEYS: Secret samtykke-secrets has no key SAMTYKKE_API_KEYS",
        "deployment/suppression: env SAMTYKKE_API_KEYS: Secret samtykke-secrets has no key SAMTYKKE_API_KEYS",
    ]


def test_missing_configmap_is_reported(manifests: Manifests) -> None:
    manifests.documents = [d for d in manifests.documents if d.kind != "ConfigMap"]
    problems = _problems(manifests)
    assert "deployment/consent: envFrom names ConfigMap samtykke-config, which is not defined" in problems
    assert "job/samtykke-provision: envFrom names ConfigMap samtykke-config, which is not defined" in problems


def test_unknown_env_variable_is_reported(manifests: Manifests) -> None:
    _container(manifests, "projector-marketing")["env"].append({"name": "SAMTYKKE_PROJECTION_BATCH", "value": "500"})
    assert _problems(manifests) == ["deployment/projector-marketing: SAMTYKKE_PROJECTION_BATCH is not a Settings field"]


def test_identifier_hash_key_differing_between_workloads_is_reported(manifests: Manifests) -> None:
    env = _container(manifests, "suppression")["env"]
    env[:] = [var for var in env if var["name"] != "SAMTYKKE_IDENTIFIER_HASH_KEY"]
    # Settings' development key then applies, not the Secret's
    assert _problems(manifests) == [
        "deployment/suppression: SAMTYKKE_IDENTIFIER_HASH_KEY differs from deployment/consent's; "
        "the suppression index matches the consent service's identifier hashes"
    ]


# -- deliberate mistakes: workloads ------------------------------------------------------


def test_unknown_subcommand_is_reported(manifests: Manifests) -> None:
    _container(manifests, "projector-analytics")["args"] = ["projections", "run", "analytic"]
    assert _problems(manifests) == [
        "deployment/projector-analytics: `samtykke projections run analytic` is not a samtykke "
        "command: argument domain: invalid choice: 'analytic' "
        "(choose from 'marketing', 'analytics', 'customer_service')"
    ]


def test_command_replacing_the_entrypoint_is_reported(manifests: Manifests) -> None:
    container = _container(manifests, "samtykke-provision", kind="Job")
    container["command"] = ["samtykke"]
    assert _problems(manifests) == [
        "job/samtykke-provision: sets command, which replaces the image's `samtykke` entrypoint; use args"
    ]


def test_an_api_without_relay_and_no_relay_workload_is_reported(manifests: Manifests) -> None:
    manifests.documents = [d for d in manifests.documents if d.name != "relay"]
    assert _problems(manifests) == [
        "deployment/consent: runs no relay (SAMTYKKE_CONSENT_RELAY=false) and no workload runs "
        "`samtykke consent relay`: nothing would publish the outbox"
    ]


def test_wrong_container_port_is_reported(manifests: Manifests) -> None:
    _container(manifests, "consent")["ports"][0]["containerPort"] = 8001
    assert _problems(manifests) == [
        "deployment/consent: declares containerPort 8001, but its settings make it listen on 8000",
        "deployment/consent: listens on 8000, but declares no such containerPort",
        "service/consent: targetPort 8000 is not a containerPort of deployment/consent (8001)",
    ]


def test_probe_on_another_port_is_reported(manifests: Manifests) -> None:
    _container(manifests, "projector-customer-service")["readinessProbe"]["httpGet"]["port"] = 8101
    assert _problems(manifests) == [
        "deployment/projector-customer-service: readinessProbe probes port 8101, but its "
        "settings make it listen on 8103"
    ]


def test_probe_on_the_wrong_path_is_reported(manifests: Manifests) -> None:
    _container(manifests, "suppression")["livenessProbe"]["httpGet"]["path"] = "/ready"
    assert _problems(manifests) == ["deployment/suppression: livenessProbe probes /ready, not /healthz"]


def test_scrape_annotation_on_another_port_is_reported(manifests: Manifests) -> None:
    _pod(manifests, "projector-analytics")["metadata"]["annotations"]["prometheus.io/port"] = "8100"
    assert _problems(manifests) == [
        "deployment/projector-analytics: pod annotation prometheus.io/port='8100', expected '8102'"
    ]


def test_projector_port_follows_its_domain(manifests: Manifests) -> None:
    _container(manifests, "projector-marketing")["args"] = ["projections", "run", "analytics"]
    listening = "but its settings make it listen on 8102"
    assert _problems(manifests) == [
        f"deployment/projector-marketing: declares containerPort 8101, {listening}",
        "deployment/projector-marketing: listens on 8102, but declares no such containerPort",
        f"deployment/projector-marketing: readinessProbe probes port 8101, {listening}",
        f"deployment/projector-marketing: livenessProbe probes port 8101, {listening}",
        "deployment/projector-marketing: pod annotation prometheus.io/port='8101', expected '8102'",
        "deployment/projector-marketing: its role password for analytics differs from the one "
        "job/samtykke-provision sets (SAMTYKKE_PROJECTION_ROLE_PASSWORD or its entry in "
        "SAMTYKKE_PROJECTION_ROLE_PASSWORDS); projectors log in with the password provisioning set on their roles",
    ]


def test_deployment_selector_not_matching_its_pods_is_reported(manifests: Manifests) -> None:
    selector = _doc(manifests, "Deployment", "consent")["spec"]["selector"]["matchLabels"]
    selector["app.kubernetes.io/component"] = "consent-api"
    problems = _problems(manifests)
    assert problems[0].startswith(
        "deployment/consent: selector {'app.kubernetes.io/name': 'samtykke', "
        "'app.kubernetes.io/component': 'consent-api'} does not match its pod labels"
    )
    assert len(problems) == 1


def test_user_other_than_the_image_user_is_reported(manifests: Manifests) -> None:
    _pod(manifests, "suppression")["spec"]["securityContext"]["runAsUser"] = 1000
    assert _problems(manifests) == ["deployment/suppression: runs as user 1000, but the image's user is 10001"]


def test_missing_run_as_non_root_is_reported(manifests: Manifests) -> None:
    del _pod(manifests, "consent")["spec"]["securityContext"]["runAsNonRoot"]
    assert _problems(manifests) == ["deployment/consent: does not set securityContext.runAsNonRoot: true"]


def test_missing_resource_limits_are_reported(manifests: Manifests) -> None:
    del _container(manifests, "projector-marketing")["resources"]["limits"]
    assert _problems(manifests) == ["deployment/projector-marketing: sets no resources limits.cpu, limits.memory"]


def test_read_only_root_without_a_state_mount_is_reported(manifests: Manifests) -> None:
    container = _container(manifests, "projector-analytics")
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "state"]
    assert _problems(manifests) == [
        "deployment/projector-analytics: root filesystem is read-only, but nothing is mounted "
        "at SAMTYKKE_STATE_DIR /app/.state"
    ]


def test_other_image_is_reported(manifests: Manifests) -> None:
    _container(manifests, "suppression")["image"] = "samtykke:0.0.9"
    assert _problems(manifests) == [
        "deployment/suppression: runs image 'samtykke:0.0.9', the other workloads 'samtykke:0.1.0'"
    ]


# -- deliberate mistakes: services, autoscalers, disruption budgets ----------------------


def test_service_selector_matching_no_pods_is_reported(manifests: Manifests) -> None:
    _doc(manifests, "Service", "suppression")["spec"]["selector"]["app.kubernetes.io/component"] = "gate"
    assert _problems(manifests) == [
        "service/suppression: selector {'app.kubernetes.io/name': 'samtykke', "
        "'app.kubernetes.io/component': 'gate'} matches no Deployment's pods"
    ]


def test_service_target_port_mismatch_is_reported(manifests: Manifests) -> None:
    _doc(manifests, "Service", "projector-marketing")["spec"]["ports"][0]["targetPort"] = 8100
    assert _problems(manifests) == [
        "service/projector-marketing: targetPort 8100 is not a containerPort of deployment/projector-marketing (8101)"
    ]


def test_autoscaler_of_a_missing_deployment_is_reported(manifests: Manifests) -> None:
    _doc(manifests, "HorizontalPodAutoscaler", "consent")["spec"]["scaleTargetRef"]["name"] = "consent-api"
    assert _problems(manifests) == [
        "horizontalpodautoscaler/consent: scales deployment/consent-api, which is not a Deployment in the manifests",
        # without its autoscaler, consent runs the default single replica
        "poddisruptionbudget/consent: minAvailable 1 with 1 replicas of deployment/consent "
        "blocks every voluntary eviction",
    ]


def test_autoscaling_a_projector_beyond_its_partitions_is_reported(manifests: Manifests) -> None:
    hpa = copy.deepcopy(_doc(manifests, "HorizontalPodAutoscaler", "consent"))
    hpa["metadata"]["name"] = "projector-marketing"
    hpa["spec"]["scaleTargetRef"]["name"] = "projector-marketing"
    hpa["spec"]["maxReplicas"] = 12
    manifests.documents.append(Document("projector-marketing.yaml", hpa))
    assert _problems(manifests) == [
        "horizontalpodautoscaler/projector-marketing: scales deployment/projector-marketing to "
        "12 replicas, but its consumer group has 6 partitions per topic: the rest would idle"
    ]


def test_disruption_budget_selecting_nothing_is_reported(manifests: Manifests) -> None:
    selector = _doc(manifests, "PodDisruptionBudget", "projector-analytics")["spec"]["selector"]
    selector["matchLabels"]["app.kubernetes.io/component"] = "analytics"
    assert _problems(manifests) == [
        "poddisruptionbudget/projector-analytics: selector {'app.kubernetes.io/name': 'samtykke', "
        "'app.kubernetes.io/component': 'analytics'} matches no Deployment's pods"
    ]


def test_disruption_budget_blocking_every_eviction_is_reported(manifests: Manifests) -> None:
    _doc(manifests, "PodDisruptionBudget", "consent")["spec"]["minAvailable"] = 2
    assert _problems(manifests) == [
        "poddisruptionbudget/consent: minAvailable 2 with 2 replicas of deployment/consent "
        "blocks every voluntary eviction"
    ]
