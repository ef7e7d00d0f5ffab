"""The suppression gate, the only way into the index: decisions by subject id or keyed identifier,
the suppression list and its change feed, register snapshots, and failing closed when stale
(pure: an in-memory index fed events by hand, no sockets)."""

from __future__ import annotations

import time
import uuid
from collections import Counter as Tally
from datetime import UTC, date, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from samtykke.domain.catalog import load_catalog
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.identifiers import identifier_hash
from samtykke.domain.model import SubjectId
from samtykke.domain.registers import Register, RegisterBook, RegisterSnapshot
from samtykke.domain.suppression import Reason, SubjectState, SuppressionRules, suppressed_entries
from samtykke.suppression.gate import IndexStale, SuppressionGate
from samtykke.suppression.index import SuppressionIndex
from samtykke.suppression.metrics import SuppressionMetrics
from samtykke.suppression.targets import TargetParser

KEY = b"unit-test-identifier-key"
PARSER = TargetParser(KEY)
NOW = datetime.now(UTC)


class Feed:
    """What the gate asks of the feed: how old the index is, and whether it has caught up."""

    def __init__(self) -> None:
        self.age, self.caught_up = 0.0, True


def gate(feed: Feed, refuse: bool = False) -> tuple[SuppressionGate, SuppressionIndex]:
    index = SuppressionIndex(SuppressionRules(load_catalog()), RegisterBook({"ROBINSON": 92}))
    metrics = SuppressionMetrics(CollectorRegistry())
    return SuppressionGate(index, lambda: feed.age, lambda: feed.caught_up, 5.0, refuse, metrics), index


def subject(index: SuppressionIndex, phone: str | None = None) -> str:
    sid = str(uuid.uuid4())
    hashed = identifier_hash(KEY, "phone", phone) if phone else None
    index.apply_subject(SubjectChanged("e", sid, "consumer", "DK", None, hashed, None, None, False, 1, NOW), 0.0)
    return sid


def decide(index: SuppressionIndex, sid: str, status: str, version: int = 1) -> None:
    change = ConsentChanged(
        "e", sid, "consumer", None, "DK", "direct_marketing", "sms", status, None, version, NOW, NOW, None,
        "self_service", "subject", None, None, None,
    )  # fmt: skip
    index.apply_consent(change, time.time())


def test_a_subject_id_and_its_phone_get_the_same_decision_and_holder() -> None:
    g, index = gate(Feed())
    sid = subject(index, "+4512345678")
    decide(index, sid, "granted")
    plan = g.plan(g.purpose("direct_marketing"), "sms")  # type: ignore[arg-type]
    snap = g.snapshot(None)
    by_id = g.decide(PARSER.parse("subject_id", sid), plan, snap)
    by_phone = g.decide(PARSER.parse("phone", "+45 12 34 56 78"), plan, snap)
    assert by_id[0].allowed and by_phone[0].allowed and by_id[1] == by_phone[1] == (sid,)
    unknown = g.decide(PARSER.parse("subject_id", str(uuid.uuid4())), plan, snap)
    assert unknown[0].reasons == (Reason.UNKNOWN_SUBJECT,) and unknown[1] == ()
    tally: Tally[tuple[Reason, ...]] = Tally()
    targets = [PARSER.parse("subject_id", sid), PARSER.parse("phone", "+4512345678")]
    assert [v.allowed for v, _ in g.decide_many(targets, plan, snap, tally)] == [True, True]
    assert g.subject_count() == 1 and g.purpose("no-such-purpose") is None


def test_a_stale_index_blocks_every_decision_or_refuses() -> None:
    feed = Feed()
    g, index = gate(feed)
    sid = subject(index)
    decide(index, sid, "granted")
    plan = g.plan(g.purpose("direct_marketing"), "sms")  # type: ignore[arg-type]
    feed.age = 6.0
    verdict, _ = g.decide(PARSER.parse("subject_id", sid), plan, g.snapshot(None))
    assert not verdict.allowed and verdict.reasons[0] is Reason.STALE
    refusing, _ = gate(feed, refuse=True)
    with pytest.raises(IndexStale):
        refusing.snapshot(None)


def test_a_subject_held_back_by_the_relay_is_stale_by_id_and_by_phone_while_others_are_not() -> None:
    held: set[str] = set()
    index = SuppressionIndex(SuppressionRules(load_catalog()), RegisterBook({"ROBINSON": 92}))
    metrics = SuppressionMetrics(CollectorRegistry())
    g = SuppressionGate(index, lambda: 0.0, lambda: True, 5.0, False, metrics, held=lambda: frozenset(held))
    sid, other = subject(index, "+4512121212"), subject(index)
    for s in (sid, other):
        decide(index, s, "granted")
    plan = g.plan(g.purpose("direct_marketing"), "sms")  # type: ignore[arg-type]
    held.add(sid)
    snap = g.snapshot(None)
    targets = [PARSER.parse("subject_id", sid), PARSER.parse("phone", "+4512121212"), PARSER.parse("subject_id", other)]
    assert [g.decide(t, plan, snap)[0].reasons for t in targets] == [(Reason.STALE,), (Reason.STALE,), ()]
    tally: Tally[tuple[Reason, ...]] = Tally()
    assert [v.allowed for v, _ in g.decide_many(targets, plan, snap, tally)] == [False, False, True]
    held.clear()
    assert g.decide(targets[0], plan, g.snapshot(None))[0].allowed


def test_the_freshness_gauges_follow_the_feed() -> None:
    metrics = SuppressionMetrics(CollectorRegistry())
    metrics.watch_completeness(lambda: NOW, lambda: frozenset({"a", "b"}))
    assert metrics.registry.get_sample_value("samtykke_suppression_complete_through_seconds") == NOW.timestamp()
    assert metrics.registry.get_sample_value("samtykke_suppression_held_subjects") == 2.0
    metrics = SuppressionMetrics(CollectorRegistry())
    metrics.watch_completeness(lambda: None, frozenset)
    assert metrics.registry.get_sample_value("samtykke_suppression_complete_through_seconds") == 0.0


def test_the_suppression_list_and_its_feed_are_refused_until_caught_up_and_fresh() -> None:
    feed = Feed()
    g, index = gate(feed)
    sid = subject(index)
    decide(index, sid, "withdrawn")
    with pytest.raises(IndexStale):  # nothing recorded before the replay at start-up caught up
        g.suppression_changes()
    changes = index.start_recording(time.time())
    assert g.suppression_changes() is changes
    listed = dict(g.suppression_list(time.time()))
    assert listed[sid][("direct_marketing", "sms")] == (Reason.WITHDRAWN,)
    decide(index, sid, "granted", version=2)
    page, _ = g.suppression_changes().since(None, 10)
    assert [(c.subject_id, c.action) for c in page] == [(sid, "removed")]
    feed.age = 6.0
    with pytest.raises(IndexStale):  # a list cannot fail closed
        g.suppression_changes()


def test_a_register_snapshot_goes_in_through_the_gate() -> None:
    g, index = gate(Feed())
    subject(index, "+4512345678")
    assert g.register_in_use(Register.ROBINSON, time.time()) is None
    published = date.today() - timedelta(days=1)
    snapshot = RegisterSnapshot(Register.ROBINSON, published, frozenset({identifier_hash(KEY, "phone", "+4512345678")}))
    assert g.install_register(snapshot, time.time()) == 1  # one indexed subject is listed
    in_use = g.register_in_use(Register.ROBINSON, time.time())
    assert in_use is not None and in_use.snapshot is snapshot and in_use.fresh
    assert in_use.fresh_until == snapshot.fresh_until(92)


def test_a_batch_records_each_subjects_net_change_once() -> None:
    _, index = gate(Feed())
    flipped, undone, untouched = subject(index), subject(index), subject(index)
    for sid in (flipped, undone, untouched):
        decide(index, sid, "granted")
    changes = index.start_recording(time.time())
    with index.batch(time.time()):
        decide(index, flipped, "withdrawn", version=2)
        decide(index, flipped, "revoked", version=3)  # two changes, one net change: added, as revoked
        decide(index, undone, "withdrawn", version=2)
        decide(index, undone, "granted", version=3)  # withdrawn and granted again: no net change
        assert changes.since(None, 10)[0] == []  # nothing recorded until the batch ends
    page, _ = changes.since(None, 10)
    assert [(c.subject_id, c.action, c.purpose, c.channel) for c in page] == [
        (flipped, "added", "direct_marketing", "sms")
    ]
    decide(index, untouched, "withdrawn", version=2)  # outside a batch: recorded at once, as before
    page, _ = changes.since(None, 10)
    assert [(c.subject_id, c.action) for c in page] == [(flipped, "added"), (untouched, "added")]


def test_a_grant_lapsed_on_arrival_is_listed_once_not_again_when_its_lapse_comes_due() -> None:
    _, index = gate(Feed())
    sid = subject(index)
    changes = index.start_recording(time.time())
    lapsed = ConsentChanged(
        "e", sid, "consumer", None, "DK", "direct_marketing", "sms", "granted", None, 1,
        NOW - timedelta(days=400), NOW, NOW - timedelta(days=1), "crm_import", "operator", None, None, None,
    )  # fmt: skip
    index.apply_consent(lapsed, time.time())
    index.tick(time.time() + 1)
    page, _ = changes.since(None, 10)
    assert [(c.subject_id, c.action, c.reasons) for c in page] == [(sid, "added", (Reason.EXPIRED,))]


@pytest.mark.parametrize("kind", ["consumer", "employee", "business"])
@pytest.mark.parametrize("country", ["DK", "SE", "NO", "FI"])
@pytest.mark.parametrize("registers", ["fresh", "stale", "none"])
def test_a_subject_without_consents_or_phone_is_suppressed_for_nothing_but_no_consent(
    kind: str, country: str, registers: str
) -> None:
    """The change feed skips evaluating such a subject (every new one): this holds it to the rules."""
    rules = SuppressionRules(load_catalog())
    published = date.today() - timedelta(days=1 if registers == "fresh" else 400)
    snapshots = {} if registers == "none" else {r: RegisterSnapshot(r, published, frozenset()) for r in Register}
    book = RegisterBook({r.value: 92 for r in Register}, snapshots)
    state = SubjectState(SubjectId(str(uuid.uuid4())), kind, country, email_hash="e" * 64)
    at = time.time()
    for plan in rules.marketing_plans[kind]:
        verdict = rules.decide_planned(state, plan, at, book)
        assert verdict.allowed or verdict.reasons == (Reason.NO_CONSENT,), (plan.key, verdict)
    assert suppressed_entries(rules, state, at, book) == {}
