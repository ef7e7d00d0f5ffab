"""The documents in schemas/ (AsyncAPI for the topics, OpenAPI for the HTTP services) say what the code does.

The committed files must equal what `samtykke docs export` writes now; the AsyncAPI document must hold
together, name every topic the code touches, and carry the partitions, topic configs, dead-letter
headers and Avro schemas the code actually uses. No sockets: building the apps must not connect.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar
from uuid import UUID, uuid4

import pytest
import yaml
from prometheus_client import CollectorRegistry

from samtykke import docs
from samtykke.adapters import kafka
from samtykke.cli import main
from samtykke.consent import relay
from samtykke.consent.app import create_app as consent_app
from samtykke.consent.memory import MemoryConsentStore
from samtykke.consent.metrics import ConsentMetrics
from samtykke.domain.consent_keys import murmur2
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.projections.dead_letters import DeadLetterQueue, dead_letter_topic
from samtykke.projections.domains import DOMAINS
from samtykke.projections.messages import PoisonKind, PoisonMessage, RawMessage
from samtykke.suppression import feed as suppression_feed
from samtykke.suppression import register_topic
from samtykke.suppression.metrics import SuppressionMetrics

SETTINGS = docs.contract_settings()
SUBJECT = "7d3f0a52-5b8e-4c1e-9a55-0c2b7f5e9d11"
REGENERATE = "the documents in schemas/ drifted from the code: run `samtykke docs export` and commit the result"


@pytest.fixture(scope="module", autouse=True)
def no_network() -> Iterator[None]:
    """Unit tier: anything that tries to connect fails the test instead of waiting on a server."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a unit test tried to connect: {args!r}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield


@pytest.fixture(scope="module")
def documents(no_network: None) -> dict[str, str]:
    return docs.build_documents()


@pytest.fixture(scope="module")
def asyncapi(no_network: None) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((docs.schemas_dir() / docs.ASYNCAPI).read_text("utf-8"))
    return loaded


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are expected, got {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def channel_of(asyncapi: dict[str, Any], topic: str) -> dict[str, Any]:
    found = [channel for channel in asyncapi["channels"].values() if channel["address"] == topic]
    assert len(found) == 1, f"{topic}: {len(found)} channels"
    return found[0]


# -- the committed files are what the code exports ----------------------------------------------------


def test_committed_documents_equal_the_export(documents: dict[str, str]) -> None:
    drifts = docs.find_drift(documents, docs.schemas_dir())
    assert not drifts, REGENERATE + "\n" + "\n".join(drift.summary() for drift in drifts)


def test_export_is_deterministic_and_ignores_the_environment(
    documents: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMTYKKE_TOPIC_CHANGES", "somewhere.else")
    monkeypatch.setenv("SAMTYKKE_TOPIC_PARTITIONS", "2")
    assert docs.build_documents() == documents


def test_building_an_app_for_its_document_runs_no_lifespan() -> None:
    app = consent_app(SETTINGS)
    assert app.openapi()["paths"]
    assert not hasattr(app.state, "pool")  # the lifespan, which connects, sets it


def test_openapi_documents_are_sorted_json(documents: dict[str, str]) -> None:
    for service in docs.OPENAPI_SERVICES:
        text = documents[f"openapi/{service}.json"]
        parsed = json.loads(text)
        assert parsed["openapi"].startswith("3.") and parsed["paths"]
        assert text == json.dumps(parsed, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# -- the AsyncAPI document holds together --------------------------------------------------------------


def test_asyncapi_is_structurally_valid(asyncapi: dict[str, Any]) -> None:
    assert asyncapi["asyncapi"] == "3.0.0"
    assert asyncapi["info"]["title"] and asyncapi["info"]["version"]
    for ref in references(asyncapi):
        resolve(asyncapi, ref)
    messages = asyncapi["components"]["messages"]
    for name, channel in asyncapi["channels"].items():
        assert channel["address"] and channel["messages"], name
        for message in channel["messages"].values():
            assert message["$ref"].removeprefix("#/components/messages/") in messages, name
    for name, operation in asyncapi["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        channel_ref = operation["channel"]["$ref"]
        channel = resolve(asyncapi, channel_ref)
        for message in operation["messages"]:  # an operation's messages must be its channel's
            prefix = f"{channel_ref}/messages/"
            assert message["$ref"].startswith(prefix), name
            assert message["$ref"].removeprefix(prefix) in channel["messages"], name
    for name, message in messages.items():
        assert message["payload"] and message["bindings"]["kafka"]["key"], name


def test_asyncapi_has_no_yaml_aliases() -> None:
    text = (docs.schemas_dir() / docs.ASYNCAPI).read_text("utf-8")
    assert "&id0" not in text and "*id0" not in text


def test_asyncapi_names_every_topic_the_code_uses(asyncapi: dict[str, Any]) -> None:
    groups = {domain.group(SETTINGS) for domain in DOMAINS.values()}
    expected = {
        SETTINGS.topic_changes,
        SETTINGS.topic_subjects,
        SETTINGS.suppression_dlq_topic,
        SETTINGS.topic_watermarks,
        SETTINGS.topic_registers,
        *(dead_letter_topic(group) for group in groups),
    }
    assert {channel["address"] for channel in asyncapi["channels"].values()} == expected

    def operations(action: str, topic: str) -> list[dict[str, Any]]:
        return [
            op
            for op in asyncapi["operations"].values()
            if op["action"] == action and resolve(asyncapi, op["channel"]["$ref"])["address"] == topic
        ]

    for topic in (SETTINGS.topic_changes, SETTINGS.topic_subjects):
        assert len(operations("send", topic)) == 1, f"{topic}: the consent service is its only producer"
        receivers = operations("receive", topic)
        consumer_groups = {op["bindings"]["kafka"]["groupId"]["enum"][0] for op in receivers if "bindings" in op}
        assert consumer_groups == groups
        assert len(receivers) == len(groups) + 1  # and the suppression service, without a group
    for group in groups:
        assert len(operations("send", dead_letter_topic(group))) == 1
    assert len(operations("send", SETTINGS.suppression_dlq_topic)) == 1


def test_keys_are_subject_ids_or_consents_never_identifiers(asyncapi: dict[str, Any]) -> None:
    subject_key = asyncapi["components"]["messages"]["SubjectChanged"]["bindings"]["kafka"]["key"]
    assert subject_key["format"] == "uuid" and "subject id" in subject_key["description"]
    assert "key = subject_id" in channel_of(asyncapi, SETTINGS.topic_subjects)["description"]
    consent_key = asyncapi["components"]["messages"]["ConsentChanged"]["bindings"]["kafka"]["key"]
    assert "<subject_id>/<purpose>/<channel>" in consent_key["description"]
    assert "tombstone" in consent_key["description"]
    changes = channel_of(asyncapi, SETTINGS.topic_changes)
    assert "murmur2(UTF-8 bytes of the subject id)" in changes["description"]
    assert changes["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"] == ["compact"]
    assert changes["bindings"]["kafka"]["topicConfiguration"]["min.compaction.lag.ms"] == 2 * 365 * 24 * 3600 * 1000


def test_embedded_avro_schemas_equal_the_avsc_files(asyncapi: dict[str, Any]) -> None:
    sources = {path.stem: json.loads(path.read_text("utf-8")) for path in SETTINGS.schema_dir.glob("*.avsc")}
    embedded = asyncapi["components"]["schemas"]
    assert set(embedded) == set(sources)
    for name, schema in sources.items():
        assert embedded[name] == {"schemaFormat": docs.AVRO_FORMAT, "schema": schema}, name


# -- partitions, configs, headers and keys are the code's ----------------------------------------------


class RecordingAdmin:
    created: ClassVar[list[Any]] = []

    def __init__(self, **options: object) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return []

    async def create_topics(self, topics: list[Any]) -> Any:
        RecordingAdmin.created.extend(topics)
        return SimpleNamespace(topic_errors=[(topic.name, 0, None) for topic in topics])


class RecordingBatch:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def append(self, *, timestamp: float | None, key: bytes | None, value: bytes | None, headers: Any) -> object:
        self.records.append({"key": key, "value": value, "headers": headers})
        return object()  # aiokafka's record metadata; None would mean the batch is full

    def close(self) -> None:
        pass


class RecordingProducer:
    """Records what is sent, one record at a time or as batches (as the relay sends), each acknowledged."""

    def __init__(self) -> None:
        self.sent: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def create_batch(self) -> RecordingBatch:
        return RecordingBatch()

    async def send_batch(self, batch: RecordingBatch, topic: str, *, partition: int) -> asyncio.Future[None]:
        self.sent += [((topic,), record | {"partition": partition}) for record in batch.records]
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged

    async def start(self) -> None:
        pass

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(6))

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> None:
        self.sent.append((args, kwargs))

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        self.sent.append((args, kwargs))

        async def acknowledged() -> None:
            pass

        return acknowledged()


async def test_partitions_and_topic_configs_are_what_the_code_creates(
    asyncapi: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    RecordingAdmin.created = []
    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", RecordingAdmin)
    monkeypatch.setattr(suppression_feed, "AIOKafkaAdminClient", RecordingAdmin)
    monkeypatch.setattr(suppression_feed, "idempotent_producer", lambda kafka: RecordingProducer())
    dead_letters = [dead_letter_topic(domain.group(SETTINGS)) for domain in DOMAINS.values()]
    plain = {"bootstrap_servers": SETTINGS.kafka_bootstrap}
    await kafka.ensure_topics(
        plain,
        SETTINGS.topic_changes,
        SETTINGS.topic_subjects,
        SETTINGS.topic_partitions,
        extra=dead_letters,
        watermarks=SETTINGS.topic_watermarks,
    )
    await kafka.ensure_topic(plain, SETTINGS.topic_registers, 1, register_topic.TOPIC_CONFIGS)
    feed = suppression_feed.TopicFeed(
        {"bootstrap_servers": SETTINGS.kafka_bootstrap},
        SETTINGS.topic_changes,
        SETTINGS.topic_subjects,
        {},
        None,
        None,
        SETTINGS.suppression_dlq_topic,
    )
    await feed._dlq_producer()
    created = {topic.name: topic for topic in RecordingAdmin.created}
    assert set(created) == {channel["address"] for channel in asyncapi["channels"].values()}
    for name, topic in created.items():
        binding = channel_of(asyncapi, name)["bindings"]["kafka"]
        assert binding["partitions"] == topic.num_partitions, name
        assert binding["topicConfiguration"] == docs.topic_configuration(topic.topic_configs), name


async def test_projector_dead_letter_headers_are_what_the_projector_sends(asyncapi: dict[str, Any]) -> None:
    sent: list[Any] = []

    async def send(topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        sent.append((topic, key, value, headers))

    message = RawMessage(SETTINGS.topic_changes, 3, 41, SUBJECT.encode(), b"\x00junk", (("traceparent", b"x"),))
    await DeadLetterQueue("samtykke.marketing", send).put(message, PoisonMessage(PoisonKind.UNDECODABLE, "bad"))
    [(_, key, value, headers)] = sent
    documented = asyncapi["components"]["messages"]["ProjectorDeadLetter"]["headers"]
    assert [name for name, _ in headers] == [*documented["properties"], "source_traceparent"]
    assert set(documented["required"]) == set(documented["properties"])
    assert documented["properties"]["reason_kind"]["enum"] == [kind.value for kind in PoisonKind]
    assert (key, value) == (message.key, message.value)


async def test_suppression_dead_letter_headers_are_what_the_feed_sends(asyncapi: dict[str, Any]) -> None:
    class Index:
        def taint(self, key: str | None) -> None:
            pass

    class Message:
        topic, partition, offset, key, value, headers = SETTINGS.topic_changes, 2, 7, SUBJECT.encode(), b"\x00junk", ()

    producer = RecordingProducer()
    feed = suppression_feed.TopicFeed(
        {"bootstrap_servers": SETTINGS.kafka_bootstrap},
        SETTINGS.topic_changes,
        SETTINGS.topic_subjects,
        {},
        Index(),
        SuppressionMetrics(CollectorRegistry()),
        SETTINGS.suppression_dlq_topic,
    )

    async def ready_producer() -> RecordingProducer:
        return producer

    feed._dlq_producer = ready_producer
    await feed._dead_letter(suppression_feed.TopicPartition(SETTINGS.topic_changes, 2), Message(), ValueError("bad"))
    [(args, kwargs)] = producer.sent
    documented = asyncapi["components"]["messages"]["SuppressionDeadLetter"]["headers"]
    assert [name for name, _ in kwargs["headers"]] == list(documented["properties"])
    assert args == (SETTINGS.suppression_dlq_topic, Message.value) and kwargs["key"] == Message.key


async def test_the_consent_service_keys_every_event_by_subject_id(asyncapi: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    change = ConsentChanged(
        str(uuid4()),
        SUBJECT,
        "consumer",
        None,
        "DK",
        "direct_marketing",
        "sms",
        "granted",
        None,
        1,
        now,
        now,
        None,
        "self_service",
        "subject",
        None,
        None,
        None,
    )
    subject = SubjectChanged(str(uuid4()), SUBJECT, "consumer", "DK", None, None, None, None, False, 1, now)
    store = MemoryConsentStore()  # held to the PostgreSQL store's contract by test_consent_store_contract
    async with store.transaction() as uow:
        await uow.save_changes([change], None, SETTINGS.topic_changes)
        await uow.enqueue_subject(SETTINGS.topic_subjects, subject)
    enqueued = await store.pending_outbox(10)
    assert [(m.topic, m.key) for m in enqueued] == [
        (SETTINGS.topic_changes, f"{SUBJECT}/direct_marketing/sms"),
        (SETTINGS.topic_subjects, SUBJECT),
    ]
    for message in enqueued:
        documented = channel_of(asyncapi, message.topic)["messages"]
        assert list(documented) == [message.schema_name], message.topic
        key = asyncapi["components"]["messages"][message.schema_name]["bindings"]["kafka"]["key"]
        assert message.payload is not None
        if "pattern" in key:  # the consent: its subject, purpose and channel
            assert re.fullmatch(key["pattern"], message.key)
            assert message.key.split("/")[0] == message.payload["subject_id"]
        else:
            assert key["format"] == "uuid" and str(UUID(message.key)) == message.key == message.payload["subject_id"]

    class Encoder:
        def encode(self, record: dict[str, Any]) -> bytes:
            return b"avro"

    producer = RecordingProducer()
    outbox = relay.OutboxRelay(
        None,  # the pool serves only leadership (LISTEN and the advisory lock), which publishing needs not
        store,
        lambda: producer,
        {"ConsentChanged": Encoder(), "SubjectChanged": Encoder()},
        ConsentMetrics(CollectorRegistry()),
        500,
        1.0,
        lambda: None,
    )
    outbox._producer = producer
    assert await outbox.publish_batch() == 2
    # both records of the subject in its partition: Kafka's murmur2 of the subject id, whatever the key
    partition = (murmur2(SUBJECT.encode()) & 0x7FFFFFFF) % 6
    assert [(args[0], kwargs["key"], kwargs["partition"]) for args, kwargs in producer.sent] == [
        (SETTINGS.topic_changes, f"{SUBJECT}/direct_marketing/sms".encode(), partition),
        (SETTINGS.topic_subjects, SUBJECT.encode(), partition),
    ]
    for args, kwargs in producer.sent:  # the CloudEvents headers the documents list
        documented = asyncapi["components"]["messages"][next(iter(channel_of(asyncapi, args[0])["messages"]))]
        sent = dict(kwargs["headers"])
        assert [name for name, _ in kwargs["headers"]] == list(documented["headers"]["properties"])
        assert sent["ce_type"].decode() in documented["headers"]["properties"]["ce_type"]["enum"]
    assert await store.pending_outbox(10) == []  # acknowledged rows are marked, not sent again


# -- drift is caught --------------------------------------------------------------------------------------


def test_check_reports_an_edited_document_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the generated tables go to a folder of the test's own, never to the checkout's docs/
    folders = ["--schemas", str(tmp_path), "--docs", str(tmp_path / "docs")]
    assert main(["docs", "export", *folders]) == 0
    assert main(["docs", "check", *folders]) == 0
    document = tmp_path / "openapi" / "consent.json"
    edited = json.loads(document.read_text("utf-8"))
    del edited["paths"]["/v1/purposes"]
    document.write_text(json.dumps(edited, indent=2, sort_keys=True) + "\n", "utf-8")
    (tmp_path / docs.ASYNCAPI).unlink()
    capsys.readouterr()

    assert main(["docs", "check", *folders]) == 1
    report = capsys.readouterr().err
    assert "openapi/consent.json: differs from the code" in report and '+    "/v1/purposes": {' in report
    assert "asyncapi.yaml: missing" in report
    assert "suppression.json" not in report
    assert "samtykke docs export" in report


def test_a_new_route_is_drift(documents: dict[str, str], tmp_path: Path) -> None:
    shutil.copytree(docs.schemas_dir() / "openapi", tmp_path / "openapi")
    app = consent_app(SETTINGS)

    @app.get("/v1/undocumented")
    async def undocumented() -> dict[str, str]:
        return {}

    exported = {"openapi/consent.json": docs.render_json(app.openapi())}
    [drift] = docs.find_drift(exported, tmp_path)
    assert drift.path == "openapi/consent.json" and not drift.missing
    assert any(line.startswith("+") and "/v1/undocumented" in line for line in drift.diff)
    assert docs.find_drift({"openapi/consent.json": documents["openapi/consent.json"]}, tmp_path) == []
