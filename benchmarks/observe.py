"""When each change of a step reached each destination, from the destinations' own records.

Commit: the ledger row's `recorded_at` (taken inside the transaction that commits the change).
Domains: the `applied_at` of the change's row in each domain's `consents` table (the analytics
row is found by the subject's pseudonym). Suppression: the time the index applied it, from the
suppression list's change feed (a withdrawal adds the key, a grant removes it).
Each destination's latency is its time minus the commit time, per change, in milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import httpx

from samtykke.adapters.settings import Settings
from samtykke.domain.projection import NO_CHANNEL, pseudonym

from .drive import Key, StepLoad

DOMAIN_TABLES = ("marketing", "analytics", "customer_service")
DESTINATIONS = (*DOMAIN_TABLES, "suppression")
FEED_ACTION = {"withdraw": "added", "grant": "removed"}


@dataclass
class Arrivals:
    """Per destination: key -> epoch seconds it arrived; and the commit times."""

    committed: dict[Key, float]
    arrived: dict[str, dict[Key, float]] = field(default_factory=lambda: {d: {} for d in DESTINATIONS})

    def latencies_ms(self, destination: str) -> list[float]:
        seen = self.arrived[destination]
        return [(seen[k] - t) * 1000 for k, t in self.committed.items() if k in seen]

    def missing(self, destination: str) -> int:
        return len(self.committed) - len(self.latencies_ms(destination))

    def complete(self) -> bool:
        return all(self.missing(d) == 0 for d in DESTINATIONS)


async def committed(conn: asyncpg.Connection, load: StepLoad) -> dict[Key, float]:
    rows = await conn.fetch(
        "SELECT event_id::text AS id, recorded_at FROM consent.ledger WHERE event_id = ANY($1::uuid[])",
        list(load.events),
    )
    return {load.events[r["id"]]: r["recorded_at"].timestamp() for r in rows}


async def _domain_rows(
    conn: asyncpg.Connection, domain: str, subjects: list[str], key_of: dict[str, str], since: datetime
) -> dict[Key, float]:
    column = "pseudonym" if domain == "analytics" else "subject_id"
    rows = await conn.fetch(
        f"SELECT {column} AS who, purpose, channel, applied_at FROM {domain}.consents "
        f"WHERE {column} = ANY($1) AND applied_at >= $2",
        [key_of[s] for s in subjects],
        since,
    )
    back = {v: k for k, v in key_of.items()}
    return {
        (back[r["who"]], r["purpose"], r["channel"] if r["channel"] != NO_CHANNEL else None): r[
            "applied_at"
        ].timestamp()
        for r in rows
    }


async def relay_latencies(settings: Settings, load: StepLoad) -> list[float]:
    """Per change of the step, commit -> acknowledged on Kafka in ms: the outbox row's `published_at` (set
    by the relay once Kafka acknowledged it) minus the ledger's `recorded_at`. Exact, where the relay's
    histogram is bucketed."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM o.published_at - l.recorded_at) * 1000 AS ms "
            "FROM consent.outbox o JOIN consent.ledger l ON l.event_id = (o.payload->>'event_id')::uuid "
            "WHERE o.schema_name = 'ConsentChanged' AND o.published_at IS NOT NULL "
            "AND l.event_id = ANY($1::uuid[])",
            list(load.events),
        )
    finally:
        await conn.close()
    return [float(r["ms"]) for r in rows]


class SuppressionFeed:
    """Reads the suppression list's change feed from the start of the replica's epoch onwards."""

    def __init__(self, url: str) -> None:
        self._http = httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer dev-marketing"}, timeout=30)
        self._cursor: str | None = None
        self.seen: dict[tuple[str, Key], float] = {}  # (action, key) -> latest time

    async def read(self) -> None:
        while True:
            params = {"limit": 10_000} | ({"cursor": self._cursor} if self._cursor else {})
            response = await self._http.get("/v1/suppressions/changes", params=params)
            response.raise_for_status()
            page = response.json()
            self._cursor = page["next_cursor"]
            for c in page["changes"]:
                self.seen[(c["action"], (c["subject_id"], c["purpose"], c["channel"]))] = datetime.fromisoformat(
                    c["at"]
                ).timestamp()
            if len(page["changes"]) < 10_000:
                return

    async def aclose(self) -> None:
        await self._http.aclose()


async def arrivals(settings: Settings, feed: SuppressionFeed, load: StepLoad, timeout: float) -> Arrivals:
    """Wait (up to `timeout` after the last request) until every change reached every destination."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        result = Arrivals(await committed(conn, load))
        subjects = sorted({k[0] for k in result.committed})
        keys = {"analytics": {s: pseudonym(settings.analytics_pseudonym_key.encode(), s) for s in subjects}}
        since = datetime.fromtimestamp(load.first_sent).astimezone()
        deadline = time.monotonic() + timeout
        action = FEED_ACTION[load.action]
        while True:
            for domain in DOMAIN_TABLES:
                key_of = keys.get(domain) or {s: s for s in subjects}
                result.arrived[domain] = await _domain_rows(conn, domain, subjects, key_of, since)
            await feed.read()
            result.arrived["suppression"] = {
                k: at for k in result.committed if (at := feed.seen.get((action, k), 0.0)) >= load.first_sent - 1
            }
            if result.complete() or time.monotonic() > deadline:
                return result
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
