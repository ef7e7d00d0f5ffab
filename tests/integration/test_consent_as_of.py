"""The answer about an instant cites the ledger: which decision was in force, made how and under which notice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .conftest import RunningConsent

T0 = (datetime.now(UTC) - timedelta(days=600)).replace(microsecond=0)
DM_SMS = ("direct_marketing", "sms")
OFFERS = ("personalised_offers", None)


def day(n: float) -> str:
    return (T0 + timedelta(days=n)).isoformat()


async def decide(
    consent: RunningConsent, subject: str, key: tuple[str, str | None], action: str, on: float, **how: Any
) -> str:
    body = {
        "decisions": [{"purpose": key[0], "channel": key[1], "action": action, "occurred_at": day(on)}],
        "source": "self_service",
        "actor": {"kind": "subject"},
    } | how
    response = await consent.client.post(f"/v1/subjects/{subject}/consents", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["changes"][0]["event_id"])


async def as_of(consent: RunningConsent, subject: str, at: str | None) -> dict[tuple[str, str | None], Any]:
    response = await consent.client.get(f"/v1/subjects/{subject}/consents", params={"at": at} if at else {})
    assert response.status_code == 200, response.text
    return {(c["purpose"], c["channel"]): c for c in response.json()}


def cites(answer: dict[str, Any], recorded: dict[str, Any], decision: dict[str, Any]) -> None:
    """The answer's provenance, field by field, against the ledger rows it must cite."""
    assert (answer["recorded_at"], answer["source"], answer["notice_version"]) == (
        recorded["recorded_at"],
        recorded["source"],
        recorded["notice_version"],
    )
    assert answer["decision"] == {
        "event_id": decision["event_id"],
        "seq": decision["seq"],
        "source": decision["source"],
        "actor_kind": decision["actor_kind"],
        "notice_version": decision["notice_version"],
        "occurred_at": decision["occurred_at"],
        "recorded_at": decision["recorded_at"],
        "client_id": decision["client_id"],
        "evidence_on_file": decision["evidence_ref"] is not None,
    }


async def test_as_of_answers_cite_the_decision_in_force(consent: RunningConsent) -> None:
    created = await consent.client.post("/v1/subjects", json={"kind": "consumer", "country": "DK"})
    subject = created.json()["subject_id"]
    agent = {"source": "customer_service", "actor": {"kind": "agent", "ref": "agent-17"}}
    first = await decide(
        consent, subject, DM_SMS, "grant", 0, notice_version="dk-2025-01", evidence_ref="call-1", **agent
    )
    offers = await decide(consent, subject, OFFERS, "grant", 10, notice_version="dk-2025-06")
    usage = await consent.client.post(
        f"/v1/subjects/{subject}/usage", json={"purpose": "direct_marketing", "channel": "sms", "used_at": day(100)}
    )
    assert usage.status_code == 200, usage.text
    used = usage.json()["event_id"]
    withdrawal = await decide(consent, subject, DM_SMS, "withdraw", 200, notice_version="dk-2025-11", source="app")
    regrant = await decide(consent, subject, DM_SMS, "grant", 300, notice_version="dk-2026-11", evidence_ref="web-9")

    history = (await consent.client.get(f"/v1/subjects/{subject}/history")).json()
    ledger = {row["event_id"]: row for row in history}
    assert len(ledger) == 5 and all(row["client_id"] for row in history)

    assert await as_of(consent, subject, day(-1)) == {}

    early = await as_of(consent, subject, day(5))
    assert list(early) == [DM_SMS] and early[DM_SMS]["status"] == "granted"
    cites(early[DM_SMS], ledger[first], ledger[first])
    assert early[DM_SMS]["decision"]["evidence_on_file"] is True

    # a usage report moves last_used_at and is the last write, but the decision is still the grant
    after_use = await as_of(consent, subject, day(150))
    assert (after_use[DM_SMS]["status"], after_use[DM_SMS]["last_used_at"]) == ("granted", ledger[used]["last_used_at"])
    cites(after_use[DM_SMS], ledger[used], ledger[first])
    assert (
        after_use[DM_SMS]["source"] == "usage_report"
        and after_use[DM_SMS]["decision"]["notice_version"] == "dk-2025-01"
    )
    cites(after_use[OFFERS], ledger[offers], ledger[offers])
    assert after_use[OFFERS]["decision"]["evidence_on_file"] is False

    withdrawn = await as_of(consent, subject, day(250))
    assert withdrawn[DM_SMS]["status"] == "withdrawn"
    cites(withdrawn[DM_SMS], ledger[withdrawal], ledger[withdrawal])

    # the offers grant lapsed at day 375 with no lapse row written: expired, citing the grant that lapsed
    late = await as_of(consent, subject, day(400))
    assert (late[DM_SMS]["status"], late[OFFERS]["status"]) == ("granted", "expired")
    cites(late[DM_SMS], ledger[regrant], ledger[regrant])
    cites(late[OFFERS], ledger[offers], ledger[offers])

    # once the sweeper records the lapse, it is the last write; the decision cited stays the grant
    assert (await consent.client.post("/v1/lifecycle/sweep")).json()["expired"] == 1
    lapse = next(
        row
        for row in (await consent.client.get(f"/v1/subjects/{subject}/history")).json()
        if row["event_id"] not in ledger
    )
    swept = await as_of(consent, subject, day(400))
    assert (swept[OFFERS]["status"], swept[OFFERS]["source"]) == ("expired", "system")
    cites(swept[OFFERS], lapse, ledger[offers])
    assert swept[DM_SMS] == late[DM_SMS]

    # the current answer has the same shape and cites the same rows as an answer about now
    now = await as_of(consent, subject, None)
    assert now == await as_of(consent, subject, datetime.now(UTC).isoformat())

    assert "call-1" not in str(await as_of(consent, subject, day(5)))
    erased = await consent.client.post(f"/v1/subjects/{subject}/erasure")
    assert erased.status_code == 200, erased.text
    assert (await as_of(consent, subject, day(5)))[DM_SMS]["decision"]["evidence_on_file"] is False
