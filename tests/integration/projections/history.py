"""A seeded random consent history, made through the consent API as its users would make it:
consumers, businesses (decided by a company admin) and their employees, grants, withdrawals,
revocations, back-dated grants that have lapsed, reported uses, erasures and a lifecycle sweep."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from samtykke.domain.catalog import load_catalog
from samtykke.domain.model import SubjectKind

CATALOG = load_catalog()
COUNTRIES = ("DK", "SE", "NO")


@dataclass(frozen=True)
class Subject:
    subject_id: str
    kind: str
    account_id: str | None


async def register(
    client: httpx.AsyncClient, kind: str, country: str, account: str | None, identifiers: dict[str, str] | None = None
) -> Subject:
    body: dict[str, Any] = {"kind": kind, "country": country, "account_id": account}
    if identifiers:
        body["identifiers"] = identifiers
    response = await client.post("/v1/subjects", json=body)
    assert response.status_code == 201, response.text
    return Subject(response.json()["subject_id"], kind, account)


async def population(
    client: httpx.AsyncClient, rng: random.Random, consumers: int = 10, businesses: int = 3, employees: int = 6
) -> list[Subject]:
    accounts = [f"ACC-{rng.randrange(10**6):06d}" for _ in range(businesses)]
    subjects = [await register(client, "consumer", rng.choice(COUNTRIES), None) for _ in range(consumers)]
    subjects += [await register(client, "business", rng.choice(COUNTRIES), a) for a in accounts]
    subjects += [
        await register(client, "employee", rng.choice(COUNTRIES), rng.choice(accounts)) for _ in range(employees)
    ]
    return subjects


def choices(kind: str) -> list[tuple[str, str | None]]:
    """Every (purpose, channel) a subject of this kind may decide on."""
    found: list[tuple[str, str | None]] = []
    for purpose in CATALOG.purposes.values():
        if not purpose.decidable or not purpose.applies_to(SubjectKind(kind)):
            continue
        if purpose.per_channel:
            found += [(purpose.code, c.value) for c in purpose.channels[SubjectKind(kind)]]
        else:
            found.append((purpose.code, None))
    return found


class RandomHistory:
    def __init__(self, client: httpx.AsyncClient, subjects: list[Subject], seed: int) -> None:
        self.client = client
        self.rng = random.Random(seed)
        self.live = list(subjects)
        self.decided: set[tuple[str, str, str | None]] = set()
        self.decisions = 0

    async def decide(self, count: int) -> None:
        """Record about `count` decisions in batches of 1 to 3 for one subject each."""
        target = self.decisions + count
        while self.decisions < target:
            subject = self.rng.choice(self.live)
            available = choices(subject.kind)
            options = self.rng.sample(available, k=min(len(available), self.rng.randint(1, 3)))
            action = self.rng.choices(["grant", "withdraw", "revoke"], weights=[6, 3, 1])[0]
            decisions = []
            for purpose, channel in options:
                decision: dict[str, Any] = {"purpose": purpose, "channel": channel, "action": action}
                key = (subject.subject_id, purpose, channel)
                if action == "grant" and key not in self.decided and self.rng.random() < 0.15:
                    # a grant long enough ago that it has lapsed unused
                    decision["occurred_at"] = (datetime.now(UTC) - timedelta(days=400)).isoformat()
                self.decided.add(key)
                decisions.append(decision)
            actor = "company_admin" if subject.kind == "business" else ("agent" if action == "revoke" else "subject")
            source = {"company_admin": "company_admin", "agent": "customer_service", "subject": "self_service"}[actor]
            body = {
                "decisions": decisions,
                "source": source,
                "actor": {"kind": actor},
                "notice_version": f"n-{self.rng.randint(1, 3)}",
                "evidence_ref": f"ev-{self.rng.randrange(10**6)}",
            }
            response = await self.client.post(f"/v1/subjects/{subject.subject_id}/consents", json=body)
            assert response.status_code == 201, response.text
            self.decisions += len(decisions)

    async def lifecycle(self, erasures: int = 2) -> None:
        """Reported uses of some grants, erasure of a few subjects, then a lifecycle sweep."""
        for subject_id, purpose, channel in self.rng.sample(
            sorted(self.decided, key=str), k=min(10, len(self.decided))
        ):
            if purpose == "direct_marketing":
                await self.client.post(
                    f"/v1/subjects/{subject_id}/usage", json={"purpose": purpose, "channel": channel}
                )
        for subject in self.rng.sample([s for s in self.live if s.kind != "business"], k=erasures):
            assert (await self.client.post(f"/v1/subjects/{subject.subject_id}/erasure")).status_code == 200
            self.live.remove(subject)
        assert (await self.client.post("/v1/lifecycle/sweep")).status_code == 200
