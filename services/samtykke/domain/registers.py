"""National do-not-contact registers: which sends they cover, snapshots, and freshness.

A register file is a snapshot published on a date; a send may rely on it only for a
freshness window after that date (NIX: two months). Snapshots hold keyed hashes of
normalised phone numbers, never the numbers themselves.

A register file is read line by line into keyed hashes (`RegisterFileReading`); a suspicious
snapshot — undecodable, empty, mostly invalid, or dropping much of the list in use — is
refused by rule (`refusals`) unless forced. An accepted snapshot is shared with every replica
as records on a compacted topic (`SnapshotHead` and its chunks, keyed so that compaction
keeps the current snapshot of each register and a superseded one can be tombstoned), and
folded back together by `SnapshotAssembly`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Set
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import islice
from typing import TypeVar

from .identifiers import InvalidIdentifier, normalise_phone
from .model import Channel, Country

T = TypeVar("T")


class Register(StrEnum):
    NIX = "NIX"  # NIX-Telefon, Sweden
    ROBINSON = "ROBINSON"  # Robinsonlisten, Denmark
    RESERVASJON = "RESERVASJON"  # Reservasjonsregisteret, Norway


class Standing(StrEnum):
    LISTED = "listed"
    CLEAR = "clear"
    STALE = "stale"  # no snapshot, or one past its freshness window: we cannot tell


# Which subjects (by country) and which marketing channels each register covers.
REGISTER_SCOPE: dict[Register, tuple[Country, frozenset[Channel]]] = {
    Register.NIX: (Country.SE, frozenset({Channel.PHONE})),
    Register.ROBINSON: (Country.DK, frozenset({Channel.PHONE, Channel.POST})),
    Register.RESERVASJON: (Country.NO, frozenset({Channel.PHONE, Channel.POST})),
}
REGISTER_COUNTRY: dict[Register, Country] = {r: scope[0] for r, scope in REGISTER_SCOPE.items()}

_COVERING: dict[tuple[str, str], tuple[Register, ...]] = {}
for _register, (_country, _channels) in REGISTER_SCOPE.items():
    for _channel in _channels:
        _COVERING[(_country.value, _channel.value)] = (*_COVERING.get((_country.value, _channel.value), ()), _register)


def registers_covering(country: str, channel: str | None) -> tuple[Register, ...]:
    """The registers a marketing send to a subject of `country` on `channel` must respect."""
    if channel is None:
        return ()
    return _COVERING.get((country, channel), ())


@dataclass(frozen=True, slots=True)
class RegisterSnapshot:
    register: Register
    published: date
    # read-only once made; a set built chunk by chunk is used as is (freezing a million costs a stall)
    phone_hashes: Set[str]

    def fresh_until(self, freshness_days: int) -> float:
        """Epoch seconds at which this snapshot stops being usable (UTC midnight)."""
        end = datetime.combine(self.published + timedelta(days=freshness_days), time.min, tzinfo=UTC)
        return end.timestamp()


@dataclass(frozen=True, slots=True)
class RegisterEvidence:
    """Which snapshot a decision relied on, and what it said: proof for the send."""

    register: Register
    standing: Standing
    published: date | None
    fresh_until: float | None


@dataclass(slots=True)
class RegisterBook:
    """The snapshot in use per register, with each register's freshness window in days."""

    freshness_days: dict[str, int]
    snapshots: dict[Register, RegisterSnapshot] = field(default_factory=dict)
    # each snapshot's end of freshness, worked out once per snapshot rather than once per check
    _until: dict[Register, tuple[RegisterSnapshot, float]] = field(default_factory=dict, repr=False)

    def install(self, snapshot: RegisterSnapshot) -> RegisterSnapshot | None:
        """Use `snapshot` from now on; returns the one it replaces."""
        previous = self.snapshots.get(snapshot.register)
        self.snapshots[snapshot.register] = snapshot
        return previous

    def withdraw(self, register: Register) -> RegisterSnapshot | None:
        """Use no snapshot of `register` (its decisions turn `stale`); returns the one withdrawn."""
        self._until.pop(register, None)
        return self.snapshots.pop(register, None)

    def copy(self) -> RegisterBook:
        """The book as it is now: a later install or withdrawal does not change the copy."""
        return RegisterBook(self.freshness_days, dict(self.snapshots))

    def fresh_until(self, register: Register) -> float | None:
        snapshot = self.snapshots.get(register)
        if snapshot is None:
            return None
        cached = self._until.get(register)
        if cached is not None and cached[0] is snapshot:
            return cached[1]
        until = snapshot.fresh_until(self.freshness_days.get(register.value, 0))
        self._until[register] = (snapshot, until)
        return until

    def is_fresh(self, register: Register, at: float) -> bool:
        until = self.fresh_until(register)
        return until is not None and at < until

    def evidence(self, register: Register, phone_hash: str | None, at: float) -> RegisterEvidence:
        snapshot = self.snapshots.get(register)
        if phone_hash is None:
            # register files list phone numbers only: a subject without one cannot be listed
            return RegisterEvidence(register, Standing.CLEAR, None, None)
        if snapshot is None:
            return RegisterEvidence(register, Standing.STALE, None, None)
        until = self.fresh_until(register)
        if until is None or at >= until:
            return RegisterEvidence(register, Standing.STALE, snapshot.published, until)
        standing = Standing.LISTED if phone_hash in snapshot.phone_hashes else Standing.CLEAR
        return RegisterEvidence(register, standing, snapshot.published, until)


# -- reading a register file ---------------------------------------------------------------
MAX_INVALID_SHARE = 0.10  # more invalid lines than this: the wrong file, or a broken export
KEPT_INVALID_LINES = 100
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(slots=True)
class RegisterFileReading:
    """A register file read line by line: counts, the first invalid line numbers, and the keyed
    hashes of its valid numbers (the numbers themselves are never kept). `undecodable` names the
    rule when the bytes are not UTF-8 text; reading stops there."""

    register: Register
    hasher: Callable[[str, str], str]
    read: int = 0
    invalid: int = 0
    lines: int = 0
    invalid_lines: list[int] = field(default_factory=list)
    hashes: set[str] = field(default_factory=set)
    undecodable: str | None = None

    def feed(self, raw: bytes) -> bool:
        """Take the next line (with its line break); False once the file proves undecodable."""
        if self.undecodable is not None:
            return False
        self.lines += 1
        if self.lines == 1:
            if raw.startswith(_UTF16_BOMS):
                self.undecodable = "undecodable: UTF-16 text (save the file as UTF-8)"
                return False
            raw = raw.removeprefix(_UTF8_BOM)
        if b"\x00" in raw:
            self.undecodable = f"undecodable: NUL byte on line {self.lines} (UTF-16 or binary, not UTF-8 text)"
            return False
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            self.undecodable = f"undecodable: line {self.lines} is not UTF-8"
            return False
        if not line or line.startswith("#"):
            return True
        self.read += 1
        try:
            self.hashes.add(self.hasher("phone", normalise_phone(line, REGISTER_COUNTRY[self.register])))
        except InvalidIdentifier:
            self.invalid += 1
            if len(self.invalid_lines) < KEPT_INVALID_LINES:
                self.invalid_lines.append(self.lines)
        return True


def refusals(reading: RegisterFileReading, in_use: int, dropped: int, max_drop_share: float) -> list[str]:
    """Why this snapshot must not replace the one in use (`in_use` numbers listed now, `dropped`
    of them missing from the new file); empty when it may. Each rule names the register."""
    name = f"register:{reading.register.value}"
    if reading.undecodable is not None:
        return [f"{name}: {reading.undecodable}"]
    problems = []
    if not reading.hashes:
        problems.append(f"{name}: empty: no valid phone number in the file")
    if reading.read and reading.invalid / reading.read > MAX_INVALID_SHARE:
        problems.append(
            f"{name}: mostly invalid: {reading.invalid} of {reading.read} lines are not phone numbers "
            f"(more than {MAX_INVALID_SHARE:.0%})"
        )
    if in_use and dropped / in_use > max_drop_share:
        problems.append(f"{name}: drops {dropped} of the {in_use} numbers listed now (more than {max_drop_share:.0%})")
    return problems


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last may be shorter), lazily."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def changed_hashes(old: Set[str], new: Set[str]) -> Iterator[str]:
    """Hashes listed by one snapshot and not the other: the only numbers whose standing changes."""
    yield from (h for h in new if h not in old)
    yield from (h for h in old if h not in new)


# -- a snapshot as records on the register topic ---------------------------------------------
CHUNK_SIZE = 2000  # hashes per record: ~140 kB, well under the broker's message size limit


def head_key(register: Register) -> str:
    """Key of the record naming a register's current snapshot (compaction keeps the latest)."""
    return register.value


def chunk_key(register: Register, snapshot_id: str, chunk: int) -> str:
    return f"{register.value}:{snapshot_id}:{chunk}"


def parse_key(key: str) -> tuple[Register, str | None, int | None]:
    """(register, snapshot id, chunk) of a chunk key; (register, None, None) of a head key."""
    parts = key.split(":")
    register = Register(parts[0])
    if len(parts) == 1:
        return register, None, None
    if len(parts) != 3 or not parts[1] or not parts[2].isdigit():
        raise ValueError(f"not a register topic key: {key!r}")
    return register, parts[1], int(parts[2])


@dataclass(frozen=True, slots=True)
class SnapshotHead:
    """A register's current snapshot: which chunks make it up, and what they must add up to."""

    register: Register
    snapshot_id: str
    published: date
    listed: int
    chunks: int
    forced: bool = False

    def chunk_keys(self) -> list[str]:
        return [chunk_key(self.register, self.snapshot_id, i) for i in range(self.chunks)]


class IncompleteSnapshot(ValueError):
    """A head names a snapshot whose chunks did not all arrive, or do not add up: never used."""


@dataclass(slots=True)
class _Pending:
    chunks: set[int] = field(default_factory=set)
    hashes: set[str] = field(default_factory=set)


class SnapshotAssembly:
    """Folds the register topic's records, in topic order, into complete snapshots.

    A publisher writes every chunk before the head that names them, on one partition, so a
    head finds its chunks already here; the set is grown chunk by chunk as they arrive, so a
    head costs nothing to complete. Chunks of a snapshot no head named yet wait (another
    import may be under way); a tombstone drops them.
    """

    def __init__(self) -> None:
        self._pending: dict[tuple[Register, str], _Pending] = {}

    def chunk(self, register: Register, snapshot_id: str, chunk: int, hashes: Iterable[str]) -> None:
        pending = self._pending.setdefault((register, snapshot_id), _Pending())
        pending.chunks.add(chunk)
        pending.hashes.update(hashes)

    def drop(self, register: Register, snapshot_id: str) -> None:
        self._pending.pop((register, snapshot_id), None)

    def complete(self, head: SnapshotHead) -> RegisterSnapshot:
        """The snapshot `head` names, taken out of the pending ones; IncompleteSnapshot if it is not whole."""
        pending = self._pending.pop((head.register, head.snapshot_id), None) or _Pending()
        missing = head.chunks - len(pending.chunks & set(range(head.chunks)))
        if missing or len(pending.hashes) != head.listed:
            raise IncompleteSnapshot(
                f"register:{head.register.value}: snapshot {head.snapshot_id} has {len(pending.hashes)} of "
                f"{head.listed} numbers, {missing} of {head.chunks} chunks missing"
            )
        return RegisterSnapshot(head.register, head.published, pending.hashes)

    def waiting(self) -> int:
        """Snapshots with chunks but no head yet (an import under way, or one abandoned)."""
        return len(self._pending)
