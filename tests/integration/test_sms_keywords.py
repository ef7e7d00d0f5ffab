"""SMS keywords against the running consent service, with the gate (suppression service) watching."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from samtykke.consent.sms import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed

from .conftest import RunningConsent
from .suppression.conftest import RunningSuppression, start_suppression, suppression  # noqa: F401
from .test_consent_service import batch, register

SWEDE = "+46701234567"
SWEDE_SUBJECT = {"kind": "consumer", "country": "SE", "identifiers": {"phone": "070-123 45 67"}}


def blocked(decision: dict[str, Any]) -> bool:
    return bool(decision["result"] == "blocked")


async def text(
    consent: RunningConsent, sender: str, message: str, *, form: bool = True, age: int = 0, secret: str | None = None
) -> Any:
    fields = {"from": sender, "to": "1919", "text": message, "message_id": f"gw-{uuid.uuid4().hex}"}
    body = urlencode(fields).encode() if form else json.dumps(fields).encode()
    timestamp = str(int(time.time()) - age)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signed(secret or consent.settings.sms_webhook_secret, timestamp, body),
        "Authorization": "",
    }
    return await consent.client.post("/v1/sms/inbound", content=body, headers=headers)


async def ledger(consent: RunningConsent, subject: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (await consent.client.get(f"/v1/subjects/{subject}/history")).json()
    return rows


async def test_stopp_blocks_sms_marketing_at_the_gate(
    consent: RunningConsent,
    suppression: RunningSuppression,  # noqa: F811
) -> None:
    subject = await register(consent, SWEDE_SUBJECT)
    granted = await consent.client.post(
        f"/v1/subjects/{subject}/consents",
        json=batch(("direct_marketing", "sms", "grant"), ("direct_marketing", "email", "grant")),
    )
    assert granted.status_code == 201, granted.text
    check = {"phone": SWEDE, "purpose": "direct_marketing", "channel": "sms"}
    await suppression.wait_for(lambda d: d["result"] == "allowed", **check)

    started = time.perf_counter()
    response = await text(consent, SWEDE, " stopp ")
    decision = await suppression.wait_for(blocked, **check)
    took = time.perf_counter() - started
    print(f"\nSTOPP to blocked at the gate: {took * 1000:.0f} ms (webhook -> ledger -> outbox -> Kafka -> index)")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["keyword"] == "stop" and answer["changes"] == 3
    assert "sms" in answer["reply"] and "START" in answer["reply"]  # Swedish, as the number is
    assert decision["reasons"] == ["withdrawn"] and decision["subject_ids"] == [subject]
    assert took < 5, f"{took:.2f} s"  # a second or so on a quiet machine; generous for shared cores

    email = await suppression.check(phone=SWEDE, purpose="direct_marketing", channel="email")
    assert email["result"] == "allowed"  # a text stops texts, nothing else
    rows = await ledger(consent, subject)
    stop = rows[-1]
    assert (stop["source"], stop["actor_kind"], stop["client_id"]) == ("sms_keyword", "subject", "sms-keyword")

    again = await text(consent, SWEDE, "STOP", form=False)
    assert again.status_code == 200 and again.json()["changes"] == 0
    assert await ledger(consent, subject) == rows


async def test_start_undoes_a_recent_stop_only(consent: RunningConsent) -> None:
    subject = await register(consent, SWEDE_SUBJECT)
    await consent.client.post(f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "sms", "grant")))
    refused = (await text(consent, SWEDE, "START")).json()
    assert refused["changes"] == 0 and refused["keyword"] == "start"
    assert (await text(consent, SWEDE, "STOPP")).json()["changes"] == 3
    restarted = (await text(consent, SWEDE, "ja")).json()
    assert restarted["changes"] == 3  # what the STOP withdrew, and nothing it did not
    last = (await ledger(consent, subject))[-1]
    assert last["status"] == "granted" and last["notice_version"] == consent.settings.sms_notice_version


async def test_an_unknown_number_is_blocked_from_then_on(
    consent: RunningConsent,
    suppression: RunningSuppression,  # noqa: F811
) -> None:
    number = "+4791234567"
    response = await text(consent, number, "AVSLUTT")
    assert response.status_code == 200 and response.json()["changes"] == 3
    assert "SMS" in response.json()["reply"]  # Norwegian
    decision = await suppression.wait_for(
        lambda d: d["reasons"] == ["withdrawn"], phone=number, purpose="direct_marketing", channel="sms"
    )
    assert decision["result"] == "blocked" and len(decision["subject_ids"]) == 1
    subject = decision["subject_ids"][0]
    shown = (await consent.client.get(f"/v1/subjects/{subject}")).json()
    assert shown["country"] == "NO"
    assert shown["has_identifiers"] == {"phone": True, "email": False, "national_id": False}
    assert (await text(consent, number, "stop")).json()["changes"] == 0
    assert len((await consent.client.post("/v1/subjects/lookup", json={"phone": number})).json()["subject_ids"]) == 1


async def test_help_answers_with_a_text(consent: RunningConsent) -> None:
    response = await text(consent, "+4520304050", "HJÆLP")
    assert response.status_code == 200
    answer = response.json()
    assert answer["keyword"] == "help" and answer["changes"] == 0 and "STOP" in answer["reply"]
    nothing = (await text(consent, "+4520304050", "hello there")).json()
    assert nothing["keyword"] is None and nothing["reply"] is None


async def test_unsigned_wrongly_signed_and_old_requests_are_refused(consent: RunningConsent) -> None:
    assert (await text(consent, SWEDE, "STOP", secret="not-the-gateways-secret")).status_code == 401
    assert (await text(consent, SWEDE, "STOP", age=301)).status_code == 401
    assert (await text(consent, SWEDE, "STOP", age=-301)).status_code == 401
    bare = await consent.client.post("/v1/sms/inbound", data={"from": SWEDE, "to": "1919", "text": "STOP"})
    assert bare.status_code == 401
    assert (await consent.client.post("/v1/subjects/lookup", json={"phone": SWEDE})).json()["subject_ids"] == []
