"""The consent service against the real Kafka, schema registry and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from samtykke.adapters.kafka import client_options
from samtykke.adapters.settings import Settings
from samtykke.consent.app import create_app

from .conftest import RunningConsent, ServerThread, consent_settings
from .topic_reader import decode_all, read_raw

CONSUMER = {
    "kind": "consumer",
    "country": "DK",
    "identifiers": {"phone": "+45 20 30 40 50", "email": "Karen.Holm@example.dk", "national_id": "010190-1234"},
}
CLEAR = ["+4520304050", "4520304050", "20304050", "karen.holm@example.dk", "Karen.Holm", "0101901234", "010190-1234"]


def own_settings(stack: Any, database_url: str, topics: Any, **overrides: Any) -> Settings:
    """The conftest's settings with the watermarks on the test's own topic beside its contract topics,
    never on the shared `consent.watermarks` that a running platform's readers follow."""
    watermarks = topics.changes.removesuffix("changes") + "watermarks"
    return consent_settings(stack, database_url, topics, **({"topic_watermarks": watermarks} | overrides))


@pytest.fixture
def consent_server(stack: Any, fresh_database: str, topic_names: Any) -> Iterator[Settings]:
    settings = own_settings(stack, fresh_database, topic_names)
    with ServerThread(create_app(settings), settings.consent_port):
        yield settings


async def register(consent: RunningConsent, body: dict[str, Any] = CONSUMER) -> str:
    response = await consent.client.post("/v1/subjects", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["subject_id"])


def batch(*decisions: tuple[str, str | None, str], **extra: Any) -> dict[str, Any]:
    return {
        "decisions": [{"purpose": p, "channel": c, "action": a} for p, c, a in decisions],
        "source": "self_service",
        "actor": {"kind": "subject"},
        "notice_version": "dm-2026-01",
        "evidence_ref": "web-session-4711",
    } | extra


async def test_batch_becomes_ledger_rows_and_avro_events(consent: RunningConsent) -> None:
    subject = await register(consent)
    response = await consent.client.post(
        f"/v1/subjects/{subject}/consents",
        json=batch(
            ("direct_marketing", "sms", "grant"),
            ("direct_marketing", "email", "grant"),
            ("personalised_offers", None, "grant"),
        ),
    )
    assert response.status_code == 201, response.text
    changes = response.json()["changes"]
    history = (await consent.client.get(f"/v1/subjects/{subject}/history")).json()
    assert [h["event_id"] for h in history] == [c["event_id"] for c in changes]

    settings = consent.settings
    records = await decode_all(
        settings.registry_url, await read_raw(client_options(settings), settings.topic_changes, 3)
    )
    assert len(records) == 3
    by_id = {str(r["event_id"]): r for r in records}
    for entry in history:
        record = by_id[entry["event_id"]]
        assert record["_key"] == f"{subject}/{entry['purpose']}/{entry['channel'] or '-'}".encode()
        assert record["subject_id"] == subject and record["subject_kind"] == "consumer"
        assert record["country"] == "DK"
        assert (record["purpose"], record["channel"], record["status"]) == (
            entry["purpose"],
            entry["channel"],
            "granted",
        )
        assert record["version"] == entry["version"] == 1
        assert record["previous_status"] is None
        assert record["source"] == "self_service" and record["actor_kind"] == "subject"
        assert record["notice_version"] == "dm-2026-01"
        assert record["evidence_ref"] is None and record["evidence_on_file"] is True
        assert record["occurred_at"] == datetime.fromisoformat(entry["occurred_at"]).replace(
            microsecond=record["occurred_at"].microsecond
        )
        assert record["valid_until"] is not None and record["valid_until"] > record["occurred_at"] + timedelta(days=364)
    subjects = await decode_all(
        settings.registry_url, await read_raw(client_options(settings), settings.topic_subjects, 1)
    )
    assert subjects[0]["subject_id"] == subject and subjects[0]["erased"] is False
    assert subjects[0]["phone_hash"] and subjects[0]["national_id_hash"]


async def test_retry_with_the_same_idempotency_key_emits_no_second_event(consent: RunningConsent) -> None:
    subject = await register(consent)
    body = batch(("direct_marketing", "sms", "grant"))
    headers = {"Idempotency-Key": "retry-key-0001"}
    first = await consent.client.post(f"/v1/subjects/{subject}/consents", json=body, headers=headers)
    second = await consent.client.post(f"/v1/subjects/{subject}/consents", json=body, headers=headers)
    assert first.status_code == 201 and second.status_code == 201
    assert second.json()["replayed"] is True
    assert second.json()["changes"] == first.json()["changes"]
    other = await consent.client.post(
        f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "email", "grant")), headers=headers
    )
    assert other.status_code == 422 and other.json()["problems"][0]["field"] == "Idempotency-Key"

    await consent.wait_outbox_empty()
    settings = consent.settings
    messages = await read_raw(client_options(settings), settings.topic_changes, 2, timeout=5)
    assert len(messages) == 1
    assert len((await consent.client.get(f"/v1/subjects/{subject}/history")).json()) == 1


async def test_no_identifier_reaches_any_topic(consent: RunningConsent) -> None:
    subject = await register(consent)
    await register(
        consent,
        {
            "kind": "employee",
            "country": "SE",
            "account_id": "ACME-1",
            "identifiers": {"phone": "070-123 45 67", "email": "ola@acme.se"},
        },
    )
    await consent.client.post(f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "phone", "grant")))
    await consent.client.post(f"/v1/subjects/{subject}/erasure")
    await consent.wait_outbox_empty()
    settings = consent.settings
    raw = []
    for topic, count in ((settings.topic_changes, 2), (settings.topic_subjects, 3)):  # a grant, its tombstone
        raw += await read_raw(client_options(settings), topic, count)
    assert len(raw) == 5
    blob = b"\n".join((m.key or b"") + b"|" + (m.value or b"") for m in raw)
    for clear in [*CLEAR, "+46701234567", "46701234567", "701234567", "ola@acme.se"]:
        assert clear.encode() not in blob, clear


async def test_evidence_and_actor_stay_in_the_ledger(consent: RunningConsent) -> None:
    subject = await register(consent)
    agent = {"source": "customer_service", "actor": {"kind": "agent", "ref": "agent-ref-8841"}}
    granted = await consent.client.post(
        f"/v1/subjects/{subject}/consents",
        json=batch(("direct_marketing", "sms", "grant"), ("personalised_offers", None, "grant"), **agent)
        | {"evidence_ref": "call-recording-5521"},
    )
    assert granted.status_code == 201, granted.text
    unproven = await consent.client.post(
        f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "email", "grant")) | {"evidence_ref": None}
    )
    assert unproven.status_code == 201, unproven.text
    await consent.wait_outbox_empty()
    settings = consent.settings
    raw = await read_raw(client_options(settings), settings.topic_changes, 3)
    raw += await read_raw(client_options(settings), settings.topic_subjects, 1)
    blob = b"\n".join((m.key or b"") + b"|" + (m.value or b"") for m in raw)
    for text in ("call-recording-5521", "web-session-4711", "agent-ref-8841"):
        assert text.encode() not in blob, text
    records = await decode_all(settings.registry_url, raw[:3])
    assert sorted(r["evidence_on_file"] for r in records) == [False, True, True]
    assert all(r["evidence_ref"] is None for r in records)

    event_id = granted.json()["changes"][0]["event_id"]
    path = f"/v1/subjects/{subject}/evidence/{event_id}"
    reader = await consent.client.get(path, headers={"Authorization": "Bearer dev-reader"})
    assert reader.status_code == 403
    opened = (await consent.client.get(path)).json()
    assert (opened["evidence_ref"], opened["actor_ref"], opened["evidence_on_file"]) == (
        "call-recording-5521",
        "agent-ref-8841",
        True,
    )
    missing = await consent.client.get(f"/v1/subjects/{subject}/evidence/{subject}")
    assert missing.status_code == 404 and missing.json()["problems"][0]["field"] == "event_id"
    await consent.client.post(f"/v1/subjects/{subject}/erasure")
    erased = (await consent.client.get(path)).json()
    assert (erased["evidence_ref"], erased["actor_ref"], erased["evidence_on_file"]) == (None, None, False)


async def test_erasure_keeps_hashes_but_no_identifier_in_clear(consent: RunningConsent) -> None:
    subject = await register(consent)
    await consent.client.post(f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "sms", "grant")))
    shown = (await consent.client.get(f"/v1/subjects/{subject}")).json()
    assert shown["identifiers"]["email"] == "karen.holm@example.dk"  # admin sees them before erasure
    reader = await consent.client.get(f"/v1/subjects/{subject}", headers={"Authorization": "Bearer dev-reader"})
    assert reader.json()["identifiers"] is None

    erased = await consent.client.post(f"/v1/subjects/{subject}/erasure")
    assert erased.status_code == 200 and erased.json()["erased_at"]
    export = (await consent.client.get(f"/v1/subjects/{subject}/export")).json()
    assert export["subject"]["identifiers"] == {"phone": None, "email": None, "national_id": None}
    lookup = await consent.client.post("/v1/subjects/lookup", json={"phone": "+4520304050"})
    assert lookup.json()["subject_ids"] == [subject]  # still matchable, so still suppressible
    again = await consent.client.post(
        f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "sms", "grant"))
    )
    assert again.status_code == 409

    conn = await asyncpg.connect(consent.settings.database_url)
    try:
        tables = await conn.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = 'consent'")
        dump = ""
        for table in tables:
            rows = await conn.fetch(f"SELECT t::text AS row FROM consent.{table['table_name']} t")
            dump += "\n".join(r["row"] for r in rows)
    finally:
        await conn.close()
    assert subject in dump
    for clear in CLEAR:
        assert clear not in dump, clear
    await consent.wait_outbox_empty()
    settings = consent.settings
    subjects = await decode_all(
        settings.registry_url, await read_raw(client_options(settings), settings.topic_subjects, 2)
    )
    assert [s["erased"] for s in subjects] == [False, True]


async def test_a_released_phone_leaves_the_subject_and_its_record_keeps_only_the_hash(
    consent: RunningConsent,
) -> None:
    subject = await register(consent)
    path = f"/v1/subjects/{subject}/identifiers/release"
    reader = {"Authorization": "Bearer dev-reader"}
    assert (await consent.client.post(path, json={"identifiers": ["phone"]}, headers=reader)).status_code == 403
    twice = await consent.client.post(path, json={"identifiers": ["phone", "phone"]})
    assert twice.status_code == 422 and "identifiers" in twice.text
    unknown = await consent.client.post(path, json={"identifiers": ["phone"], "reason": "moved"})
    assert unknown.status_code == 422 and "reason" in unknown.text

    released = await consent.client.post(path, json={"identifiers": ["phone"], "reason": "ported_out"})
    assert released.status_code == 200, released.text
    assert released.json()["has_identifiers"] == {"phone": False, "email": True, "national_id": True}
    assert released.json()["identifiers"]["phone"] is None
    assert (await consent.client.post("/v1/subjects/lookup", json={"phone": "+4520304050"})).json() == {
        "subject_ids": []
    }
    again = await consent.client.post(path, json={"identifiers": ["phone", "email"]})
    assert again.status_code == 409 and "no phone" in again.text
    assert (await consent.client.post(f"/v1/subjects/{subject}/erasure")).status_code == 200
    assert (await consent.client.post(path, json={"identifiers": ["email"]})).status_code == 409

    await consent.wait_outbox_empty()
    settings = consent.settings
    raw = await read_raw(client_options(settings), settings.topic_subjects, 3)
    for clear in CLEAR:
        assert not any(clear.encode() in (m.value or b"") for m in raw), clear
    registered, ported, erased = await decode_all(settings.registry_url, raw)
    assert registered["phone_since"] is not None and registered["released"] == []
    assert (ported["phone_hash"], ported["phone_since"], ported["email_hash"]) == (
        None,
        None,
        registered["email_hash"],
    )
    [phone] = ported["released"]
    assert (phone["kind"], phone["hash"], phone["since"], phone["reason"]) == (
        "phone",
        registered["phone_hash"],
        registered["phone_since"],
        "ported_out",
    )
    assert phone["until"] > phone["since"]
    assert (erased["erased"], erased["phone_hash"], erased["email_hash"]) == (True, None, None)
    assert [(r["kind"], r["hash"], r["reason"]) for r in erased["released"]] == [
        ("phone", registered["phone_hash"], "ported_out"),
        ("email", registered["email_hash"], "erased"),
    ]


async def test_state_history_and_as_of(consent: RunningConsent) -> None:
    subject = await register(consent)
    t0 = datetime.now(UTC) - timedelta(days=10)
    first = batch(("direct_marketing", "sms", "grant"))
    first["decisions"][0]["occurred_at"] = t0.isoformat()
    assert (await consent.client.post(f"/v1/subjects/{subject}/consents", json=first)).status_code == 201
    assert (
        await consent.client.post(
            f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "sms", "withdraw"))
        )
    ).status_code == 201
    current = (await consent.client.get(f"/v1/subjects/{subject}/consents")).json()
    assert [(c["status"], c["version"]) for c in current] == [("withdrawn", 2)]
    past = (
        await consent.client.get(
            f"/v1/subjects/{subject}/consents", params={"at": (t0 + timedelta(days=1)).isoformat()}
        )
    ).json()
    assert [(c["status"], c["version"]) for c in past] == [("granted", 1)]
    # as of an instant the state is folded from the ledger, and cites the ledger row of the decision
    assert (past[0]["notice_version"], past[0]["source"]) == ("dm-2026-01", "self_service")
    assert past[0]["decision"]["occurred_at"] == past[0]["occurred_at"]
    assert (current[0]["notice_version"], current[0]["source"]) == ("dm-2026-01", "self_service")
    before = (
        await consent.client.get(
            f"/v1/subjects/{subject}/consents", params={"at": (t0 - timedelta(days=1)).isoformat()}
        )
    ).json()
    assert before == []
    history = (await consent.client.get(f"/v1/subjects/{subject}/history")).json()
    assert [(h["status"], h["previous_status"]) for h in history] == [("granted", None), ("withdrawn", "granted")]


async def test_lapse_usage_and_sweeper(consent: RunningConsent) -> None:
    subject = await register(consent)
    old = batch(("direct_marketing", "sms", "grant"), ("direct_marketing", "email", "grant"))
    long_ago = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    old["decisions"][0]["occurred_at"] = long_ago
    assert (await consent.client.post(f"/v1/subjects/{subject}/consents", json=old)).status_code == 201
    used = await consent.client.post(
        f"/v1/subjects/{subject}/usage", json={"purpose": "direct_marketing", "channel": "email"}
    )
    assert used.status_code == 200 and used.json()["version"] == 2
    lapsed_use = await consent.client.post(
        f"/v1/subjects/{subject}/usage", json={"purpose": "direct_marketing", "channel": "sms"}
    )
    assert lapsed_use.status_code == 409
    swept = (await consent.client.post("/v1/lifecycle/sweep")).json()
    assert swept["expired"] == 1
    current = {c["channel"]: c for c in (await consent.client.get(f"/v1/subjects/{subject}/consents")).json()}
    assert current["sms"]["status"] == "expired" and current["email"]["status"] == "granted"
    assert (await consent.client.post("/v1/lifecycle/sweep")).json()["expired"] == 0


async def test_the_sweeper_purges_old_documentation_of_opt_in_purposes_only(consent: RunningConsent) -> None:
    subject = await register(consent)
    decisions = batch(
        ("direct_marketing", "sms", "grant"),
        ("direct_marketing", "sms", "withdraw"),
        ("existing_customer_offers", "email", "withdraw"),
        ("direct_marketing", "email", "grant"),
    )
    three_years_ago = datetime.now(UTC) - timedelta(days=3 * 365)
    for i, decision in enumerate(decisions["decisions"][:3]):
        decision["occurred_at"] = (three_years_ago + timedelta(minutes=i)).isoformat()
    assert (await consent.client.post(f"/v1/subjects/{subject}/consents", json=decisions)).status_code == 201

    swept = (await consent.client.post("/v1/lifecycle/sweep")).json()

    assert (swept["expired"], swept["purged_ledger_rows"]) == (0, 2)
    history = (await consent.client.get(f"/v1/subjects/{subject}/history")).json()
    assert [(h["purpose"], h["channel"], h["status"]) for h in history] == [
        ("existing_customer_offers", "email", "withdrawn"),  # an objection: purging it would re-allow contact
        ("direct_marketing", "email", "granted"),
    ]
    current = {(c["purpose"], c["channel"]): c["status"] for c in await current_state(consent, subject)}
    assert current[("direct_marketing", "sms")] == "withdrawn"  # the state stays: it holds no personal data
    assert (await consent.client.post("/v1/lifecycle/sweep")).json()["purged_ledger_rows"] == 0


async def current_state(consent: RunningConsent, subject: str) -> list[dict[str, Any]]:
    response = await consent.client.get(f"/v1/subjects/{subject}/consents")
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def test_lookup_by_each_kind_of_identifier(consent: RunningConsent) -> None:
    subject = await register(consent)
    found = [
        await consent.client.post("/v1/subjects/lookup", json=body)
        for body in (
            {"phone": "20 30 40 50", "country": "DK"},
            {"email": "KAREN.HOLM@example.dk"},
            {"national_id": "0101901234", "country": "DK"},
        )
    ]
    assert [r.json() for r in found] == [{"subject_ids": [subject]}] * 3
    nobody = await consent.client.post("/v1/subjects/lookup", json={"email": "ola@acme.se"})
    assert nobody.json() == {"subject_ids": []}
    bad = await consent.client.post("/v1/subjects/lookup", json={"email": "not-an-email"})
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "email"
    bad = await consent.client.post("/v1/subjects/lookup", json={"phone": "20 30"})
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "phone"


async def test_one_national_id_one_subject_even_when_registered_at_once(consent: RunningConsent) -> None:
    writer = {"Authorization": "Bearer dev-writer"}
    responses = await asyncio.gather(
        *(consent.client.post("/v1/subjects", json=CONSUMER, headers=writer) for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    # whose national id it is stays with credentials that may read identifiers
    assert all("subject_id" not in r.json() for r in responses if r.status_code == 409)


async def test_credentials_and_scopes(consent: RunningConsent) -> None:
    anonymous = await consent.client.get("/v1/purposes", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    wrong = await consent.client.get("/v1/purposes", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    forbidden = await consent.client.post("/v1/subjects", json=CONSUMER, headers={"Authorization": "Bearer dev-reader"})
    assert forbidden.status_code == 403 and "consent:write" in forbidden.json()["problems"][0]["rule"]
    marketing = await consent.client.get("/v1/purposes", headers={"Authorization": "Bearer dev-marketing"})
    assert marketing.status_code == 403
    catalog = (await consent.client.get("/v1/purposes", headers={"Authorization": "Bearer dev-reader"})).json()
    assert {p["code"] for p in catalog["purposes"]} >= {"direct_marketing", "existing_customer_offers"}


async def test_bad_input_names_the_field_and_the_rule(consent: RunningConsent) -> None:
    subject = await register(consent)

    async def problems(path: str, body: Any) -> list[tuple[str, str]]:
        response = await consent.client.post(path, json=body)
        assert response.status_code == 422, response.text
        return [(p["field"], p["rule"]) for p in response.json()["problems"]]

    consents = f"/v1/subjects/{subject}/consents"
    assert (await problems(consents, batch(("no_such_purpose", None, "grant"))))[0][0] == "decisions[0].purpose"
    assert "omit channel" in (await problems(consents, batch(("fault_prevention", "sms", "grant"))))[0][1]
    assert (await problems(consents, batch(("direct_marketing", "fax", "grant"))))[0][0] == "decisions[0].channel"
    future = batch(("direct_marketing", "sms", "grant"))
    future["decisions"][0]["occurred_at"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (await problems(consents, future)) == [("decisions[0].occurred_at", "must not be in the future")]
    employee = {"kind": "employee", "country": "DK", "identifiers": {"email": "a@b.dk"}}
    assert (await problems("/v1/subjects", employee))[0][0] == "account_id"
    phone = CONSUMER | {"identifiers": {"phone": "+45 123"}}
    assert (await problems("/v1/subjects", phone))[0][0] == "identifiers.phone"
    email = CONSUMER | {"identifiers": {"email": "not-an-email"}}
    assert (await problems("/v1/subjects", email))[0][0] == "identifiers.email"
    cpr = CONSUMER | {"identifiers": {"national_id": "999999-9999"}}
    assert (await problems("/v1/subjects", cpr))[0] == (
        "identifiers.national_id",
        "a CPR number starts with a valid date DDMMYY",
    )
    missing = await consent.client.post(
        "/v1/subjects/00000000-0000-0000-0000-000000000000/consents", json=batch(("direct_marketing", "sms", "grant"))
    )
    assert missing.status_code == 404
    duplicate = await consent.client.post("/v1/subjects", json=CONSUMER, headers={"Authorization": "Bearer dev-writer"})
    assert duplicate.status_code == 409 and "subject_id" not in duplicate.json() and subject


async def test_metrics_use_route_templates_never_ids(consent: RunningConsent) -> None:
    subject = await register(consent)
    await consent.client.post(f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "sms", "grant")))
    await consent.client.get(f"/v1/subjects/{subject}/history")
    text = (await consent.client.get("/metrics")).text
    assert 'route="/v1/subjects/{subject_id}/consents"' in text
    assert 'route="/v1/subjects/{subject_id}/history"' in text
    assert (
        'samtykke_consent_changes_total{purpose="direct_marketing",source="self_service",status="granted"} 1.0' in text
    )
    assert subject not in text


async def test_migrate_topic_enqueues_the_latest_event_of_every_documented_consent(consent: RunningConsent) -> None:
    from samtykke.adapters.postgres import create_pool
    from samtykke.consent.topic_migration import migrate

    kept = await register(consent)
    erased = await register(consent, {"kind": "consumer", "country": "SE", "identifiers": {"email": "gone@example.se"}})
    for action in ("grant", "withdraw"):
        await consent.client.post(f"/v1/subjects/{kept}/consents", json=batch(("direct_marketing", "sms", action)))
    await consent.client.post(f"/v1/subjects/{kept}/consents", json=batch(("personalised_offers", None, "grant")))
    await consent.client.post(f"/v1/subjects/{erased}/consents", json=batch(("direct_marketing", "sms", "grant")))
    await consent.client.post(f"/v1/subjects/{erased}/erasure")
    await consent.wait_outbox_empty()
    settings = consent.settings
    before = len(await read_raw(client_options(settings), settings.topic_changes, 5))  # 4 changes, 1 tombstone

    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        report = await migrate(pool, settings.topic_changes, batch=1)  # batches of one subject: paging goes on
    finally:
        await pool.close()
    assert (report.subjects, report.consents) == (1, 2)  # the erased subject gets none
    await consent.wait_outbox_empty()
    raw = await read_raw(client_options(settings), settings.topic_changes, before + 2)
    records = await decode_all(settings.registry_url, [m for m in raw if m.value is not None])
    latest = {(r["purpose"], r["channel"]): (r["version"], r["status"]) for r in records if r["subject_id"] == kept}
    assert latest == {("direct_marketing", "sms"): (2, "withdrawn"), ("personalised_offers", None): (1, "granted")}
    assert len(raw) == before + 2
    assert all(r["evidence_ref"] is None and r["evidence_on_file"] for r in records)
