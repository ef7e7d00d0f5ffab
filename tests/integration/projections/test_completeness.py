"""Each domain says how far it is complete end to end (a table, /ready, a metric), its applied
positions are visible to Kafka's tools as group offsets, and its readers get lapse at read time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from samtykke.adapters.kafka import client_options
from samtykke.projections.domains import DOMAINS

from ..suppression.watermarks import WatermarkPublisher
from .conftest import ProjectionPlatform
from .history import register


def decision(action: str, occurred_at: datetime | None = None) -> dict[str, object]:
    item: dict[str, object] = {"purpose": "direct_marketing", "channel": "sms", "action": action}
    if occurred_at is not None:
        item["occurred_at"] = occurred_at.isoformat()
    return {"decisions": [item], "source": "self_service", "actor": {"kind": "subject"}}


async def test_complete_through_the_watermark_and_offsets_visible_to_the_group(
    platform: ProjectionPlatform, watermarks: WatermarkPublisher
) -> None:
    [projector] = await platform.start("marketing")
    client = platform.consent.client
    subject = await register(client, "consumer", "DK", None)
    assert (await client.post(f"/v1/subjects/{subject.subject_id}/consents", json=decision("grant"))).status_code == 201
    await platform.caught_up("marketing")
    after = datetime.now(UTC)
    conn = await platform.owner()
    try:
        deadline = time.monotonic() + 20
        while (through := await conn.fetchval("SELECT through FROM marketing.completeness")) is None or through < after:
            assert time.monotonic() < deadline, f"complete through {through}, wanted past {after}"
            await asyncio.sleep(0.1)
        stored = {
            TopicPartition(r["topic"], r["partition"]): r["last_offset"] + 1
            for r in await conn.fetch("SELECT topic, partition, last_offset FROM marketing.consumer_offsets")
        }
    finally:
        await conn.close()
    async with httpx.AsyncClient() as http:
        ready = (await http.get(f"{projector.url}/ready")).json()
        metrics = (await http.get(f"{projector.url}/metrics")).text
    assert datetime.fromisoformat(ready["complete_through"]) >= after
    assert 'samtykke_projection_complete_through_seconds{domain="marketing"}' in metrics

    admin = AIOKafkaAdminClient(**client_options(platform.settings))
    await admin.start()
    try:
        group = DOMAINS["marketing"].group(platform.settings)
        committed = {tp: meta.offset for tp, meta in (await admin.list_consumer_group_offsets(group)).items()}
    finally:
        await admin.close()
    assert committed == stored and stored


async def test_a_stuck_relay_leaves_the_domain_complete_only_through_its_last_watermark(
    platform: ProjectionPlatform, watermarks: WatermarkPublisher
) -> None:
    await platform.start("customer_service")
    conn = await platform.owner()
    try:
        deadline = time.monotonic() + 20
        while await conn.fetchval("SELECT through FROM customer_service.completeness") is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        watermarks.publishing.clear()
        await asyncio.sleep(0.5)
        stopped = await conn.fetchval("SELECT through FROM customer_service.completeness")
        await asyncio.sleep(2.0)
        assert await conn.fetchval("SELECT through FROM customer_service.completeness") == stopped
        assert datetime.now(UTC) - stopped > timedelta(seconds=2)
    finally:
        await conn.close()


async def test_readers_get_lapse_at_read_time(platform: ProjectionPlatform) -> None:
    await platform.start("marketing", "customer_service")
    client = platform.consent.client
    subject = await register(client, "consumer", "SE", None)
    # a grant made (365 days - 2 s) ago lapses 2 s from now; the sweeper (hourly here) emits nothing
    granted_at = datetime.now(UTC) - timedelta(days=365) + timedelta(seconds=2)
    response = await client.post(f"/v1/subjects/{subject.subject_id}/consents", json=decision("grant", granted_at))
    assert response.status_code == 201
    await platform.caught_up("marketing", "customer_service")
    conn = await platform.owner()
    try:
        sid = subject.subject_id
        marketing = "SELECT status, in_force FROM marketing.consents_now WHERE subject_id = $1"
        service = "SELECT status, in_force FROM customer_service.current_consents WHERE subject_id = $1"
        assert tuple(await conn.fetchrow(marketing, sid)) == ("granted", True)
        assert tuple(await conn.fetchrow(service, sid)) == ("granted", True)
        valid_until = await conn.fetchval("SELECT valid_until FROM marketing.consents WHERE subject_id = $1", sid)
        await asyncio.sleep(max(0.0, (valid_until - datetime.now(UTC)).total_seconds()) + 0.1)
        assert tuple(await conn.fetchrow(marketing, sid)) == ("expired", False)
        assert tuple(await conn.fetchrow(service, sid)) == ("expired", False)
        marketable = "SELECT count(*) FROM marketing.marketable WHERE subject_id = $1 AND purpose = 'direct_marketing'"
        assert await conn.fetchval(marketable, sid) == 0  # the view readers already had agrees
        # the table still holds the change as applied: the views are what readers use
        assert await conn.fetchval("SELECT in_force FROM marketing.consents WHERE subject_id = $1", sid) is True
    finally:
        await conn.close()
