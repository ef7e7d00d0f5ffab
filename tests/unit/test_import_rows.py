"""Bulk import, the rows: reading CSV and NDJSON, and each row checked with the API's rules; a
rejection names the row, the column and the rule, never the value."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from samtykke.consent.imports import (
    COLUMNS,
    IMPORT_NAMESPACE,
    FileRefused,
    ImportFormat,
    ImportRow,
    Rejection,
    RowValidator,
    event_id,
    read_csv,
    read_ndjson,
)
from samtykke.domain.catalog import load_catalog
from samtykke.domain.model import Channel, ConsentAction

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CATALOG = load_catalog()
VALIDATOR = RowValidator(CATALOG, NOW)
GOOD = {
    "subject_ref": "CRM-1",
    "kind": "consumer",
    "country": "DK",
    "phone": "12 34 56 78",
    "email": "Ann@Example.DK",
    "purpose": "direct_marketing",
    "channel": "sms",
    "status": "granted",
    "occurred_at": "2019-05-01T10:00:00+02:00",
}


def rows(data: bytes, fmt: ImportFormat = ImportFormat.CSV) -> list[tuple[int, Any]]:
    reader = read_csv if fmt is ImportFormat.CSV else read_ndjson
    return list(reader(io.BytesIO(data)))


def test_csv_rows_are_numbered_by_the_line_they_start_on() -> None:
    data = (
        "\ufeffsubject_ref,kind,country,purpose,status,occurred_at,evidence\r\n"
        'A,consumer,DK,direct_marketing,granted,2020-01-01T00:00:00Z,"two\r\nlines"\r\n'
        "\r\n"
        "B,consumer,SE,personalised_offers,withdrawn,2020-01-01T00:00:00Z,\r\n"
        "C,consumer\r\n"
    ).encode()
    found = rows(data)
    assert [n for n, _ in found] == [2, 5, 6]
    assert found[0][1]["evidence"] == "two\r\nlines" and found[0][1]["subject_ref"] == "A"
    assert "evidence" not in found[1][1]  # an empty cell is a missing value
    assert found[2][1] == Rejection(6, "row", "has 2 fields, the header has 7")


def test_a_row_that_is_not_utf8_is_rejected_and_the_next_is_read() -> None:
    data = b"subject_ref,kind,country,purpose,status,occurred_at\nA\xff,consumer,DK,billing,granted,x\nB,c,DK,p,s,o\n"
    found = rows(data)
    assert found[0][1] == Rejection(2, "row", "is not valid UTF-8")
    assert found[1][1]["subject_ref"] == "B"


@pytest.mark.parametrize(
    ("header", "rule"),
    [
        ("subject_ref,kind,country,purpose,status,occurred_at,shoe_size", "unknown column 'shoe_size'"),
        ("subject_ref,kind,country,purpose,status", "missing required column 'occurred_at'"),
        ("subject_ref,kind,kind,country,purpose,status,occurred_at", "a column is named twice"),
    ],
)
def test_a_header_that_cannot_be_read_refuses_the_file(header: str, rule: str) -> None:
    with pytest.raises(FileRefused) as refused:
        rows(f"{header}\n".encode())
    assert refused.value.field == "header" and rule in refused.value.rule


def test_ndjson_lines_are_objects_and_null_is_missing() -> None:
    data = b'{"subject_ref": "A", "channel": null}\n\n[1]\n{oops\n{"subject_ref": "B"}\n'
    found = rows(data, ImportFormat.NDJSON)
    assert found == [
        (1, {"subject_ref": "A"}),
        (3, Rejection(3, "row", "is not a JSON object")),
        (4, Rejection(4, "row", "is not a JSON object")),
        (5, {"subject_ref": "B"}),
    ]


def test_a_good_row_is_normalised_like_the_api_does() -> None:
    row = VALIDATOR.validate(2, GOOD)
    assert isinstance(row, ImportRow)
    assert row.identifiers == {"phone": "+4512345678", "email": "ann@example.dk"}
    assert row.decision.action is ConsentAction.GRANT and row.decision.channel is Channel.SMS
    assert row.source == "import" and row.actor_kind == "system"  # the defaults of an import


@pytest.mark.parametrize(
    ("cells", "field", "rule"),
    [
        ({"purpose": "+4512345678"}, "purpose", "unknown purpose: not in the catalog"),
        ({"purpose": "billing", "channel": None}, "purpose", "'billing' rests on contract, not consent"),
        ({"channel": "fax"}, "channel", "Input should be 'sms', 'email', 'phone', 'post' or 'push'"),
        ({"purpose": "third_party_marketing", "channel": "push"}, "channel", "'push' is not a channel of"),
        ({"purpose": "personalised_offers"}, "channel", "'personalised_offers' has no channels: omit channel"),
        ({"status": "expired"}, "status", "Input should be 'granted', 'withdrawn' or 'revoked'"),
        ({"status": "revoked", "actor_kind": "subject"}, "status", "a subject withdraws; revoke is for others"),
        ({"occurred_at": "2024-02-30T00:00:00Z"}, "occurred_at", "Input should be a valid datetime"),
        ({"occurred_at": "2024-02-01T00:00:00"}, "occurred_at", "Input should have timezone info"),
        ({"occurred_at": "2027-01-01T00:00:00Z"}, "occurred_at", "must not be in the future"),
        ({"occurred_at": "1999-01-01T00:00:00Z"}, "occurred_at", "Input should be greater than or equal to"),
        ({"subject_ref": None}, "subject_ref", "Field required"),
        ({"phone": "12"}, "phone", "must be E.164: '+' followed by 8 to 15 digits"),
        ({"email": "ann.example.dk"}, "email", "must be an e-mail address like name@example.dk"),
        ({"national_id": "3102851234"}, "national_id", "a CPR number starts with a valid date DDMMYY"),
        ({"kind": "employee"}, "account_id", "a employee belongs to a business account"),
        ({"kind": "business", "account_id": "A-1"}, "purpose", "'direct_marketing' does not apply to a business"),
        ({"shoe_size": "44"}, "shoe_size", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_row_names_its_field_and_rule_never_its_value(cells: dict[str, Any], field: str, rule: str) -> None:
    values = {k: v for k, v in (GOOD | cells).items() if v is not None}
    found = VALIDATOR.validate(7, values)
    assert isinstance(found, list), found
    assert [r.row for r in found] == [7] * len(found)
    assert any(r.field == field and r.rule.startswith(rule) for r in found), found
    personal = [values.get(name) for name in ("subject_ref", "phone", "email", "national_id", "purpose")]
    for rejection in found:
        assert not any(value and value in rejection.rule for value in personal if value not in CATALOG.purposes)


def test_the_event_id_is_the_decision_whatever_zone_its_instant_was_written_in() -> None:
    at = datetime(2020, 1, 1, 12, tzinfo=UTC)
    local = datetime.fromisoformat("2020-01-01T13:00:00+01:00")
    assert event_id("A", "direct_marketing", Channel.SMS, at, "granted") == event_id(
        "A", "direct_marketing", Channel.SMS, local, "granted"
    )
    assert event_id("A", "direct_marketing", Channel.SMS, at, "granted") != event_id(
        "A", "direct_marketing", Channel.SMS, at, "withdrawn"
    )
    name = "\x1f".join(("A", "direct_marketing", "sms", at.isoformat(), "granted"))
    assert event_id("A", "direct_marketing", Channel.SMS, at, "granted") == str(uuid.uuid5(IMPORT_NAMESPACE, name))


def test_every_documented_column_is_a_field_of_the_row() -> None:
    assert COLUMNS[:3] == ("subject_ref", "kind", "country")
    assert {"phone", "email", "national_id", "evidence", "notice_version", "source", "actor_kind"} <= set(COLUMNS)
