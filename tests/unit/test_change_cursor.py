"""The change feed's cursor: a malformed one is the client's mistake (422 naming `cursor`), a
well-formed one from another start-up is gone (410) (pure)."""

from __future__ import annotations

import pytest

from samtykke.suppression.changes import CursorGone, MalformedCursor, SuppressionChanges


@pytest.mark.parametrize("tail", ["²", "١", "", "-1", "1.2", " 1", "1e3", "9" * 20])
def test_a_malformed_cursor_names_the_cursor(tail: str) -> None:
    changes = SuppressionChanges()
    with pytest.raises(MalformedCursor) as refused:
        changes.since(f"{changes.epoch}.{tail}", 10)
    assert refused.value.status == 422 and refused.value.problems[0][0] == "cursor"


@pytest.mark.parametrize("cursor", ["", ".", "nodot", "²²²"])
def test_a_cursor_without_its_parts_is_malformed(cursor: str) -> None:
    with pytest.raises(MalformedCursor):
        SuppressionChanges().since(cursor, 10)


def test_a_well_formed_cursor_of_another_epoch_is_gone() -> None:
    with pytest.raises(CursorGone):
        SuppressionChanges().since("other-epoch.0", 10)


def test_the_feed_cursor_reads_from_now_on() -> None:
    changes = SuppressionChanges()
    assert changes.since(changes.cursor, 10) == ([], changes.cursor)
