"""The key and partition rule of `consent.changes`, which other producers must be able to reproduce."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import murmur2 as kafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from samtykke.domain.consent_keys import (
    ConsentKey,
    consent_key,
    murmur2,
    parse_consent_key,
    subject_of_key,
    subject_partition,
)

SUBJECT = "6f1c9a52-3e0b-4b8e-9d7a-1f2e3d4c5b6a"


@pytest.mark.parametrize(
    ("text", "expected"),
    [  # the vectors of Kafka's own UtilsTest
        ("21", -973932308),
        ("foobar", -790332482),
        ("a-little-bit-long-string", -985981536),
        ("a-little-bit-longer-string", -1486304829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        ("abc", 479470107),
    ],
)
def test_murmur2_is_kafkas(text: str, expected: int) -> None:
    assert murmur2(text.encode()) == expected


def test_a_key_names_the_consent_and_no_channel_is_a_dash() -> None:
    assert consent_key(SUBJECT, "direct_marketing", "sms") == f"{SUBJECT}/direct_marketing/sms"
    assert consent_key(SUBJECT, "fault_prevention", None) == f"{SUBJECT}/fault_prevention/-"
    assert parse_consent_key(f"{SUBJECT}/fault_prevention/-") == ConsentKey(SUBJECT, "fault_prevention", None)
    with pytest.raises(ValueError):
        parse_consent_key(SUBJECT)


@given(st.sampled_from(["direct_marketing", "personalised_offers"]), st.sampled_from(["sms", "email", None]))
def test_every_consent_of_a_subject_shares_the_subjects_partition(purpose: str, channel: str | None) -> None:
    key = consent_key(SUBJECT, purpose, channel)
    assert subject_of_key(key) == SUBJECT
    # the partition Kafka's default partitioner gives a record keyed by the subject id alone
    assert subject_partition(key, 6) == (murmur2(SUBJECT.encode()) & 0x7FFFFFFF) % 6 == subject_partition(SUBJECT, 6)


def test_a_batch_applies_what_came_before_a_tombstone_then_removes_then_what_came_after() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from samtykke.domain.events import ConsentChanged
    from samtykke.projections.messages import Batch

    now = datetime(2026, 6, 1, tzinfo=UTC)
    before = ConsentChanged(
        "e1", SUBJECT, "consumer", None, "DK", "direct_marketing", "sms", "granted", None, 1, now, now, None,
        "self_service", "subject", None, None, None,
    )  # fmt: skip
    other = replace(before, event_id="e2", channel="email")
    after = replace(before, event_id="e3", version=2)
    sms, email = ConsentKey(SUBJECT, "direct_marketing", "sms"), ConsentKey(SUBJECT, "direct_marketing", "email")
    batch = Batch(changes=[before, other])
    batch.add_removal(sms)
    batch.add_removal(email)
    batch.changes.append(after)
    steps = [(step.changes, removed) for step, removed in batch.in_order()]
    assert steps == [([before, other], [sms, email]), ([after], [])]
    assert [(s.changes, r) for s, r in Batch(changes=[before]).in_order()] == [([before], [])]


def test_murmur2_is_kafkas_for_every_length_and_tail() -> None:
    """Records are partitioned as Kafka's default partitioner would (aiokafka's copy of it as the oracle)."""
    rng = random.Random(7)
    for length in range(41):
        for _ in range(25):
            data = rng.randbytes(length)
            assert murmur2(data) & 0x7FFFFFFF == kafka_murmur2(data) & 0x7FFFFFFF, data
    subject = "0b5e4e52-8f0e-4c43-9a35-0c2a1f4f7d11"
    expected = (kafka_murmur2(subject.encode()) & 0x7FFFFFFF) % 6
    assert subject_partition(f"{subject}/direct_marketing/sms", 6) == subject_partition(subject, 6) == expected
