"""The optional Strimzi resources (deploy/k8s/strimzi) grant what the ACLs as code grant.

Each service's KafkaUser carries exactly the bindings `devstack.acls.acl_rules` gives its
principal for the default names, each KafkaTopic the partitions and configs the code creates the
topic with, and every Deployment logs in as a KafkaUser whose password Secret it reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from samtykke import docs
from samtykke.devstack.acls import ADMIN, ANONYMOUS, TOOLS, AclRule, acl_rules

from .k8s_manifests_check import containers, load_manifests

ROOT = Path(__file__).resolve().parents[2]
STRIMZI = ROOT / "deploy" / "k8s" / "strimzi"
SETTINGS = docs.contract_settings()
# users of the local stack only: the broker's own, the tests' and the benchmark listener's
DEVELOPMENT_PRINCIPALS = {ADMIN, TOOLS, ANONYMOUS}
RESOURCE_TYPES = {"topic": "TOPIC", "group": "GROUP", "cluster": "CLUSTER", "transactionalId": "TRANSACTIONAL_ID"}
PATTERNS = {"literal": "LITERAL", "prefix": "PREFIXED"}


def strimzi_documents(kind: str) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((STRIMZI / "kustomization.yaml").read_text())
    found = []
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((STRIMZI / resource).read_text()):
            if document and document["kind"] == kind:
                found.append(document)
    return found


def bindings(rules: list[AclRule]) -> set[tuple[str, str, str, str]]:
    return {
        (rule.resource_type, rule.pattern_type, rule.resource_name, operation)
        for rule in rules
        for operation in rule.operations
    }


def user_bindings(user: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    found = set()
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        kind = RESOURCE_TYPES[resource["type"]]
        name = resource.get("name", "kafka-cluster")
        pattern = PATTERNS[resource.get("patternType", "literal")]
        assert acl.get("host", "*") == "*", user["metadata"]["name"]
        for operation in acl["operations"]:
            found.add((kind, pattern, name, "".join(f"_{c}" if c.isupper() else c for c in operation)[1:].upper()))
    return found


def test_every_service_principal_has_a_kafka_user_with_the_acls_of_the_code() -> None:
    rules = acl_rules(SETTINGS)
    services = {rule.principal for rule in rules} - DEVELOPMENT_PRINCIPALS
    users = {user["metadata"]["name"]: user for user in strimzi_documents("KafkaUser")}
    assert set(users) == services
    for principal, user in users.items():
        assert user["spec"]["authentication"]["type"] == "scram-sha-512", principal
        assert user_bindings(user) == bindings([r for r in rules if r.principal == principal]), principal


def test_only_the_consent_principal_writes_the_contract_and_only_suppression_the_registers() -> None:
    writers: dict[str, set[str]] = {}
    for user in strimzi_documents("KafkaUser"):
        for kind, _, name, operation in user_bindings(user):
            if kind == "TOPIC" and operation in {"WRITE", "ALL"}:
                writers.setdefault(name, set()).add(user["metadata"]["name"])
    for topic in (SETTINGS.topic_changes, SETTINGS.topic_subjects, SETTINGS.topic_watermarks):
        assert writers[topic] == {"consent"}, topic
    assert writers[SETTINGS.topic_registers] == {"suppression"}


def test_every_topic_is_declared_as_the_code_creates_it() -> None:
    topics = {topic["spec"]["topicName"]: topic["spec"] for topic in strimzi_documents("KafkaTopic")}
    wanted = {spec.name: spec for spec in docs.contract_topics(SETTINGS).values()}
    assert set(topics) == set(wanted)
    for name, spec in wanted.items():
        assert topics[name]["partitions"] == spec.partitions, name
        configs = {key: str(value) for key, value in topics[name]["config"].items()}
        assert {key: configs.get(key) for key in spec.configs} == dict(spec.configs), name


def test_each_deployment_logs_in_as_a_kafka_user_with_that_user_s_password_secret() -> None:
    users = {user["metadata"]["name"]: user for user in strimzi_documents("KafkaUser")}
    manifests = load_manifests(STRIMZI.parent)
    secrets = {doc.name: doc.body for doc in manifests.of_kind("Secret")}
    logins = set()
    for doc in manifests.of_kind("Deployment"):
        for container in containers(doc):
            env = {entry["name"]: entry for entry in container.get("env", [])}
            username = env["SAMTYKKE_KAFKA_USERNAME"]["value"]
            reference = env["SAMTYKKE_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"]
            password = users[username]["spec"]["authentication"]["password"]["valueFrom"]["secretKeyRef"]
            assert reference == password, doc.ref
            assert reference["key"] in secrets[reference["name"]]["stringData"], doc.ref
            logins.add(username)
    assert logins == set(users)
