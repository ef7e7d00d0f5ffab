"""Consent changes through the consent API, open loop at a steady rate.

Every change flips a suppression decision: a pool of consumers each holds the ten opt-in
marketing keys (purpose, channel) the catalog gives consumers; a step withdraws them (or grants
them again, on alternate steps), `per_request` keys of one subject per request, and touches each
key once, so each key's row in every domain and its suppression entry date exactly one change.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from samtykke.domain.catalog import load_catalog
from samtykke.domain.model import Mechanism, SubjectKind

from .http import HttpError, KeepAliveClient

ADMIN = {"Authorization": "Bearer dev-admin"}
Key = tuple[str, str, str | None]  # subject id, purpose, channel


def marketing_keys() -> list[tuple[str, str | None]]:
    """The opt-in marketing (purpose, channel) pairs of a consumer: a change to one flips suppression."""
    catalog = load_catalog()
    return [
        (p.code, c.value if c else None)
        for p in catalog.purposes.values()
        if p.marketing and p.mechanism is Mechanism.OPT_IN and p.decidable and p.applies_to(SubjectKind.CONSUMER)
        for c in (p.channels[SubjectKind.CONSUMER] or [None])
    ]


KEYS = marketing_keys()


@dataclass
class StepLoad:
    """What one step sent: per change its event id and key; per request the client's view."""

    action: str
    rate: float
    seconds: float
    events: dict[str, Key] = field(default_factory=dict)
    request_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    first_sent: float = 0.0
    last_done: float = 0.0

    @property
    def achieved_rate(self) -> float:
        return len(self.events) / max(self.last_done - self.first_sent, 1e-9)


async def _decide(
    http: KeepAliveClient, subject_id: str, keys: list[tuple[str, str | None]], action: str
) -> list[dict[str, Any]]:
    body = {
        "decisions": [{"purpose": p, "channel": c, "action": action} for p, c in keys],
        "source": "app",
        "actor": {"kind": "subject"},
    }
    changes: list[dict[str, Any]] = (await http.post(f"/v1/subjects/{subject_id}/consents", body))["changes"]
    return changes


async def subject_pool(url: str, size: int, concurrency: int = 8) -> list[str]:
    """`size` consumers, each granted every marketing key (untimed set-up)."""
    subjects: list[str] = []
    queue = iter(range(size))

    async def worker(http: KeepAliveClient) -> None:
        for _ in queue:
            subject_id = (await http.post("/v1/subjects", {"kind": "consumer", "country": "DK"}))["subject_id"]
            await _decide(http, subject_id, KEYS, "grant")
            subjects.append(subject_id)

    http = KeepAliveClient(url, ADMIN, connections=concurrency)
    try:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    finally:
        await http.aclose()
    return subjects


def requests_needed(rate: float, seconds: float, per_request: int) -> int:
    return max(1, round(rate * seconds / per_request))


def pool_size(rate: float, seconds: float, per_request: int) -> int:
    """Subjects a step needs so that no key is touched twice in it."""
    per_subject = len(KEYS) // per_request
    return -(-requests_needed(rate, seconds, per_request) // per_subject)


async def run_step(
    url: str, subjects: list[str], action: str, rate: float, seconds: float, per_request: int
) -> StepLoad:
    """Send `rate` changes/s for `seconds`: one request every per_request/rate s, whatever the
    earlier ones are doing (open loop), so a slow server shows as latency, not as a lower rate."""
    load = StepLoad(action, rate, seconds)
    total = requests_needed(rate, seconds, per_request)
    per_subject = len(KEYS) // per_request
    interval = per_request / rate
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, http: KeepAliveClient) -> None:
        subject_id = subjects[i // per_subject]
        part = i % per_subject
        keys = KEYS[part * per_request : (part + 1) * per_request]
        started = time.perf_counter()
        try:
            changes = await _decide(http, subject_id, keys, action)
        except (HttpError, OSError, asyncio.IncompleteReadError) as exc:
            kind = type(exc).__name__
            load.errors[kind] = load.errors.get(kind, 0) + 1
            return
        done = time.perf_counter()
        load.request_ms.append((done - started) * 1000)
        load.last_done = max(load.last_done, time.time())
        for change in changes:
            load.events[change["event_id"]] = (subject_id, change["purpose"], change["channel"])

    http = KeepAliveClient(url, ADMIN, connections=64)
    try:
        t0 = time.perf_counter()
        load.first_sent = time.time()
        for i in range(total):
            await asyncio.sleep(max(0.0, t0 + i * interval - time.perf_counter()))
            task = asyncio.create_task(one(i, http))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        await http.aclose()
    return load
