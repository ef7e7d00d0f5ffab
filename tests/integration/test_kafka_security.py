"""The secured local broker: SASL_SSL with SCRAM users, ACLs as code, a plaintext benchmark
listener that serves anonymous clients nothing of the platform's.

Every test here runs against brokers of this module's own (`KafkaBroker(secured=True)` in a
temporary state folder, on free ports), never the shared development broker; they are stopped at
the end of the module.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupAuthorizationFailedError, KafkaConnectionError, TopicAuthorizationFailedError

from samtykke.adapters.settings import Settings
from samtykke.devstack.acls import AclRule, acl_rules, projector_principal
from samtykke.devstack.kafka import KafkaBroker
from samtykke.devstack.kafka_credentials import benchmark_address, client_credentials, credentials_path
from samtykke.devstack.layout import StackLayout
from tests.ports import free_ports

pytestmark = pytest.mark.stack

AUTHORIZATION_FAILED = 29  # TOPIC_AUTHORIZATION_FAILED, in a CreateTopics response
MARKETING = projector_principal("marketing")
READY_TIMEOUT = 120.0


@dataclass
class LocalBroker:
    broker: KafkaBroker
    settings: Settings
    layout: StackLayout

    def client(self, principal: str, **overrides: Any) -> dict[str, Any]:
        """aiokafka keyword arguments for `principal` on the SASL_SSL listener."""
        return {**client_credentials(self.settings, principal, self.layout).client_options(), **overrides}

    @property
    def benchmark_bootstrap(self) -> str:
        return str(benchmark_address(self.settings))

    def start(self) -> None:
        self.broker.start()
        try:
            self.broker.wait_ready(READY_TIMEOUT)
        except BaseException:
            self.broker.stop(20)
            raise


def local_broker(state_dir: Path, secured: bool, lib_from: Path | None = None) -> LocalBroker:
    settings = Settings(state_dir=state_dir, kafka_bootstrap=f"127.0.0.1:{free_ports(5)}")
    layout = StackLayout.from_settings(settings)
    layout.ensure()
    broker = KafkaBroker(settings, layout, secured=secured)
    if lib_from is not None:  # the jars of this module's first broker: no second Maven run
        broker.home.mkdir(parents=True, exist_ok=True)
        broker.lib_dir.symlink_to(lib_from, target_is_directory=True)
    if not broker.is_installed():
        broker.install(print)
    return LocalBroker(broker, settings, layout)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    local = local_broker(tmp_path_factory.mktemp("secured") / ".state", secured=True)
    local.start()
    try:
        yield local
    finally:
        local.broker.stop(20)


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def create_topics(options: dict[str, Any], *names: str) -> dict[str, int]:
    """The error code per topic (0: created); CreateTopics answers per topic, it does not raise."""
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(name, 1, 1) for name in names])
        return {str(topic): int(code) for topic, code, *_ in response.topic_errors}
    finally:
        await admin.close()


async def list_topics(options: dict[str, Any]) -> list[str]:
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        return sorted(await admin.list_topics())
    finally:
        await admin.close()


async def produce(options: dict[str, Any], topic: str, value: bytes = b"v") -> None:
    producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True, request_timeout_ms=10_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


async def read(options: dict[str, Any], topic: str, group_id: str | None = None, timeout: float = 20) -> list[bytes]:
    """Every value of a one-partition topic: in `group_id`, or by assignment without a group."""
    consumer = AIOKafkaConsumer(**options, group_id=group_id, auto_offset_reset="earliest", enable_auto_commit=False)
    if group_id is not None:
        consumer.subscribe([topic])
    try:
        await consumer.start()
        if group_id is None:
            partition = TopicPartition(topic, 0)
            consumer.assign([partition])
            consumer.seek(partition, 0)  # these topics are new: nothing was deleted before offset 0
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while not values and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            values += [bytes(r.value) for records in batches.values() for r in records if r.value is not None]
        return values
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
async def contract(secured: LocalBroker) -> dict[str, int]:
    """The contract topics as the consent service makes them, with a change and a watermark."""
    settings = secured.settings
    names = (settings.topic_changes, settings.topic_subjects, settings.topic_watermarks)
    created = await create_topics(secured.client("consent"), *names)
    await produce(secured.client("consent"), settings.topic_changes, b"granted")
    await produce(secured.client("consent"), settings.topic_watermarks, b"through")
    return created


async def test_admin_over_sasl_ssl_creates_a_topic_and_round_trips(secured: LocalBroker) -> None:
    topic = unique()
    assert await create_topics(secured.client("admin"), topic) == {topic: 0}
    await produce(secured.client("admin"), topic, b"hello over TLS")
    assert await read(secured.client("admin"), topic) == [b"hello over TLS"]


async def test_the_consent_service_creates_and_writes_the_contract_topics(
    secured: LocalBroker, contract: dict[str, int]
) -> None:
    settings = secured.settings
    assert contract == {settings.topic_changes: 0, settings.topic_subjects: 0, settings.topic_watermarks: 0}
    # but only those: not the suppression service's registers beside them, nor anything else
    other = unique("consent.")
    assert await create_topics(secured.client("consent"), settings.topic_registers, other) == {
        settings.topic_registers: AUTHORIZATION_FAILED,
        other: AUTHORIZATION_FAILED,
    }


async def test_a_projector_reads_the_contract_in_its_group_but_may_not_write_it(
    secured: LocalBroker, contract: dict[str, int]
) -> None:
    changes = secured.settings.topic_changes
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(secured.client(MARKETING), changes, b"forged")
    group = f"{secured.settings.projection_group_prefix}.marketing"
    assert await read(secured.client(MARKETING), changes, group_id=group) == [b"granted"]
    assert await read(secured.client(MARKETING), secured.settings.topic_watermarks) == [b"through"]


async def test_a_projector_may_not_join_another_group(secured: LocalBroker, contract: dict[str, int]) -> None:
    other_group = f"{secured.settings.projection_group_prefix}.analytics"
    with pytest.raises(GroupAuthorizationFailedError):
        await read(secured.client(MARKETING), secured.settings.topic_changes, group_id=other_group)


async def test_a_projector_writes_its_own_dead_letter_topic_only(secured: LocalBroker) -> None:
    own, other = "samtykke.marketing.dlq", "samtykke.analytics.dlq"
    assert await create_topics(secured.client(MARKETING), own, other) == {own: 0, other: AUTHORIZATION_FAILED}
    await produce(secured.client(MARKETING), own, b"poison")
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(secured.client(MARKETING), secured.settings.suppression_dlq_topic, b"poison")


async def test_the_suppression_service_reads_by_assignment_and_owns_its_dead_letters_and_registers(
    secured: LocalBroker, contract: dict[str, int]
) -> None:
    settings = secured.settings
    assert await read(secured.client("suppression"), settings.topic_changes) == [b"granted"]
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(secured.client("suppression"), settings.topic_changes, b"forged")
    dlq, registers = settings.suppression_dlq_topic, settings.topic_registers
    assert await create_topics(secured.client("suppression"), dlq, registers) == {dlq: 0, registers: 0}
    await produce(secured.client("suppression"), dlq, b"undecodable")
    await produce(secured.client("suppression"), registers, b"snapshot")
    assert await read(secured.client("suppression"), registers) == [b"snapshot"]


async def test_tools_creates_and_uses_randomly_prefixed_test_topics(secured: LocalBroker) -> None:
    prefix = unique()
    changes, subjects = f"{prefix}.consent.changes", f"{prefix}.consent.subjects"
    assert await create_topics(secured.client("tools"), changes, subjects) == {changes: 0, subjects: 0}
    await produce(secured.client("tools"), changes, b"test event")
    assert await read(secured.client("tools"), changes, group_id=f"{prefix}.marketing") == [b"test event"]


async def test_a_wrong_password_is_refused(secured: LocalBroker) -> None:
    with pytest.raises(KafkaConnectionError):
        await list_topics(secured.client("admin", sasl_plain_password="not-the-password"))
    with pytest.raises(KafkaConnectionError):  # one user's password is not another's
        await list_topics(secured.client("tools", sasl_plain_username="admin"))


async def test_a_plaintext_client_on_the_sasl_ssl_port_is_refused(secured: LocalBroker) -> None:
    with pytest.raises(KafkaConnectionError):
        await list_topics({"bootstrap_servers": secured.settings.kafka_bootstrap, "request_timeout_ms": 5000})


async def test_a_client_without_credentials_on_the_benchmark_listener_can_do_nothing_on_consent(
    secured: LocalBroker, contract: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    anonymous = {"bootstrap_servers": secured.benchmark_bootstrap}
    changes = secured.settings.topic_changes
    assert not [topic for topic in await list_topics(anonymous) if topic.startswith("consent.")]
    forged = unique("consent.")
    assert await create_topics(anonymous, forged) == {forged: AUTHORIZATION_FAILED}
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(anonymous, changes, b"forged")
    # an assigned consumer gets no error (aiokafka only logs the refusal), and no record
    assert await read(anonymous, changes, timeout=3) == []
    assert f"Topic {changes} is not authorized for this client" in caplog.text
    # what the listener is for: the benchmark floor's own topics, without TLS or SASL
    floor = unique("bench-floor-")
    assert await create_topics(anonymous, floor) == {floor: 0}
    await produce(anonymous, floor, b"floor")
    assert await read(anonymous, floor) == [b"floor"]


async def test_the_broker_s_acls_follow_the_code(secured: LocalBroker, contract: dict[str, int]) -> None:
    changes = secured.settings.topic_changes
    granted = AclRule(MARKETING, "TOPIC", "LITERAL", changes, ("WRITE",))
    secured.broker.apply_security([*acl_rules(secured.settings), granted])
    await produce(secured.client(MARKETING), changes, b"now allowed")

    secured.broker.apply_security()  # back to the code: the extra binding is removed
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(secured.client(MARKETING), changes, b"refused again")


async def test_a_restart_keeps_the_tls_material_passwords_and_data(
    secured: LocalBroker, contract: dict[str, int]
) -> None:
    tls = secured.broker.tls
    secrets = [credentials_path(secured.layout), secured.broker.config_path, *tls.folder.glob("*.password")]
    kept = [tls.ca_pem, tls.keystore, tls.truststore, *secrets]
    before = {path: path.read_bytes() for path in kept}
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in secrets)

    secured.broker.stop(20)
    secured.start()

    assert {path: path.read_bytes() for path in kept} == before
    assert b"granted" in await read(secured.client("admin"), secured.settings.topic_changes)


async def test_a_plaintext_stack_switched_to_secured_gets_its_users(
    secured: LocalBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A log directory formatted without SCRAM users (today's plaintext development stack) is
    given every user and ACL at its first secured start, and keeps its data."""
    state = tmp_path_factory.mktemp("switched") / ".state"
    plain = local_broker(state, secured=False, lib_from=secured.broker.lib_dir)
    plain.start()
    try:
        topic = unique()
        bootstrap = {"bootstrap_servers": plain.settings.kafka_bootstrap}
        assert await create_topics(bootstrap, topic) == {topic: 0}
        await produce(bootstrap, topic, b"from the plaintext days")
    finally:
        plain.broker.stop(20)

    switched = LocalBroker(KafkaBroker(plain.settings, plain.layout, secured=True), plain.settings, plain.layout)
    switched.start()
    try:
        assert await read(switched.client("admin"), topic) == [b"from the plaintext days"]
        with pytest.raises(TopicAuthorizationFailedError):
            await produce(switched.client(MARKETING), topic, b"refused")
        with pytest.raises(KafkaConnectionError):
            await list_topics({**bootstrap, "request_timeout_ms": 5000})
    finally:
        switched.broker.stop(20)
