"""The end-to-end freshness rule: complete through T only once every listed offset is applied."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import fastavro
from hypothesis import given
from hypothesis import strategies as st

from samtykke.adapters.settings import PACKAGED_SCHEMAS
from samtykke.domain.freshness import Completeness, Watermark, is_stale

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHANGES = "consent.changes"


def mark(seconds: int, offsets: dict[int, int], held: frozenset[str] = frozenset()) -> Watermark:
    return Watermark(T0 + timedelta(seconds=seconds), {(CHANGES, p): o for p, o in offsets.items()}, held)


def test_a_reader_is_complete_only_through_a_watermark_it_has_reached() -> None:
    view = Completeness()
    view.saw(mark(1, {0: 5, 1: 3}))
    assert view.advance({(CHANGES, 0): 5, (CHANGES, 1): 2}) is None
    assert view.age_seconds(T0 + timedelta(seconds=10)) is None
    assert view.advance({(CHANGES, 0): 5, (CHANGES, 1): 3}) == mark(1, {0: 5, 1: 3})
    assert view.age_seconds(T0 + timedelta(seconds=10)) == 9


def test_a_partition_the_reader_does_not_read_keeps_it_incomplete() -> None:
    # a partition added at run time appears in the watermark before any reader assigned it
    view = Completeness()
    view.saw(mark(1, {0: 5, 1: 3, 6: 1}))
    assert view.advance({(CHANGES, 0): 9, (CHANGES, 1): 9}) is None
    assert is_stale(view.age_seconds(T0 + timedelta(seconds=2)), max_lag_seconds=5)


def test_a_stuck_relay_turns_the_reader_stale_within_the_bound() -> None:
    view = Completeness()
    view.saw(mark(1, {0: 5}))
    view.advance({(CHANGES, 0): 5})
    assert not is_stale(view.age_seconds(T0 + timedelta(seconds=6)), max_lag_seconds=5)
    # no watermark since: Kafka is quiet, and that no longer looks fresh
    assert is_stale(view.age_seconds(T0 + timedelta(seconds=6.5)), max_lag_seconds=5)


def test_older_or_repeated_watermarks_add_nothing() -> None:
    view = Completeness()
    view.saw(mark(2, {0: 5}))
    view.saw(mark(1, {0: 9}))
    view.saw(mark(2, {0: 9}))
    assert view.pending == [mark(2, {0: 5})]


def test_a_held_subject_is_never_complete() -> None:
    view = Completeness()
    view.saw(mark(1, {0: 5}, held=frozenset({"s-1"})))
    view.advance({(CHANGES, 0): 5})
    assert view.holds("s-1") and not view.holds("s-2")


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=20), st.integers(0, 60))
def test_reached_is_the_newest_watermark_the_positions_satisfy(offsets: list[tuple[int, int]], position: int) -> None:
    # watermarks with ever larger offsets, as a relay publishes them
    cumulative, marks = (0, 0), []
    for second, (a, b) in enumerate(offsets, start=1):
        cumulative = (cumulative[0] + a, cumulative[1] + b)
        marks.append(mark(second, {0: cumulative[0], 1: cumulative[1]}))
    view = Completeness()
    for watermark in marks:
        view.saw(watermark)
    applied = {(CHANGES, 0): position, (CHANGES, 1): position}
    expected = [m for m in marks if m.reached_by(applied)]
    assert view.advance(applied) == (expected[-1] if expected else None)


def test_a_watermark_survives_its_avro_record() -> None:
    schema = fastavro.parse_schema(json.loads((PACKAGED_SCHEMAS / "Watermark.avsc").read_text()))
    original = Watermark(T0, {(CHANGES, 0): 5, ("consent.subjects", 3): 1}, frozenset({"s-1"}), epoch=4)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, original.as_record(T0 + timedelta(seconds=1)))
    buffer.seek(0)
    assert Watermark.from_record(fastavro.schemaless_reader(buffer, schema)) == original
