"""A number changes hands, on the real stack: subject A is erased (or ports its number out), subject B
registers the same number and grants SMS marketing. A check by the number answers for whoever held it
at the check time: A's block while A held it and for the quarantine after, B's own consent after that."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from samtykke.adapters.kafka import client_options

from ..conftest import RunningConsent
from ..topic_reader import read_raw
from .conftest import RunningSuppression
from .helpers import decide, register

AUDITOR = {"Authorization": "Bearer dev-auditor"}  # an `at` in the past needs suppression:audit
SMS = {"purpose": "direct_marketing", "channel": "sms"}


async def at(suppression: RunningSuppression, when: datetime, **target: Any) -> tuple[str, list[str], list[str]]:
    response = await suppression.client.post("/v1/check", json=target | SMS | {"at": when.isoformat()}, headers=AUDITOR)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["result"], body["reasons"], body["subject_ids"]


def holders(*subject_ids: str) -> Any:
    return lambda d: d["subject_ids"] == list(subject_ids)


async def test_an_erased_subjects_number_blocks_for_the_quarantine_then_its_new_holder_governs(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    number = "+45 51 52 53 54"
    a = await register(consent, "DK", number, "anna.berg@example.dk")
    await decide(consent, a, ("direct_marketing", "sms", "grant"))
    held_by_a = await suppression.wait_for(lambda d: d["result"] == "allowed", phone=number, **SMS)
    a_checked_at = datetime.fromisoformat(held_by_a["at"])
    a_registered = datetime.fromisoformat((await consent.client.get(f"/v1/subjects/{a}")).json()["created_at"])

    erased = await consent.client.post(f"/v1/subjects/{a}/erasure")
    erased_at = datetime.fromisoformat(erased.json()["erased_at"])
    b = await register(consent, "DK", number)
    await decide(consent, b, ("direct_marketing", "sms", "grant"))

    by_b = await suppression.wait_for(lambda d: d["result"] == "allowed", subject_id=b, **SMS)
    assert by_b["subject_ids"] == [b]
    now = await suppression.wait_for(holders(a, b), phone=number, **SMS)
    assert (now["result"], now["reasons"]) == ("blocked", ["erased"])
    by_a = await suppression.check(subject_id=a, **SMS)
    assert by_a["reasons"] == ["erased"]

    quarantine = timedelta(days=suppression.settings.identifier_quarantine_days)
    assert await at(suppression, erased_at + quarantine - timedelta(minutes=1), phone=number) == (
        "blocked",
        ["erased"],
        [a, b],
    )
    assert await at(suppression, erased_at + quarantine + timedelta(days=1), phone=number) == ("allowed", [], [b])
    assert await at(suppression, a_checked_at, phone=number) == ("blocked", ["erased"], [a])
    assert await at(suppression, a_registered - timedelta(days=1), phone=number) == (
        "blocked",
        ["unknown_subject"],
        [],
    )

    # the e-mail went with the erasure too, and nobody has it since
    by_email = await suppression.check(email="anna.berg@example.dk", **SMS)
    assert (by_email["reasons"], by_email["subject_ids"]) == (["erased"], [a])
    later = await at(suppression, erased_at + quarantine + timedelta(days=1), email="anna.berg@example.dk")
    assert later == ("blocked", ["unknown_subject"], [])

    await no_identifier_in_clear_on_the_topics(consent, ["+4551525354", "4551525354", "51525354", "anna.berg"])


async def test_a_ported_out_number_blocks_as_released_then_its_next_holder_governs(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    number = "+45 61 62 63 64"
    a = await register(consent, "DK", number, "bo.lund@example.dk")
    await decide(consent, a, ("direct_marketing", "sms", "grant"))
    await suppression.wait_for(lambda d: d["result"] == "allowed", phone=number, **SMS)

    release = await consent.client.post(
        f"/v1/subjects/{a}/identifiers/release", json={"identifiers": ["phone"], "reason": "ported_out"}
    )
    assert release.status_code == 200, release.text
    released_by = datetime.now(UTC)  # the release was stamped before its response
    ported = await suppression.wait_for(lambda d: d["reasons"] == ["released"], phone=number, **SMS)
    assert (ported["result"], ported["subject_ids"]) == ("blocked", [a])
    still = await suppression.check(subject_id=a, **SMS)
    assert still["result"] == "allowed"  # A keeps its consents: only its number left it
    by_email = await suppression.check(email="bo.lund@example.dk", **SMS)
    assert (by_email["result"], by_email["subject_ids"]) == ("allowed", [a])

    b = await register(consent, "DK", number)
    await decide(consent, b, ("direct_marketing", "sms", "grant"))
    await suppression.wait_for(lambda d: d["result"] == "allowed", subject_id=b, **SMS)
    now = await suppression.check(phone=number, **SMS)
    assert (now["result"], now["reasons"], now["subject_ids"]) == ("blocked", ["released"], [a, b])
    quarantine = timedelta(days=suppression.settings.identifier_quarantine_days)
    assert await at(suppression, released_by + quarantine + timedelta(days=1), phone=number) == ("allowed", [], [b])

    await no_identifier_in_clear_on_the_topics(consent, ["+4561626364", "4561626364", "61626364", "bo.lund"])


async def no_identifier_in_clear_on_the_topics(consent: RunningConsent, clear: list[str]) -> None:
    await consent.wait_outbox_empty()
    settings = consent.settings
    for topic in (settings.topic_subjects, settings.topic_changes):
        raw = await read_raw(client_options(settings), topic, 1_000, timeout=3)
        assert raw, topic
        for value in clear:
            assert not any(value.encode() in (m.key or b"") + (m.value or b"") for m in raw), (topic, value)
