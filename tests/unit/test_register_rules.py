"""National register snapshots, pure: reading a file, the rules that refuse a suspicious one, the diff
between snapshots, how a snapshot is cut into keyed records and folded back, and applying one to an
in-memory index in slices with the same change-feed entries as recomputing every subject."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from samtykke.domain.catalog import load_catalog
from samtykke.domain.events import SubjectChanged
from samtykke.domain.identifiers import IdentifierHasher
from samtykke.domain.registers import (
    CHUNK_SIZE,
    IncompleteSnapshot,
    Register,
    RegisterBook,
    RegisterFileReading,
    RegisterSnapshot,
    SnapshotAssembly,
    SnapshotHead,
    changed_hashes,
    chunk_key,
    chunked,
    head_key,
    parse_key,
    refusals,
)
from samtykke.domain.suppression import SuppressionRules, suppressed_entries
from samtykke.suppression.index import SuppressionIndex
from samtykke.suppression.register_apply import RegisterApplier

HASH = IdentifierHasher(b"unit-test-identifier-key")
TODAY = datetime.now(UTC).date()


def read(content: bytes, register: Register = Register.NIX) -> RegisterFileReading:
    reading = RegisterFileReading(register, HASH)
    for line in content.splitlines(keepends=True):
        if not reading.feed(line):
            break
    return reading


def rules_of(reading: RegisterFileReading, current: set[str] | None = None, share: float = 0.2) -> list[str]:
    current = current or set()
    return refusals(reading, len(current), len(current - reading.hashes), share)


def test_a_file_is_read_into_keyed_hashes_with_counts_and_a_bom_is_fine() -> None:
    reading = read(b"\xef\xbb\xbf# NIX\n+46701112233\n070-999 88 77\r\n\nnot-a-number\n+46701112233\n")
    assert (reading.read, reading.invalid, reading.invalid_lines) == (4, 1, [5])
    assert reading.hashes == {HASH("phone", "+46701112233"), HASH("phone", "+46709998877")}
    assert all(len(h) == 64 for h in reading.hashes)  # hashes only: no number is kept
    assert rules_of(reading) == ["register:NIX: mostly invalid: 1 of 4 lines are not phone numbers (more than 10%)"]


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (b"", "register:NIX: empty: no valid phone number in the file"),
        (b"# only a comment\n\n", "register:NIX: empty: no valid phone number in the file"),
        ("+46701112233\n".encode("utf-16"), "register:NIX: undecodable: UTF-16 text (save the file as UTF-8)"),
        ("+46701112233\n".encode("utf-16-le"), "register:NIX: undecodable: NUL byte on line 1"),
        (b"+46701112233\n\xff\xd8\xff\xe0binary\n", "register:NIX: undecodable: line 2 is not UTF-8"),
    ],
)
def test_undecodable_and_empty_files_are_refused_naming_the_rule(content: bytes, rule: str) -> None:
    problems = rules_of(read(content))
    assert problems and problems[0].startswith(rule)


def test_a_file_dropping_more_than_the_set_share_of_the_list_is_refused() -> None:
    current = {HASH("phone", f"+4670111{n:04d}") for n in range(10)}
    keeps_eight = read(b"".join(f"+4670111{n:04d}\n".encode() for n in range(8)))
    assert rules_of(keeps_eight, current) == []  # 20 % dropped: at the bound, allowed
    keeps_seven = read(b"".join(f"+4670111{n:04d}\n".encode() for n in range(7)))
    assert rules_of(keeps_seven, current) == ["register:NIX: drops 3 of the 10 numbers listed now (more than 20%)"]
    assert rules_of(keeps_seven, current, share=0.5) == []
    assert rules_of(read(b"+46701110000\n"), None) == []  # the first snapshot drops nothing


def test_the_diff_names_only_hashes_whose_standing_changes() -> None:
    assert sorted(changed_hashes({"a", "b", "c"}, {"b", "c", "d"})) == ["a", "d"]
    assert list(changed_hashes(set(), set())) == []


def test_a_snapshot_is_cut_into_keyed_chunks_and_folded_back() -> None:
    hashes = {f"{n:064x}" for n in range(2 * CHUNK_SIZE + 5)}
    batches = list(chunked(hashes, CHUNK_SIZE))
    assert [len(b) for b in batches] == [CHUNK_SIZE, CHUNK_SIZE, 5]
    head = SnapshotHead(Register.ROBINSON, "s1", TODAY, len(hashes), len(batches))
    assert head_key(Register.ROBINSON) == "ROBINSON" and parse_key("ROBINSON") == (Register.ROBINSON, None, None)
    assert (
        head.chunk_keys()
        == [chunk_key(Register.ROBINSON, "s1", n) for n in range(3)]
        == [
            "ROBINSON:s1:0",
            "ROBINSON:s1:1",
            "ROBINSON:s1:2",
        ]
    )
    assert parse_key("ROBINSON:s1:2") == (Register.ROBINSON, "s1", 2)
    with pytest.raises(ValueError):
        parse_key("ROBINSON:s1")
    assembly = SnapshotAssembly()
    for n, batch in enumerate(batches):
        assembly.chunk(Register.ROBINSON, "s1", n, batch)
    assembly.chunk(Register.ROBINSON, "s2", 0, ["f" * 64])  # another import under way waits
    snapshot = assembly.complete(head)
    assert snapshot.phone_hashes == hashes and snapshot.published == TODAY and assembly.waiting() == 1


def test_a_head_whose_chunks_are_missing_is_never_used() -> None:
    assembly = SnapshotAssembly()
    assembly.chunk(Register.NIX, "s1", 0, ["a" * 64])
    with pytest.raises(IncompleteSnapshot, match="1 of 2 chunks missing"):
        assembly.complete(SnapshotHead(Register.NIX, "s1", TODAY, 1, 2))
    assembly.chunk(Register.NIX, "s2", 0, ["a" * 64])
    assembly.drop(Register.NIX, "s2")  # a tombstone
    with pytest.raises(IncompleteSnapshot):
        assembly.complete(SnapshotHead(Register.NIX, "s2", TODAY, 1, 1))


def test_the_book_works_out_freshness_once_per_snapshot_and_a_withdrawn_register_is_stale() -> None:
    book = RegisterBook({"NIX": 60})
    first = RegisterSnapshot(Register.NIX, TODAY - timedelta(days=59), frozenset())
    book.install(first)
    assert book.fresh_until(Register.NIX) == first.fresh_until(60) and book.is_fresh(Register.NIX, time.time())
    copy = book.copy()
    book.install(RegisterSnapshot(Register.NIX, TODAY - timedelta(days=61), frozenset()))
    assert not book.is_fresh(Register.NIX, time.time()) and copy.is_fresh(Register.NIX, time.time())
    book.withdraw(Register.NIX)
    assert book.fresh_until(Register.NIX) is None and copy.snapshots[Register.NIX] is first


def _index(subjects: int) -> tuple[SuppressionIndex, list[str]]:
    index = SuppressionIndex(SuppressionRules(load_catalog()), RegisterBook({"NIX": 60}))
    ids = []
    for n in range(subjects):
        sid = str(uuid.uuid4())
        phone = HASH("phone", f"+4670{n:07d}")
        at = datetime.now(UTC)
        index.apply_subject(SubjectChanged("e", sid, "consumer", "SE", None, phone, None, None, False, 1, at), 0.0)
        ids.append(sid)
    return index, ids


Listing = dict[tuple[str, str, str | None], tuple[str, ...]]


def listing(index: SuppressionIndex, ids: list[str], at: float, book: RegisterBook) -> Listing:
    """The suppression list as a full recomputation of every subject gives it."""
    return {
        (sid, purpose, channel): tuple(reasons)
        for sid in ids
        for (purpose, channel), reasons in suppressed_entries(index.rules, index.subjects[sid], at, book).items()  # type: ignore[index]
    }


async def test_applying_in_slices_records_what_a_full_recomputation_would() -> None:
    index, ids = _index(300)
    now = time.time()
    start = listing(index, ids, now, RegisterBook({"NIX": 60}))  # no NIX snapshot: phone entries are `stale`
    index.start_recording(now)
    applier = RegisterApplier(index, slice_seconds=0.0)  # yields at every look at the clock
    listed = {HASH("phone", f"+4670{n:07d}") for n in range(0, 300, 3)}
    assert await applier.install(RegisterSnapshot(Register.NIX, TODAY, listed)) == 100
    second = {HASH("phone", f"+4670{n:07d}") for n in range(0, 300, 2)}
    assert await applier.install(RegisterSnapshot(Register.NIX, TODAY, second)) == 150
    assert index.changes is not None
    page, _ = index.changes.since(None, 100_000)
    folded = dict(start)  # the export, then the change feed folded in
    for change in page:
        key = (change.subject_id, change.purpose, change.channel)
        if change.action == "removed":
            folded.pop(key, None)
        else:
            folded[key] = tuple(change.reasons)
    assert folded == listing(index, ids, time.time(), index.registers)
    assert any("register:NIX" in reasons for reasons in folded.values())


async def test_a_withdrawn_register_turns_its_decisions_stale() -> None:
    index, _ = _index(3)
    applier = RegisterApplier(index)
    await applier.install(RegisterSnapshot(Register.NIX, TODAY, {HASH("phone", "+46700000000")}))
    assert index.registers.is_fresh(Register.NIX, time.time())
    await applier.withdraw(Register.NIX)
    assert Register.NIX not in index.registers.snapshots
