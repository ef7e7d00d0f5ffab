"""`samtykke demo`: one consent change through the running platform, shown wherever it lands.

The demo subject grants direct marketing by SMS and personalised offers; the demo prints the
change decoded from Kafka, then waits for it in the marketing, analytics and customer-service
tables and in the suppression decision, with the time each took.

Only this command writes demo data, and always to one subject, recognisable as such: e-mail
`demo@samtykke.invalid` (a reserved domain), account `demo`, notice version `demo`. It is
registered by the first run and reused by every later one, so running the demo again records
one more change, never another person.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from samtykke.adapters.avro import AvroDecoder, SchemaRegistry
from samtykke.adapters.kafka import assign_all, client_options, ensure_topics
from samtykke.adapters.settings import Settings
from samtykke.domain.projection import pseudonym

WRITER = {"Authorization": "Bearer dev-writer"}
DEMO_EMAIL = "demo@samtykke.invalid"
DEMO_ACCOUNT = "demo"
CHECKER = {"Authorization": "Bearer dev-marketing"}


async def _first_event(consumer: AIOKafkaConsumer, decoder: AvroDecoder, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for messages in (await consumer.getmany(timeout_ms=200)).values():
            for message in messages:
                if message.value is None:
                    continue  # a tombstone (a purge or an erasure elsewhere): no event to show
                record = await decoder.decode(message.value)
                record["_kafka"] = {
                    "partition": message.partition,
                    "offset": message.offset,
                    "key": message.key.decode() if message.key else None,
                    "schema_id": decoder.schema_id(message.value),
                }
                return record
    return None


async def _wait(label: str, probe: Callable[[], Awaitable[Any]], started: float, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await probe()
        if found:
            print(f"  {label:<44} after {(time.perf_counter() - started) * 1000:6.0f} ms: {found}")
            return True
        await asyncio.sleep(0.02)
    print(f"  {label:<44} did not arrive within {timeout:.0f} s")
    return False


async def _positioned_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A plain consumer on every partition of consent.changes, at the current end."""
    kafka = client_options(settings)
    consumer = AIOKafkaConsumer(**kafka, enable_auto_commit=False)
    await consumer.start()
    await assign_all(consumer, kafka, [settings.topic_changes], "end")
    return consumer


async def run(settings: Settings) -> int:
    await ensure_topics(
        client_options(settings),
        settings.topic_changes,
        settings.topic_subjects,
        settings.topic_partitions,
        compaction_lag_ms=settings.documentation_retention_ms,
    )
    consumer = await _positioned_consumer(settings)
    registry = SchemaRegistry.from_settings(settings)
    db = await asyncpg.connect(settings.database_url)
    base = f"http://{settings.http_host}"
    try:
        async with httpx.AsyncClient(base_url=f"{base}:{settings.consent_port}", headers=WRITER, timeout=30) as api:
            sid = await _demo_subject(api)
            body = {
                "decisions": [
                    {"purpose": "direct_marketing", "channel": "sms", "action": "grant"},
                    {"purpose": "personalised_offers", "action": "grant"},
                ],
                "source": "self_service",
                "actor": {"kind": "subject"},
                "notice_version": "demo",
                "correlation_id": "samtykke-demo",
            }
            started = time.perf_counter()
            (await api.post(f"/v1/subjects/{sid}/consents", json=body)).raise_for_status()
        print("granted direct_marketing/sms and personalised_offers; following the change:")
        event = await _first_event(consumer, AvroDecoder(registry), timeout=30)
        if event is None:
            print("no event arrived within 30 s: check `samtykke stack status` and .state/logs/consent.log")
            return 1
        print(
            f"  {'Kafka ' + settings.topic_changes + ' (Avro, decoded)':<44} after "
            f"{(time.perf_counter() - started) * 1000:6.0f} ms:"
        )
        print(json.dumps(event, indent=4, default=str))
        alias = pseudonym(settings.analytics_pseudonym_key.encode(), sid)
        arrivals = [
            await _wait(
                "marketing.consents",
                lambda: db.fetchval(
                    "SELECT status || ', in force until ' || valid_until::date FROM marketing.consents "
                    "WHERE subject_id = $1 AND purpose = 'direct_marketing' AND channel = 'sms'",
                    sid,
                ),
                started,
            ),
            await _wait(
                "analytics.consents (pseudonymous)",
                lambda: db.fetchval(
                    "SELECT purpose || ' ' || status FROM analytics.consents WHERE pseudonym = $1", alias
                ),
                started,
            ),
            await _wait(
                "customer_service.timeline",
                lambda: db.fetchval(
                    "SELECT count(*) || ' entries, latest: ' || max(source) FROM customer_service.timeline "
                    "WHERE subject_id = $1 HAVING count(*) >= 2",
                    sid,
                ),
                started,
            ),
            await _wait("suppression decision (direct_marketing/sms)", lambda: _allowed(settings, sid), started),
        ]
        return 0 if all(arrivals) else 1
    finally:
        await consumer.stop()
        await registry.aclose()
        await db.close()


async def _demo_subject(api: httpx.AsyncClient) -> str:
    """The one demo subject: found by its e-mail's keyed hash, registered on the first run."""
    found = (await api.post("/v1/subjects/lookup", json={"email": DEMO_EMAIL})).json()["subject_ids"]
    if found:
        print(f"demo subject {found[0]} (registered by an earlier demo)")
        return str(found[0])
    response = await api.post(
        "/v1/subjects",
        json={"kind": "consumer", "country": "DK", "account_id": DEMO_ACCOUNT, "identifiers": {"email": DEMO_EMAIL}},
    )
    response.raise_for_status()
    sid = str(response.json()["subject_id"])
    print(f"registered the demo subject {sid} (e-mail kept encrypted; only a keyed hash leaves)")
    return sid


async def _allowed(settings: Settings, subject_id: str) -> str | None:
    url = f"http://{settings.http_host}:{settings.suppression_port}/v1/check"
    async with httpx.AsyncClient(headers=CHECKER, timeout=5) as client:
        response = await client.post(
            url, json={"subject_id": subject_id, "purpose": "direct_marketing", "channel": "sms"}
        )
    decision = response.json() if response.status_code == 200 else {}
    return "allowed" if decision.get("result") == "allowed" else None


def main(settings: Settings) -> int:
    return asyncio.run(run(settings))
