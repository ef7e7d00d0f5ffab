"""The platform on the shared secured development broker: each service logs in as its own principal.

`samtykke up` starts every service with its own Kafka user (`devstack.platform`); the broker's ACLs
(`devstack.acls`) decide what each may do. Here the running consent service publishes a change as
`consent`, while the marketing projector's credential is refused when it tries to write the same
topic, and a client without TLS and SASL gets nothing from the client port. Only the consent
service is needed (started as `samtykke up` starts it, or reused); the other services' logins are
checked when they run.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from samtykke.adapters.kafka import assign_all, client_options
from samtykke.adapters.settings import Settings, get_settings
from samtykke.devstack.acls import projector_principal
from samtykke.devstack.layout import StackLayout
from samtykke.devstack.platform import PLATFORM_SERVICES, start_services
from samtykke.devstack.process import DetachedProcess
from samtykke.domain.consent_keys import consent_key

from ..conftest import StackEndpoints

pytestmark = pytest.mark.stack
WRITER = {"Authorization": "Bearer dev-writer"}


@pytest.fixture(scope="module")
def platform(stack: StackEndpoints) -> Settings:
    """The platform's settings, with its consent service running."""
    settings = get_settings()
    start_services(settings, only={"consent"})
    return settings


def running_environment(settings: Settings, service: str) -> dict[str, str] | None:
    layout = StackLayout.from_settings(settings)
    pid = DetachedProcess(service, layout.pid_path(service), layout.log_path(service), "samtykke.cli").running_pid()
    if pid is None:
        return None
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)


def test_each_running_service_logs_in_as_its_own_principal_without_a_password_in_its_environment(
    platform: Settings,
) -> None:
    checked = []
    for service in PLATFORM_SERVICES:
        env = running_environment(platform, service.name)
        if env is None:
            continue
        assert env.get("SAMTYKKE_KAFKA_USERNAME") == service.principal, service.name
        assert "SAMTYKKE_KAFKA_PASSWORD" not in env, service.name
        checked.append(service.name)
    assert "consent" in checked


async def test_the_consent_service_publishes_as_its_own_principal(platform: Settings) -> None:
    kafka = client_options(platform)  # the tests' own user, `tools`, reads
    consumer = AIOKafkaConsumer(**kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        await assign_all(consumer, kafka, [platform.topic_changes], "end", wait_seconds=30)
        base = f"http://{platform.http_host}:{platform.consent_port}"
        async with httpx.AsyncClient(base_url=base, headers=WRITER, timeout=10) as client:
            registered = await client.post("/v1/subjects", json={"kind": "consumer", "country": "NO"})
            assert registered.status_code == 201, registered.text
            subject = str(registered.json()["subject_id"])
            granted = await client.post(
                f"/v1/subjects/{subject}/consents",
                json={
                    "decisions": [{"purpose": "direct_marketing", "channel": "sms", "action": "grant"}],
                    "source": "self_service",
                    "actor": {"kind": "subject"},
                    "notice_version": "dm-2026-01",
                    "evidence_ref": f"principals-{uuid.uuid4().hex[:8]}",
                },
            )
            assert granted.status_code == 201, granted.text
        # the record is keyed by the consent: <subject>/<purpose>/<channel>
        expected = consent_key(subject, "direct_marketing", "sms").encode()
        deadline, keys = time.monotonic() + 60, set[bytes]()
        while expected not in keys and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            keys |= {record.key for records in batches.values() for record in records if record.key}
        assert expected in keys, "the consent service's change never reached the topic"
    finally:
        await consumer.stop()


async def test_a_projector_credential_may_not_write_consent_changes(platform: Settings) -> None:
    projector = platform.model_copy(update={"kafka_username": projector_principal("marketing")})
    producer = AIOKafkaProducer(**client_options(projector), request_timeout_ms=10_000)
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(platform.topic_changes, b"forged", key=b"someone")
    finally:
        await producer.stop()


async def test_a_client_without_tls_and_sasl_is_refused_on_the_client_port(platform: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=platform.kafka_bootstrap, request_timeout_ms=5000)
    try:
        with pytest.raises(KafkaConnectionError):
            await admin.start()
            await admin.list_topics()
    finally:
        await admin.close()
