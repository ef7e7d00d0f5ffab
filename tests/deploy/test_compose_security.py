"""docker-compose.yml keeps the local stack's security: each weakening below is reported alone,
and the broker's committed ACLs are the ones the code renders."""

from __future__ import annotations

from typing import Any

from samtykke.adapters.settings import Settings

from .compose_service_check import effective_settings
from .kafka_acls import ACL_FILE, committed_lines, expected_lines
from .test_compose import _problems, _service, compose  # noqa: F401  (the fixture)

NO_PASSWORD_VARIABLE = (
    "logs in to Kafka without its own SAMTYKKE_KAFKA_USERNAME and a SAMTYKKE_KAFKA_PASSWORD from a variable"
)


def test_committed_acls_are_the_rendered_ones(compose: dict[str, Any]) -> None:  # noqa: F811
    settings = effective_settings(_service(compose, "consent"), Settings)
    assert settings is not None
    assert committed_lines() == expected_lines(settings), (
        f"{ACL_FILE} is out of date: regenerate it with `python -m tests.deploy.kafka_acls`"
    )


def test_client_on_plaintext_is_reported(compose: dict[str, Any]) -> None:  # noqa: F811
    _service(compose, "suppression")["environment"]["SAMTYKKE_KAFKA_SECURITY_PROTOCOL"] = "PLAINTEXT"
    assert _problems(compose) == [
        "suppression: connects to Kafka unencrypted (SAMTYKKE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT); use SASL_SSL"
    ]


def test_client_with_a_literal_password_is_reported(compose: dict[str, Any]) -> None:  # noqa: F811
    _service(compose, "consent")["environment"]["SAMTYKKE_KAFKA_PASSWORD"] = "hunter2"
    assert _problems(compose) == [
        f"consent: {NO_PASSWORD_VARIABLE}",
    ]


def test_client_without_a_username_is_reported(compose: dict[str, Any]) -> None:  # noqa: F811
    del _service(compose, "projector-analytics")["environment"]["SAMTYKKE_KAFKA_USERNAME"]
    assert _problems(compose) == [f"projector-analytics: {NO_PASSWORD_VARIABLE}"]


def test_client_password_other_than_its_scram_user_is_reported(compose: dict[str, Any]) -> None:  # noqa: F811
    env = _service(compose, "consent")["environment"]
    env["SAMTYKKE_KAFKA_PASSWORD"] = "${SAMTYKKE_KAFKA_PASSWORD_CONSENT_NEW:-dev-only-new}"
    assert _problems(compose) == [
        "consent: kafka-security gives Kafka user 'consent' another password than its SAMTYKKE_KAFKA_PASSWORD"
    ]


def test_client_user_nobody_creates_is_reported(compose: dict[str, Any]) -> None:  # noqa: F811
    del _service(compose, "kafka-security")["environment"]["SCRAM_PASSWORD_SUPPRESSION"]
    assert _problems(compose) == [
        "suppression: no service creates its Kafka user 'suppression' (SCRAM_PASSWORD_SUPPRESSION)"
    ]


def test_client_not_waiting_for_its_user_is_reported(compose: dict[str, Any]) -> None:  # noqa: F811
    del _service(compose, "suppression")["depends_on"]["kafka-security"]
    assert _problems(compose) == [
        "suppression: does not wait for kafka-security, which creates its Kafka user, to complete successfully"
    ]


def test_client_ca_file_on_no_volume_is_reported(compose: dict[str, Any]) -> None:  # noqa: F811
    del _service(compose, "projector-marketing")["volumes"]
    assert _problems(compose) == [
        "projector-marketing: SAMTYKKE_KAFKA_CA_FILE /etc/samtykke/kafka-ca/ca.pem is on no volume the service mounts"
    ]


def test_broker_plaintext_listener_is_reported(compose: dict[str, Any]) -> None:  # noqa: F811
    env = _service(compose, "kafka")["environment"]
    env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"] = env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].replace(
        "HOST:SASL_SSL", "HOST:PLAINTEXT"
    )
    assert _problems(compose) == ["kafka: listener HOST serves PLAINTEXT; every listener must use TLS"]


def test_broker_plaintext_controller_is_reported(compose: dict[str, Any]) -> None:  # noqa: F811
    env = _service(compose, "kafka")["environment"]
    env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"] = env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].replace(
        "CONTROLLER:SSL", "CONTROLLER:PLAINTEXT"
    )
    assert _problems(compose) == ["kafka: listener CONTROLLER serves PLAINTEXT; every listener must use TLS"]


def test_broker_without_authorizer_is_reported(compose: dict[str, Any]) -> None:  # noqa: F811
    del _service(compose, "kafka")["environment"]["KAFKA_AUTHORIZER_CLASS_NAME"]
    assert _problems(compose) == ["kafka: has no authorizer (KAFKA_AUTHORIZER_CLASS_NAME): any client may do anything"]


def test_broker_allowing_everyone_without_acls_is_reported(compose: dict[str, Any]) -> None:  # noqa: F811
    _service(compose, "kafka")["environment"]["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] = "true"
    assert _problems(compose) == ["kafka: KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND lets anyone use a resource without ACLs"]


def test_consent_logging_in_as_the_superuser_is_reported(compose: dict[str, Any]) -> None:  # noqa: F811
    owner = _service(compose, "provision")["environment"]["SAMTYKKE_DATABASE_URL"]
    _service(compose, "consent")["environment"]["SAMTYKKE_DATABASE_URL"] = owner
    assert _problems(compose) == [
        "consent: logs in to PostgreSQL as the superuser 'samtykke' (POSTGRES_USER); "
        "give it a login of its own (deploy/postgres)"
    ]


def test_projectors_sharing_a_password_variable_are_reported(compose: dict[str, Any]) -> None:  # noqa: F811
    marketing = _service(compose, "projector-marketing")["environment"]["SAMTYKKE_PROJECTION_ROLE_PASSWORD"]
    _service(compose, "projector-analytics")["environment"]["SAMTYKKE_PROJECTION_ROLE_PASSWORD"] = marketing
    problems = _problems(compose)
    assert problems[-1] == (
        "projector-marketing, projector-analytics: share the role password "
        "SAMTYKKE_PROJECTION_ROLE_PASSWORD_MARKETING; give each projector its own"
    )
    # and the analytics role's password is no longer the one provisioning sets
    assert problems[:-1] == [
        "projector-analytics: its role password for analytics differs from the one provision sets "
        "(SAMTYKKE_PROJECTION_ROLE_PASSWORD or its entry in SAMTYKKE_PROJECTION_ROLE_PASSWORDS); "
        "projectors log in with the password provisioning set on their roles"
    ]


def test_development_secrets_flag_with_a_public_port_is_reported(compose: dict[str, Any]) -> None:  # noqa: F811
    _service(compose, "grafana")["ports"] = ["3000:3000"]
    assert _problems(compose) == [
        "grafana: publishes 3000:3000 beyond loopback, while consent, projector-marketing, projector-analytics, "
        "projector-customer-service, suppression set SAMTYKKE_ALLOW_DEVELOPMENT_SECRETS=true; "
        "publish on 127.0.0.1 only"
    ]


def test_public_port_without_the_flag_is_accepted(compose: dict[str, Any]) -> None:  # noqa: F811
    for service in compose["services"].values():
        service.get("environment", {}).pop("SAMTYKKE_ALLOW_DEVELOPMENT_SECRETS", None)
    _service(compose, "grafana")["ports"] = ["0.0.0.0:3000:3000"]
    assert _problems(compose) == []
