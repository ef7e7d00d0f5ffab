"""The two invariants of the fault matrix, observed, and the times each row reports.

(a) `GateWatch` asks every suppression replica about every tracked withdrawal every ~100 ms while a
    fault lasts and until the row ends: an `allowed` answer later than `BOUND_SECONDS` after the
    withdrawal was committed (its 201) is a violation. An unreachable replica gives no answer, which
    is not a violation (a client cannot be told `allowed` by it).
(b) `convergence_problems` compares every projection with what the pure rules compute from the
    ledger (the projections' oracle) and the index's decisions with the same recomputation.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from samtykke.domain.projection import latest_changes
from tests.integration.projections.oracle import actual, expected, ledger

from .harness import ADMIN, BOUND_SECONDS, MARKETING, PROJECTORS, FaultPlatform

DM_SMS = {"purpose": "direct_marketing", "channel": "sms"}


@dataclass(frozen=True)
class Answer:
    after: float  # seconds from the withdrawal's commit (its 201) to the question
    result: str  # allowed, blocked, or unavailable (no answer)
    reasons: tuple[str, ...]


@dataclass
class Tracked:
    subject_id: str
    committed: float  # monotonic, at the 201
    answers: dict[str, list[Answer]] = field(default_factory=dict)


@dataclass
class RowRecord:
    """One row of the table printed at the end of the session."""

    row: str
    nodeid: str
    blocked_after: float | None = None  # slowest replica: commit -> first blocked answer
    first_reason: str = "-"  # the first blocking reason seen (stale or withdrawn)
    converged_after: float | None = None  # recovery -> every invariant (b) holds
    answers: int = 0
    violations: int = 0
    note: str = ""
    restarted: str = ""  # services that exited during the row and were started again
    outcome: str = "-"


RESULTS: list[RowRecord] = []


class GateWatch:
    def __init__(self, replicas: dict[str, str], interval: float = 0.1) -> None:
        self.replicas = replicas
        self.interval = interval
        self.tracked: list[Tracked] = []
        self._task: asyncio.Task[None] | None = None

    def track(self, subject_id: str, committed: float) -> Tracked:
        tracked = Tracked(subject_id, committed, {name: [] for name in self.replicas})
        self.tracked.append(tracked)
        return tracked

    async def __aenter__(self) -> GateWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        async with httpx.AsyncClient(headers=MARKETING, timeout=1.0) as client:
            while True:
                began = time.monotonic()
                await asyncio.gather(
                    *(self._ask(client, name, url, t) for name, url in self.replicas.items() for t in self.tracked)
                )
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - began)))

    async def _ask(self, client: httpx.AsyncClient, replica: str, url: str, tracked: Tracked) -> None:
        # timed when asked: the replica decided after that, so an answer is never blamed on the bound
        # for the time it spent on the way back
        after = time.monotonic() - tracked.committed
        try:
            response = await client.post(f"{url}/v1/check", json={"subject_id": tracked.subject_id, **DM_SMS})
        except httpx.HTTPError:
            answer = Answer(after, "unavailable", ())
        else:
            if response.status_code == 200:
                body = response.json()
                answer = Answer(after, body["result"], tuple(body["reasons"]))
            else:  # a refusal (503 when stale, by setting) allows nothing either
                answer = Answer(after, "unavailable", (str(response.status_code),))
        tracked.answers[replica].append(answer)

    # -- what was seen ------------------------------------------------------------------------
    def violations(self) -> list[str]:
        return [
            f"{replica} answered allowed {a.after:.2f}s after {t.subject_id}'s withdrawal was committed"
            for t in self.tracked
            for replica, answers in t.answers.items()
            for a in answers
            if a.result == "allowed" and a.after > BOUND_SECONDS
        ]

    def blocked_after(self) -> tuple[float | None, str]:
        """The slowest replica's first blocked answer after a commit (of the replicas that were
        answering at the commit; a killed one has no first answer to time), and the first reason seen."""
        slowest: float | None = None
        first: tuple[float, str] | None = None
        for t in self.tracked:
            for answers in t.answers.values():
                blocked = next((a for a in answers if a.result == "blocked"), None)
                if blocked is None or not answers or answers[0].result == "unavailable":
                    continue
                slowest = max(slowest or 0.0, blocked.after)
                if first is None or blocked.after < first[0]:
                    first = (blocked.after, blocked.reasons[0])
        return slowest, first[1] if first else "-"

    def answered(self) -> int:
        return sum(len(a) for t in self.tracked for a in t.answers.values())

    def enforced(self) -> list[str]:
        """What still keeps a tracked withdrawal from being enforced (`withdrawn`) by every replica."""
        missing = []
        for t in self.tracked:
            for replica, answers in t.answers.items():
                last = answers[-1] if answers else None
                if last is None or last.reasons != ("withdrawn",):
                    missing.append(f"{replica}: {t.subject_id} {last}")
        return missing


class Consent:
    """The consent API of one replica, as its users drive it."""

    def __init__(self, url: str) -> None:
        self.client = httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=30)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def subject(self, country: str = "DK", phone: str | None = None) -> str:
        body: dict[str, Any] = {"kind": "consumer", "country": country}
        if phone is not None:
            body["identifiers"] = {"phone": phone}
        response = await self.client.post("/v1/subjects", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["subject_id"])

    async def decide(self, subject_id: str, action: str, channel: str = "sms") -> httpx.Response:
        body = {
            "decisions": [{"purpose": "direct_marketing", "channel": channel, "action": action}],
            "source": "self_service",
            "actor": {"kind": "subject"},
            "notice_version": "dm-2026-01",
        }
        return await self.client.post(f"/v1/subjects/{subject_id}/consents", json=body)

    async def withdraw(self, subject_id: str) -> float:
        """Withdraw direct marketing by SMS; the monotonic instant of the 201 (the commit is before it)."""
        response = await self.decide(subject_id, "withdraw")
        assert response.status_code == 201, response.text
        return time.monotonic()


async def check(client: httpx.AsyncClient, url: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"{url}/v1/check", json=body, headers=MARKETING)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def wait_decision(platform: FaultPlatform, predicate: Any, timeout: float = 30.0, **body: Any) -> None:
    """Until every suppression replica's decision on `body` satisfies `predicate`."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as client:
        for url in platform.suppression_urls.values():
            decision: dict[str, Any] | None = None
            while True:
                with contextlib.suppress(httpx.HTTPError, AssertionError):
                    decision = await check(client, url, **body)
                    if predicate(decision):
                        break
                assert time.monotonic() < deadline, f"{url}: {body} never matched: {decision}"
                await asyncio.sleep(0.1)


async def convergence_problems(platform: FaultPlatform, watch: GateWatch) -> list[str]:
    """Empty once invariant (b) holds: the outbox is on Kafka, every projection equals the recomputation
    from the ledger, every replica's index decides direct marketing by SMS as the recomputation does,
    and every tracked withdrawal is enforced (`withdrawn`) by every replica."""
    problems = watch.enforced()
    try:
        conn = await platform.owner()
    except Exception as error:  # the database itself may still be coming back
        return [*problems, f"database: {type(error).__name__}"]
    try:
        backlog = await conn.fetchval("SELECT count(*) FROM consent.outbox WHERE published_at IS NULL")
        if backlog:
            problems.append(f"outbox backlog {backlog}")
        changes, subjects = await ledger(conn)
        key = platform.settings.analytics_pseudonym_key.encode()
        for domain in PROJECTORS:
            want, got = expected(domain, changes, subjects, key), await actual(conn, domain)
            problems += [
                f"{domain}.{table} differs from the recomputation" for table in want if got[table] != want[table]
            ]
    finally:
        await conn.close()
    problems += await index_problems(platform, changes, subjects, key)
    return problems


async def index_problems(platform: FaultPlatform, changes: Any, subjects: Any, key: bytes) -> list[str]:
    """Every subject with a direct-marketing-by-SMS decision in the ledger: each replica allows it
    exactly when the recomputed `marketable` set holds it."""
    sms = [c for c in latest_changes(changes).values() if (c.purpose, c.channel) == ("direct_marketing", "sms")]
    decided = sorted({c.subject_id for c in sms})
    marketable = expected("marketing", changes, subjects, key)["marketable"]
    problems = []
    async with httpx.AsyncClient(headers=MARKETING, timeout=10) as client:
        for name, url in platform.suppression_urls.items():
            try:
                response = await client.post(
                    f"{url}/v1/check/bulk",
                    params={"mode": "full"},
                    json={**DM_SMS, "entries": [{"subject_id": s} for s in decided]},
                )
            except httpx.HTTPError as error:
                problems.append(f"{name}: {type(error).__name__}")
                continue
            if response.status_code != 200:
                problems.append(f"{name}: {response.status_code}")
                continue
            for subject_id, result in zip(decided, response.json()["results"], strict=True):
                want = "allowed" if (subject_id, "direct_marketing", "sms") in marketable else "blocked"
                if result["result"] != want:
                    problems.append(f"{name}: {subject_id} {result['result']} {result['reasons']}, recomputed {want}")
    return problems


async def converge(platform: FaultPlatform, watch: GateWatch, since: float, timeout: float = 90.0) -> float:
    """Seconds from `since` (the recovery) until invariant (b) holds; the supervisor restarts whatever
    exited meanwhile, as Kubernetes would."""
    deadline = since + timeout
    problems: list[str] = []
    while time.monotonic() < deadline:
        await platform.supervise()
        problems = await convergence_problems(platform, watch)
        if not problems:
            return time.monotonic() - since
        await asyncio.sleep(0.5)
    raise AssertionError(f"not converged {timeout:.0f}s after recovery: {problems[:10]}")
