"""The suppression service on the real stack: consent changes made through the consent API turn
into decisions, lapse is evaluated at check time, erasure and registers hold."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from ..conftest import REGISTERS, RunningConsent
from .conftest import RunningSuppression
from .helpers import decide, register

CHANNELS = ("sms", "email", "phone", "post", "push")


def blocked(reason: str) -> object:
    return lambda d: d["result"] == "blocked" and reason in d["reasons"]


def allowed(d: dict[str, object]) -> bool:
    return d["result"] == "allowed"


async def test_a_withdrawal_blocks_and_we_record_how_long_it_took(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    subject = await register(consent, "DK", "+45 21 22 23 24", "Mette.Dahl@example.dk")
    await decide(consent, subject, ("direct_marketing", "sms", "grant"))
    first = await suppression.wait_for(allowed, subject_id=subject, purpose="direct_marketing", channel="sms")
    assert first["subject_ids"] == [subject] and first["valid_until"]
    assert set(first["position"]) == {consent.settings.topic_changes, consent.settings.topic_subjects}
    by_phone = await suppression.wait_for(allowed, phone="+4521222324", purpose="direct_marketing", channel="sms")
    by_email = await suppression.wait_for(
        allowed, email="mette.dahl@EXAMPLE.dk", purpose="direct_marketing", channel="sms"
    )
    assert by_phone["result"] == by_email["result"] == "allowed" and by_phone["subject_ids"] == [subject]

    started = time.perf_counter()
    await decide(consent, subject, ("direct_marketing", "sms", "withdraw"))
    decision = await suppression.wait_for(
        blocked("withdrawn"), subject_id=subject, purpose="direct_marketing", channel="sms"
    )
    took = time.perf_counter() - started
    print(f"\nwithdrawal to blocked decision: {took * 1000:.0f} ms (consent API commit -> outbox -> Kafka -> index)")
    assert decision["reasons"] == ["withdrawn"] and decision["valid_until"] is None
    assert took < 10
    later = decision["position"][consent.settings.topic_changes]
    assert sum(later.values()) > sum(first["position"][consent.settings.topic_changes].values())


async def test_a_lapsed_grant_is_blocked_at_once_without_an_expired_event(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    subject = await register(consent, "SE")
    # a grant made (365 days - 3 s) ago lapses 3 s from now; the sweeper (hourly here) emits nothing
    granted_at = datetime.now(UTC) - timedelta(days=365) + timedelta(seconds=3)
    await decide(consent, subject, ("direct_marketing", "email", "grant"), occurred_at=granted_at)
    decision = await suppression.wait_for(allowed, subject_id=subject, purpose="direct_marketing", channel="email")
    valid_until = datetime.fromisoformat(decision["valid_until"])
    await asyncio.sleep(max(0.0, (valid_until - datetime.now(UTC)).total_seconds()))
    after = await suppression.check(subject_id=subject, purpose="direct_marketing", channel="email")
    assert after["result"] == "blocked" and after["reasons"] == ["expired"]
    history = (await consent.client.get(f"/v1/subjects/{subject}/history")).json()
    assert [h["status"] for h in history] == ["granted"]  # no `expired` change was ever emitted


async def test_service_messages_stay_allowed_after_a_marketing_opt_out(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    subject = await register(consent, "NO", "+47 41 00 00 01")
    await decide(consent, subject, *(("direct_marketing", c, "withdraw") for c in CHANNELS))
    await suppression.wait_for(
        blocked("objected"), subject_id=subject, purpose="existing_customer_offers", channel="sms"
    )
    for channel in CHANNELS:
        service = await suppression.check(subject_id=subject, purpose="service_delivery", channel=channel)
        assert service["result"] == "allowed", service
    marketing = await suppression.check(subject_id=subject, purpose="direct_marketing", channel="sms")
    assert marketing["reasons"] == ["objected", "withdrawn"]


async def test_an_erased_subject_stays_blocked(consent: RunningConsent, suppression: RunningSuppression) -> None:
    subject = await register(consent, "DK", "+45 31 32 33 34")
    await decide(consent, subject, ("direct_marketing", "sms", "grant"))
    await suppression.wait_for(allowed, subject_id=subject, purpose="direct_marketing", channel="sms")
    assert (await consent.client.post(f"/v1/subjects/{subject}/erasure")).status_code == 200
    await suppression.wait_for(blocked("erased"), subject_id=subject, purpose="direct_marketing", channel="sms")
    for purpose, channel in (("service_delivery", "sms"), ("existing_customer_offers", "email")):
        decision = await suppression.check(subject_id=subject, purpose=purpose, channel=channel)
        assert decision["reasons"] == ["erased"]
    by_phone = await suppression.check(phone="+4531323334", purpose="direct_marketing", channel="sms")
    assert by_phone["reasons"] == ["erased"] and by_phone["subject_ids"] == [subject]
    unknown = await suppression.check(phone="+4599999999", purpose="service_delivery", channel="sms")
    assert unknown["reasons"] == ["unknown_subject"] and unknown["subject_ids"] == []


async def test_a_nix_listed_number_is_blocked_for_calls_until_it_holds_a_phone_consent(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    listed = await register(consent, "SE", "070-111 22 33")
    clear = await register(consent, "SE", "+46 70 999 88 77")
    await suppression.wait_for(
        lambda d: d["subject_ids"] == [clear], subject_id=clear, purpose="existing_customer_offers", channel="phone"
    )
    published = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    body = "# NIX-Telefon test extract\n+46701112233\n0701234567\nnot-a-number\n\n+4670\n"
    response = await suppression.client.post(
        "/v1/registers/NIX/imports",
        params={"published": published, "force": "true"},  # half its lines are invalid: refused unless forced
        content=body,
        headers=REGISTERS | {"Content-Type": "text/plain"},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    while job["state"] == "running":
        await asyncio.sleep(0.05)
        job = (await suppression.client.get(f"/v1/registers/imports/{job['job_id']}", headers=REGISTERS)).json()
    assert (job["state"], job["read"], job["listed"], job["matched"], job["invalid"]) == ("done", 4, 2, 1, 2)
    assert job["invalid_lines"] == [4, 6]

    call = {"subject_id": listed, "purpose": "direct_marketing", "channel": "phone"}
    assert (await suppression.check(**call))["reasons"] == ["no_consent", "register:NIX"]
    soft = await suppression.check(subject_id=listed, purpose="existing_customer_offers", channel="phone")
    assert soft["reasons"] == ["register:NIX"] and soft["registers"][0]["published"] == published
    assert (await suppression.check(subject_id=listed, purpose="existing_customer_offers", channel="sms"))[
        "result"
    ] == "allowed"
    fine = await suppression.check(subject_id=clear, purpose="existing_customer_offers", channel="phone")
    assert fine["result"] == "allowed" and fine["registers"][0]["standing"] == "clear"
    assert fine["valid_until"] == fine["registers"][0]["fresh_until"]  # good until the snapshot goes stale

    await decide(consent, listed, ("direct_marketing", "phone", "grant"))
    await suppression.wait_for(allowed, **call)
    soft = await suppression.check(subject_id=listed, purpose="existing_customer_offers", channel="phone")
    assert soft["result"] == "allowed"


async def test_a_register_past_its_freshness_window_makes_dependent_decisions_stale(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    subject = await register(consent, "NO", "+47 41 22 33 44")
    await suppression.wait_for(
        lambda d: d["subject_ids"] == [subject], subject_id=subject, purpose="existing_customer_offers", channel="post"
    )
    unloaded = await suppression.check(subject_id=subject, purpose="existing_customer_offers", channel="post")
    assert unloaded["reasons"] == ["stale"]  # no Reservasjonsregisteret loaded: cannot tell, so blocked
    old = (datetime.now(UTC) - timedelta(days=40)).date().isoformat()  # freshness: 31 days
    response = await suppression.client.post(
        "/v1/registers/RESERVASJON/imports",
        params={"published": old},
        content="+4790000000\n",
        headers=REGISTERS | {"Content-Type": "text/plain"},
    )
    assert response.status_code == 202
    await asyncio.sleep(0.2)
    decision = await suppression.check(subject_id=subject, purpose="existing_customer_offers", channel="post")
    assert decision["reasons"] == ["stale"] and decision["registers"][0]["standing"] == "stale"
    email = await suppression.check(subject_id=subject, purpose="existing_customer_offers", channel="email")
    assert email["result"] == "allowed"  # registers cover phone and post only
