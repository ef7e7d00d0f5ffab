"""Readiness, failing closed, bulk and streamed checks, the suppression list and its change feed,
poison messages, credentials and metrics — all against the real stack."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition

from samtykke.adapters import dead_letters
from samtykke.adapters.avro import AvroEncoder, SchemaRegistry, load_schema
from samtykke.adapters.kafka import client_options, idempotent_producer

from ..conftest import RunningConsent
from .conftest import RunningSuppression
from .helpers import decide, register

Start = Callable[..., Awaitable[RunningSuppression]]
DM_SMS = {"purpose": "direct_marketing", "channel": "sms"}


async def test_not_ready_until_caught_up(consent: RunningConsent, start_suppression: Start) -> None:
    subjects = [await register(consent, "DK") for _ in range(20)]
    for subject in subjects:
        await decide(consent, subject, ("direct_marketing", "sms", "grant"))
    await consent.wait_outbox_empty()
    service = await start_suppression(paused=True)
    await asyncio.sleep(1.0)
    ready = await service.client.get("/ready")
    assert ready.status_code == 503 and ready.json()["caught_up"] is False
    early = await service.check(subject_id=subjects[-1], **DM_SMS)
    assert early["result"] == "blocked" and early["reasons"][0] == "stale"
    service.feed.resume()
    await service.wait_ready(timeout=30)
    body = (await service.client.get("/ready")).json()
    assert body["subjects"] == 20 and body["caught_up"] is True
    assert (await service.check(subject_id=subjects[-1], **DM_SMS))["result"] == "allowed"


async def test_a_stalled_feed_fails_closed(consent: RunningConsent, start_suppression: Start) -> None:
    subject = await register(consent, "SE")
    await decide(consent, subject, ("direct_marketing", "sms", "grant"))
    await consent.wait_outbox_empty()
    blocking = await start_suppression(suppression_max_lag_seconds=1.0)
    refusing = await start_suppression(suppression_max_lag_seconds=1.0, suppression_stale_response="503")
    for service in (blocking, refusing):
        await service.wait_ready()
        await service.wait_for(lambda d: d["result"] == "allowed", subject_id=subject, **DM_SMS)
        service.feed.pause()
    await asyncio.sleep(1.5)
    stale = await blocking.check(subject_id=subject, **DM_SMS)
    assert stale["result"] == "blocked" and stale["reasons"] == ["stale"]
    refused = await refusing.client.post("/v1/check", json={"subject_id": subject, **DM_SMS})
    assert refused.status_code == 503 and refused.json()["error"] == "stale_index"
    assert (await blocking.client.get("/ready")).json()["stale"] is True
    metrics = (await blocking.client.get("/metrics")).text
    assert 'samtykke_suppression_decisions_total{reason="stale",result="blocked"} 1.0' in metrics
    for service in (blocking, refusing):
        service.feed.resume()
    await blocking.wait_for(lambda d: d["result"] == "allowed", subject_id=subject, **DM_SMS)


async def test_bulk_json_rejects_the_batch_on_an_invalid_entry_unless_told_to_skip(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    yes = await register(consent, "DK", "+45 40 40 40 40")
    no = await register(consent, "DK", email="no@example.dk")
    await decide(consent, yes, ("direct_marketing", "sms", "grant"))
    await suppression.wait_for(lambda d: d["result"] == "allowed", subject_id=yes, **DM_SMS)
    entries = [
        {"subject_id": yes},
        {"phone": "+45 40 40 40 40"},
        {"email": "no@example.dk"},
        {"phone": "12"},
        {"subject_id": no, "phone": "+4540404040"},
    ]
    rejected = await suppression.client.post("/v1/check/bulk", json={**DM_SMS, "entries": entries})
    assert rejected.status_code == 422
    assert [p["field"] for p in rejected.json()["problems"]] == ["entries[3].phone", "entries[4]"]
    skipped = await suppression.client.post(
        "/v1/check/bulk", params={"skip_invalid": "true"}, json={**DM_SMS, "entries": entries}
    )
    body = skipped.json()
    assert (body["checked"], body["blocked"], body["invalid"]) == (3, 1, 2)
    assert [(r["index"], r["result"]) for r in body["results"]] == [(2, "blocked"), (3, "invalid"), (4, "invalid")]
    full = await suppression.client.post(
        "/v1/check/bulk", params={"mode": "full"}, json={**DM_SMS, "entries": entries[:3]}
    )
    assert [r["result"] for r in full.json()["results"]] == ["allowed", "allowed", "blocked"]
    assert full.headers["RateLimit-Limit"] and int(full.headers["RateLimit-Remaining"]) >= 0


async def test_streamed_csv_ndjson_and_the_campaign_dry_run(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    yes = await register(consent, "DK")
    no = await register(consent, "DK")
    await decide(consent, yes, ("direct_marketing", "sms", "grant"))
    await decide(consent, no, ("direct_marketing", "sms", "withdraw"))
    await suppression.wait_for(lambda d: d["result"] == "allowed", subject_id=yes, **DM_SMS)
    await suppression.wait_for(lambda d: d["reasons"] == ["withdrawn"], subject_id=no, **DM_SMS)
    unknown = "00000000-0000-4000-8000-000000000000"
    csv = f"subject_id\n{yes}\n{no}\n{unknown}\n"
    response = await suppression.client.post(
        "/v1/check/stream", params=DM_SMS, content=csv, headers={"Content-Type": "text/csv"}
    )
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [(r["index"], r["reasons"]) for r in lines] == [(1, ["withdrawn"]), (2, ["unknown_subject"])]
    assert json.loads(response.headers["Suppression-Position"])
    as_csv = await suppression.client.post(
        "/v1/check/stream",
        params=DM_SMS | {"mode": "full"},
        content=csv,
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert as_csv.text.splitlines()[0] == "index,result,reasons,subject_ids,valid_until"
    assert len(as_csv.text.splitlines()) == 4
    ndjson = "\n".join(json.dumps(e) for e in ({"subject_id": yes}, {"email": "bad"}, {"subject_id": no}))
    bad = await suppression.client.post(
        "/v1/check/stream", params=DM_SMS, content=ndjson, headers={"Content-Type": "application/x-ndjson"}
    )
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "entries[1].email"
    dry = await suppression.client.post(
        "/v1/campaigns/dry-run",
        params=DM_SMS | {"skip_invalid": "true"},
        content=ndjson,
        headers={"Content-Type": "application/x-ndjson"},
    )
    summary = dry.json()
    assert (summary["total"], summary["allowed"], summary["blocked"], summary["invalid"]) == (3, 1, 1, 1)
    assert summary["blocked_by_reason"] == {"withdrawn": 1}


async def test_export_and_change_feed_include_removals(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    subject = await register(consent, "DK")
    await decide(consent, subject, ("direct_marketing", "email", "withdraw"))
    await suppression.wait_for(
        lambda d: d["reasons"] == ["withdrawn"], subject_id=subject, purpose="direct_marketing", channel="email"
    )
    export = await suppression.client.get("/v1/suppressions")
    entries = [json.loads(line) for line in export.text.splitlines()]
    assert {
        "subject_id": subject,
        "purpose": "direct_marketing",
        "channel": "email",
        "reasons": ["withdrawn"],
    } in entries
    cursor = export.headers["Suppression-Cursor"]
    await decide(consent, subject, ("direct_marketing", "email", "grant"))
    await decide(consent, subject, ("direct_marketing", "sms", "withdraw"))
    changes: list[dict[str, object]] = []
    for _ in range(200):
        page = (await suppression.client.get("/v1/suppressions/changes", params={"cursor": cursor})).json()
        changes += page["changes"]
        cursor = page["next_cursor"]
        if len(changes) >= 2:
            break
        await asyncio.sleep(0.05)
    assert [(c["action"], c["channel"]) for c in changes] == [("removed", "email"), ("added", "sms")]
    gone = await suppression.client.get("/v1/suppressions/changes", params={"cursor": "other-epoch.1"})
    assert gone.status_code == 410


async def test_an_undecodable_message_is_dead_lettered_and_never_allows(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    subject = await register(consent, "DK")
    await decide(consent, subject, ("direct_marketing", "sms", "grant"))
    await suppression.wait_for(lambda d: d["result"] == "allowed", subject_id=subject, **DM_SMS)
    # framed with the id of the topic's real schema (an unknown id is transient, not poison), then junk
    registry = SchemaRegistry(consent.settings.registry_url)
    schema = load_schema(consent.settings.schema_dir, "ConsentChanged")
    schema_id = await AvroEncoder(registry, consent.settings.topic_changes, schema).register()
    await registry.aclose()
    garbage = b"\x00" + struct.pack(">I", schema_id) + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    producer = idempotent_producer(client_options(consent.settings))
    await producer.start()
    try:
        await producer.send_and_wait(consent.settings.topic_changes, garbage, key=subject.encode())
    finally:
        await producer.stop()
    await suppression.wait_for(lambda d: d["reasons"] == ["stale"], subject_id=subject, **DM_SMS)
    assert "samtykke_suppression_undecodable_total" in (await suppression.client.get("/metrics")).text
    dlq = AIOKafkaConsumer(**client_options(consent.settings), enable_auto_commit=False)
    await dlq.start()
    try:
        partition = TopicPartition(suppression.settings.suppression_dlq_topic, 0)
        dlq.assign([partition])
        await dlq.seek_to_beginning(partition)
        batch = await dlq.getmany(partition, timeout_ms=10_000)
        (message,) = batch[partition]
        headers = {name: value.decode() for name, value in message.headers}
        assert list(headers) == list(dead_letters.HEADERS)  # the contract every consumer keeps
        assert message.key == subject.encode() and message.value == garbage
        assert headers[dead_letters.SOURCE_TOPIC] == consent.settings.topic_changes
        assert headers[dead_letters.REASON_KIND] == "undecodable"
        assert headers[dead_letters.REASON_DETAIL] and headers[dead_letters.CONSUMER] == "suppression"
        assert int(headers[dead_letters.SOURCE_OFFSET]) >= 0 and int(headers[dead_letters.SOURCE_PARTITION]) >= 0
    finally:
        await dlq.stop()


async def test_credentials_scopes_and_bounded_metric_labels(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    subject = await register(consent, "DK", "+45 50 60 70 80")
    body = {"subject_id": subject, **DM_SMS}
    assert (
        await suppression.client.post("/v1/check", json=body, headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    reader = {"Authorization": "Bearer dev-reader"}
    assert (await suppression.client.post("/v1/check", json=body, headers=reader)).status_code == 403
    assert (
        await suppression.client.post("/v1/registers/NIX/imports", params={"published": "2026-01-01"}, content="")
    ).status_code == 403
    invalid = await suppression.client.post("/v1/check", json={**body, "purpose": "telepathy"})
    assert invalid.status_code == 422 and invalid.json()["problems"] == [
        {"field": "purpose", "rule": "unknown purpose 'telepathy'"}
    ]
    await suppression.check(phone="+4550607080", **DM_SMS)
    metrics = (await suppression.client.get("/metrics")).text
    assert 'route="/v1/check"' in metrics and "samtykke_suppression_index_age_seconds" in metrics
    assert subject not in metrics and "4550607080" not in metrics


async def test_a_decision_about_the_past_is_for_auditors(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    subject = await register(consent, "DK", "+45 50 60 70 81")
    await suppression.wait_ready()
    past = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    body = {"subject_id": subject, **DM_SMS, "at": past}
    refused = await suppression.client.post("/v1/check", json=body)
    assert refused.status_code == 403
    assert refused.json()["problems"] == [
        {"field": "at", "rule": "more than 60 s in the past needs the suppression:audit scope"}
    ]
    bulk = await suppression.client.post(
        "/v1/check/bulk", json={**DM_SMS, "at": past, "entries": [{"subject_id": subject}]}
    )
    assert bulk.status_code == 403
    auditor = {"Authorization": "Bearer dev-auditor"}
    audited = await suppression.client.post("/v1/check", json=body, headers=auditor)
    assert audited.status_code == 200 and audited.json()["at"].startswith(past[:10])
    now = {**body, "at": datetime.now(UTC).isoformat()}
    assert (await suppression.client.post("/v1/check", json=now)).status_code == 200
