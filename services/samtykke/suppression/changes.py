"""The suppression list's change feed (additions and removals, with a cursor) and the lapse schedule.

The feed lives in this replica's memory and starts when the index has caught up (the full
export is the starting point): a cursor names the replica's epoch and a sequence number. A
cursor from another epoch (another replica, a restart) or one trimmed away is refused, so a
client re-reads the export instead of silently missing changes.
"""

from __future__ import annotations

import heapq
import re
import uuid
from array import array
from dataclasses import dataclass

from samtykke.adapters.problems import ClientProblem
from samtykke.domain.model import SubjectId
from samtykke.domain.suppression import ConsentKey, Reason, key_order

HOUR = 3600.0
# <epoch>.<seq in ASCII digits>: str.isdigit() would let '²' through to int(); a well-formed cursor
# of another epoch is gone (410), not malformed
_CURSOR = re.compile(r"[^.\s]+\.[0-9]{1,19}")


@dataclass(frozen=True, slots=True)
class SuppressionChange:
    seq: int
    at: float
    action: str  # "added" (or reasons changed) | "removed"
    subject_id: SubjectId
    purpose: str
    channel: str | None
    reasons: tuple[Reason, ...]


class CursorGone(LookupError):
    """The cursor is from another epoch or older than the feed keeps: re-read the export."""


class MalformedCursor(ClientProblem):
    """Not a cursor this service hands out (HTTP 422 naming `cursor`)."""

    def __init__(self) -> None:
        super().__init__([("cursor", "must be a cursor from the export or a previous page (<epoch>.<number>)")])


class SuppressionChanges:
    def __init__(self, keep: int = 1_000_000) -> None:
        self.epoch = uuid.uuid4().hex[:12]
        self._keep = keep
        self._log: list[SuppressionChange] = []
        self._first_seq = 1  # seq of self._log[0]
        self._next_seq = 1

    @property
    def cursor(self) -> str:
        """A cursor that reads every change recorded from now on."""
        return f"{self.epoch}.{self._next_seq - 1}"

    def record(
        self,
        subject_id: SubjectId,
        before: dict[ConsentKey, tuple[Reason, ...]],
        after: dict[ConsentKey, tuple[Reason, ...]],
        at: float,
    ) -> int:
        written = 0
        # in (purpose, channel) order: the same net change lists the same way however it was diffed
        changed = sorted((k for k in before.keys() | after.keys() if before.get(k) != after.get(k)), key=key_order)
        for key in changed:
            new = after.get(key)
            action = "removed" if new is None else "added"
            self._log.append(SuppressionChange(self._next_seq, at, action, subject_id, key[0], key[1], new or ()))
            self._next_seq += 1
            written += 1
        if len(self._log) > self._keep:
            drop = len(self._log) - self._keep // 2
            del self._log[:drop]
            self._first_seq += drop
        return written

    def since(self, cursor: str | None, limit: int) -> tuple[list[SuppressionChange], str]:
        """Changes after `cursor` (from the start of the epoch when None), and the next cursor."""
        after = self._parse(cursor)
        if after + 1 < self._first_seq:
            raise CursorGone("the cursor is older than the changes this replica keeps")
        start = after + 1 - self._first_seq
        page = self._log[start : start + limit]
        last = page[-1].seq if page else after
        return page, f"{self.epoch}.{last}"

    def _parse(self, cursor: str | None) -> int:
        if cursor is None:
            return self._first_seq - 1
        if not _CURSOR.fullmatch(cursor):
            raise MalformedCursor()
        epoch, _, seq = cursor.partition(".")
        if epoch != self.epoch or int(seq) >= self._next_seq:
            raise CursorGone("the cursor is from another replica or start-up, or from the future")
        return int(seq)


class LapseSchedule:
    """When grants lapse, so the feed can announce a lapse that no event announces.

    Grants are bucketed by hour (per grant a slot in an array of lapse times and one in a list of
    subject ids, not a heap entry nor a tuple: millions of grants must stay cheap); only the current
    hour is kept in a heap. Superseded grants stay in the buckets: the index re-evaluates the
    subject and records nothing if nothing changed.
    """

    def __init__(self) -> None:
        self._buckets: dict[int, tuple[array[float], list[SubjectId]]] = {}
        self._due: list[tuple[float, SubjectId]] = []
        self._hour: int | None = None

    def add(self, subject_id: SubjectId, valid_until: float) -> None:
        hour = int(valid_until // HOUR)
        if self._hour is not None and hour <= self._hour:
            heapq.heappush(self._due, (valid_until, subject_id))
        else:
            bucket = self._buckets.get(hour)
            if bucket is None:
                bucket = self._buckets[hour] = (array("d"), [])
            bucket[0].append(valid_until)
            bucket[1].append(subject_id)

    def pop_due(self, now: float) -> list[tuple[float, SubjectId]]:
        """(lapse time, subject id) of every grant that lapsed by `now` since the last call."""
        hour = int(now // HOUR)
        if self._hour is None or hour > self._hour:
            for past in [h for h in self._buckets if h <= hour]:
                for item in zip(*self._buckets.pop(past), strict=True):
                    heapq.heappush(self._due, item)
            self._hour = hour
        due = []
        while self._due and self._due[0][0] <= now:
            due.append(heapq.heappop(self._due))
        return due
