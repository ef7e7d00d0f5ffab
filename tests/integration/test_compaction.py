"""`consent.changes` is compacted per consent: after grants, changes, a purge and an erasure, a
reader from offset 0 sees exactly the current consents, and a rebuild equals the live tables (the
history timeline: as much of it as compaction kept).

The test's changes topic compacts within seconds (its own short `segment.ms`, no compaction lag;
the local broker's cleaner looks every second). A segment closes only when a later record arrives
in its partition, so the scenario ends with one more grant in every partition.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from samtykke.adapters.kafka import client_options, ensure_topic
from samtykke.adapters.settings import Settings
from samtykke.consent.app import create_app
from samtykke.devstack.process import samtykke_command
from samtykke.domain.consent_keys import consent_key, subject_partition

from .conftest import RunningConsent, ServerThread, consent_settings
from .projections.conftest import ProjectionPlatform, platform, settings_env
from .projections.oracle import actual, assert_equals_recomputation
from .topic_reader import RawMessage, read_raw

__all__ = ["platform"]  # the projections' fixture, used here too

FAST_COMPACTION = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "100",
}
DOMAINS = ("marketing", "customer_service")


@pytest.fixture
def consent_server(stack: Any, fresh_database: str, topic_names: Any) -> Iterator[Settings]:
    """The consent service on a changes topic the test made first, compacting within seconds."""
    settings = consent_settings(stack, fresh_database, topic_names)
    asyncio.run(
        ensure_topic(client_options(settings), settings.topic_changes, settings.topic_partitions, FAST_COMPACTION)
    )
    with ServerThread(create_app(settings), settings.consent_port):
        yield settings


async def register(consent: RunningConsent, n: int) -> str:
    body = {"kind": "consumer", "country": "DK", "identifiers": {"email": f"compaction-{n}@example.dk"}}
    response = await consent.client.post("/v1/subjects", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["subject_id"])


async def decide(
    consent: RunningConsent, subject: str, *decisions: tuple[str, str | None, str], at: Any = None
) -> None:
    body = {
        "decisions": [{"purpose": p, "channel": c, "action": a, "occurred_at": at} for p, c, a in decisions],
        "source": "self_service",
        "actor": {"kind": "subject"},
        "evidence_ref": "web-session-compaction",
    }
    response = await consent.client.post(f"/v1/subjects/{subject}/consents", json=body)
    assert response.status_code == 201, response.text


def fold(messages: list[RawMessage]) -> dict[str, bytes | None]:
    """The table a reader from offset 0 builds: each key's last value (None: removed)."""
    table: dict[str, bytes | None] = {}
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        assert message.key is not None
        table[message.key.decode()] = message.value
    return table


async def compacted(settings: Settings, current: set[str], gone: set[str], single: str) -> list[RawMessage]:
    """Read the topic from the start until compaction left exactly the current consents: no record
    with a value for a purged or erased consent, one record for `single` (changed three times)."""
    deadline = time.monotonic() + 90
    while True:
        messages = await read_raw(client_options(settings), settings.topic_changes, 10_000, timeout=3)
        table = fold(messages)
        kept = {k for k, v in table.items() if v is not None}
        valued = {m.key.decode() for m in messages if m.key is not None and m.value is not None}
        copies = sum(1 for m in messages if m.key == single.encode())
        if kept == current and not valued & gone and copies == 1:
            return messages
        assert time.monotonic() < deadline, f"not compacted: {len(messages)} records, {copies} of {single}"
        await asyncio.sleep(1)


async def test_a_replay_after_compaction_holds_exactly_the_current_consents(platform: ProjectionPlatform) -> None:
    consent, settings = platform.consent, platform.consent.settings
    await platform.start(*DOMAINS)
    kept, purged, erased = await register(consent, 0), await register(consent, 1), await register(consent, 2)
    # one subject per partition to close every partition's segment at the end
    closers: dict[int, str] = {}
    n = 3
    while len(closers) < settings.topic_partitions:
        subject = await register(consent, n)
        closers.setdefault(subject_partition(subject, settings.topic_partitions), subject)
        n += 1

    for action in ("grant", "withdraw", "grant"):
        await decide(consent, kept, ("direct_marketing", "sms", action))
    await decide(consent, kept, ("personalised_offers", None, "grant"))
    # decided three years ago and withdrawn since: past the documentation retention (2 years)
    long_ago = datetime.now(UTC) - timedelta(days=3 * 365)
    await decide(consent, purged, ("direct_marketing", "email", "grant"), at=long_ago.isoformat())
    await decide(
        consent, purged, ("direct_marketing", "email", "withdraw"), at=(long_ago + timedelta(days=1)).isoformat()
    )
    await decide(consent, purged, ("direct_marketing", "sms", "grant"))
    await decide(consent, erased, ("direct_marketing", "sms", "grant"), ("personalised_offers", None, "grant"))
    assert (await consent.client.post(f"/v1/subjects/{erased}/erasure")).status_code == 200
    sweep = await consent.client.post("/v1/lifecycle/sweep")
    assert sweep.status_code == 200 and sweep.json()["purged_ledger_rows"] == 2, sweep.text
    await consent.wait_outbox_empty()
    await asyncio.sleep(0.3)  # older than segment.ms: the next record of each partition rolls its segment
    for subject in closers.values():
        await decide(consent, subject, ("direct_marketing", "email", "grant"))
    await consent.wait_outbox_empty()

    current = {
        consent_key(kept, "direct_marketing", "sms"),
        consent_key(kept, "personalised_offers", None),
        consent_key(purged, "direct_marketing", "sms"),
        *(consent_key(s, "direct_marketing", "email") for s in closers.values()),
    }
    gone = {
        consent_key(purged, "direct_marketing", "email"),
        consent_key(erased, "direct_marketing", "sms"),
        consent_key(erased, "personalised_offers", None),
    }
    messages = await compacted(settings, current, gone, consent_key(kept, "direct_marketing", "sms"))
    for message in messages:  # every subject in its own partition, whatever the consent
        assert message.key is not None
        assert message.partition == subject_partition(message.key.decode(), settings.topic_partitions)

    await platform.caught_up(*DOMAINS)
    conn = await platform.owner()
    try:
        live = {domain: await actual(conn, domain) for domain in DOMAINS}
        assert {(s, p, c) for s, p, c in live["marketing"]["consents"] if s in (purged, erased)} == {
            (purged, "direct_marketing", "sms")
        }
        for domain in DOMAINS:
            await assert_equals_recomputation(conn, b"", domain)
            rebuild = await asyncio.create_subprocess_exec(
                *samtykke_command("projections", "rebuild", domain),
                env=settings_env(platform.settings),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output = (await rebuild.communicate())[0].decode()
            assert rebuild.returncode == 0, output
            rebuilt = await actual(conn, domain)
            # compaction keeps each consent's latest change and the changes younger than the compaction
            # lag (0 here, the documentation retention in production): a timeline can lose older history
            # of a consent still in force, every other table is the live one
            assert rebuilt.keys() == live[domain].keys()
            for table, rows in rebuilt.items():
                if table == "timeline":
                    assert rows.items() <= live[domain][table].items()
                    assert {k[:3] for k in rows} == set(rebuilt["consents"])
                else:
                    assert rows == live[domain][table], f"{domain}.{table}"
    finally:
        await conn.close()
