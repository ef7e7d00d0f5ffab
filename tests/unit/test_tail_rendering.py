"""How `samtykke tail` renders records and reads its options (pure: no broker, no registry)."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from samtykke.tail import header_object, iso, jsonable, parse_since

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_since_takes_a_duration_back_from_now_or_an_iso_time() -> None:
    assert parse_since("10m", NOW) == NOW - timedelta(minutes=10)
    assert parse_since("90s", NOW) == NOW - timedelta(seconds=90)
    assert parse_since("1.5h", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("2d", NOW) == NOW - timedelta(days=2)
    assert parse_since("2026-05-01T08:00:00+02:00") == datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
    assert parse_since("2026-05-01T08:00:00") == datetime(2026, 5, 1, 8, 0, tzinfo=UTC)  # no zone: UTC
    with pytest.raises(argparse.ArgumentTypeError, match="duration like 10m"):
        parse_since("yesterday")


def test_times_are_iso_8601_in_utc_with_the_precision_they_have() -> None:
    assert (
        iso(datetime(2026, 1, 2, 3, 4, 5, 250_000, tzinfo=timezone(timedelta(hours=1)))) == "2026-01-02T02:04:05.250Z"
    )
    assert iso(datetime(2026, 1, 2, 3, 4, 5, 250_007, tzinfo=UTC)) == "2026-01-02T03:04:05.250007Z"


def test_decoded_values_become_json() -> None:
    event = uuid.uuid4()
    value = {"id": event, "at": NOW, "day": date(2026, 6, 1), "amount": Decimal("1.50"), "raw": b"\x00\x01", "n": [1]}
    assert jsonable(value) == {
        "id": str(event),
        "at": "2026-06-01T12:00:00.000Z",
        "day": "2026-06-01",
        "amount": "1.50",
        "raw": {"base64": "AAE="},
        "n": [1],
    }


def test_headers_are_text_where_they_can_be_and_a_repeated_name_keeps_every_value() -> None:
    headers = [("ce_id", b"abc"), ("bin", b"\xff"), ("x", b"1"), ("x", b"2"), ("x", None)]
    assert header_object(headers) == {"ce_id": "abc", "bin": {"base64": "/w=="}, "x": ["1", "2", None]}
