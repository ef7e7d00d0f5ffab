"""Reading a streamed campaign list: CSV as spreadsheet programs write it (byte-order mark, RFC 4180
quoting), NDJSON whose bad lines are named by entry and line, never an unhandled error (pure)."""

from __future__ import annotations

import json

import pytest

from samtykke.suppression.errors import RequestProblems
from samtykke.suppression.stream import EntryReader, Item
from samtykke.suppression.targets import EntryProblem, Target, TargetParser

PARSER = TargetParser(b"key")
SUBJECT = "6f1c0c4e-1b2a-4c3d-8e4f-0123456789ab"


def read(content_type: str, body: str, batch: int = 2) -> list[Item]:
    """Feeds the body's lines in small batches, as chunks of a request arrive."""
    reader = EntryReader(PARSER, content_type)
    lines = body.split("\n")
    items: list[Item] = []
    for start in range(0, len(lines), batch):
        items += reader.read(lines[start : start + batch])
    return items + list(reader.finish())


def problems(items: list[Item]) -> list[tuple[str, str]]:
    return [(p.field, p.rule) for _, p in items if isinstance(p, EntryProblem)]


def targets(items: list[Item]) -> list[Target]:
    return [t for _, t in items if isinstance(t, Target)]


def test_csv_with_a_byte_order_mark_and_quoted_fields() -> None:
    body = '\ufeff"phone"\r\n"+45 12 34 56 78"\n+4512345678\n"+45 12""34"\n'
    items = read("text/csv; charset=utf-8", body.replace("\r", ""))
    assert targets(items)[0] == targets(items)[1] == Target(False, PARSER.keyed("phone", "+4512345678"))
    assert problems(items) == [("entries[2].phone", "line 4: must be E.164: '+' followed by 8 to 15 digits")]


def test_a_quoted_field_may_hold_a_comma_or_a_line_break() -> None:
    items = read("text/csv", f'subject_id\n"{SUBJECT}"\n"a,b"\n"x\ny"\n{SUBJECT}\n', batch=1)
    assert [index for index, _ in items] == [0, 1, 2, 3]
    assert problems(items) == [
        ("entries[1].subject_id", "line 3: must be a subject id (UUID)"),
        ("entries[2].subject_id", "line 4: must be a subject id (UUID)"),
    ]
    assert len(targets(items)) == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('email\n"a@b.dk"x\n', ("entries[0]", "line 2: ',' expected after '\"'")),
        ("email\na@b.dk,c@d.dk\n", ("entries[0]", "line 2: has 2 values; the CSV has one column")),
        ('email\n"a@b.dk\n', ("entries[0]", "line 2: a quoted field is not closed before the end of the body")),
    ],
)
def test_malformed_csv_rows_are_named(body: str, expected: tuple[str, str]) -> None:
    assert problems(read("text/csv", body)) == [expected]


def test_a_csv_header_that_names_no_kind_is_refused_naming_the_line() -> None:
    with pytest.raises(RequestProblems) as refused:
        read("text/csv", "\n\nname,phone\n+4512345678\n")
    assert refused.value.problems == [
        ("header", "line 3: CSV header must be one column, one of subject_id, phone, email")
    ]


def test_ndjson_problems_name_the_entry_and_the_line() -> None:
    body = "\n".join(
        [
            json.dumps({"subject_id": SUBJECT}),
            "",
            '{"email": "a@b.dk",}',
            "[" * 10_000,
            "42",
            json.dumps({"phone": "+4512345678", "email": "a@b.dk"}),
        ]
    )
    assert problems(read("application/x-ndjson", "\ufeff" + body)) == [
        ("entries[1]", "line 3: invalid JSON at column 20: Expecting property name enclosed in double quotes"),
        ("entries[2]", "line 4: JSON nested too deeply"),
        ("entries[3]", "line 5: must be an object with one of subject_id, phone, email"),
        ("entries[4]", "line 6: give exactly one of subject_id, phone, email"),
    ]
