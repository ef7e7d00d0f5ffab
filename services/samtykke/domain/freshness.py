"""End-to-end freshness: how far a reader's view is complete, measured against what was committed.

The consent service's relay publishes watermarks: "every change committed before `through` is on
the topics below these offsets". A reader (a suppression replica, a projector) that has applied
every listed offset is complete through `through`; its age is `now - through`. A stuck relay stops
the watermarks, an unread partition (one added at run time, say) is never reached, and either way
the age grows until the reader says `stale` — Kafka merely being quiet no longer looks fresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TopicPartition = tuple[str, int]
# watermarks kept waiting to be reached (about 10 minutes at one a second): dropping the oldest
# only ever makes a reader look older, never fresher
MAX_PENDING = 600


@dataclass(frozen=True, slots=True)
class Watermark:
    """Every change committed before `through` is on `offsets`' partitions below those offsets.

    `held` names subjects with a change the relay could not publish (a row it moved aside): no
    reader is complete for them, however far it has read.
    """

    through: datetime
    offsets: Mapping[TopicPartition, int]
    held: frozenset[str] = frozenset()
    epoch: int = 0

    def as_record(self, published_at: datetime) -> dict[str, Any]:
        """The Avro record (`Watermark.avsc`); times in epoch milliseconds."""
        return {
            "through": _millis(self.through),
            "offsets": [{"topic": t, "partition": p, "offset": o} for (t, p), o in sorted(self.offsets.items())],
            "held_subjects": sorted(self.held),
            "epoch": self.epoch,
            "published_at": _millis(published_at),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Watermark:
        return cls(
            through=_instant(record["through"]),
            offsets={(o["topic"], int(o["partition"])): int(o["offset"]) for o in record["offsets"]},
            held=frozenset(record.get("held_subjects") or ()),
            epoch=int(record.get("epoch") or 0),
        )

    def reached_by(self, applied: Mapping[TopicPartition, int]) -> bool:
        """`applied` holds, per partition, the next offset the reader will apply (Kafka's position)."""
        return all(applied.get(partition, 0) >= offset for partition, offset in self.offsets.items())


@dataclass(slots=True)
class Completeness:
    """The watermarks a reader has seen but not yet reached, and the newest one it has reached.

    Watermarks arrive in order; a reader usually reaches one a moment after reading it, so the
    pending ones form a short queue pruned from the front as they are reached.
    """

    reached: Watermark | None = None
    pending: list[Watermark] = field(default_factory=list)

    def saw(self, watermark: Watermark) -> None:
        if self.pending and watermark.through <= self.pending[-1].through:
            return  # a replayed or older watermark (a second relay leader's, a restart) adds nothing
        if self.reached is not None and watermark.through <= self.reached.through:
            return
        self.pending.append(watermark)
        if len(self.pending) > MAX_PENDING:
            del self.pending[: len(self.pending) - MAX_PENDING]

    def advance(self, applied: Mapping[TopicPartition, int]) -> Watermark | None:
        """Move `reached` to the newest pending watermark `applied` satisfies; return it."""
        newest = None
        for index, watermark in enumerate(self.pending):
            if watermark.reached_by(applied):
                newest = index
        if newest is not None:
            self.reached = self.pending[newest]
            del self.pending[: newest + 1]
        return self.reached

    @property
    def through(self) -> datetime | None:
        return None if self.reached is None else self.reached.through

    def age_seconds(self, now: datetime) -> float | None:
        """Seconds since the newest commit instant this reader is complete through; None: never."""
        return None if self.reached is None else max(0.0, (now - self.reached.through).total_seconds())

    def holds(self, subject_id: str) -> bool:
        """A change of this subject is held back by the relay: no answer about it can be sure."""
        return subject_id in self.held

    @property
    def held(self) -> frozenset[str]:
        """The subjects the newest watermark seen says are held back."""
        latest = self.pending[-1] if self.pending else self.reached
        return frozenset() if latest is None else latest.held


def is_stale(age_seconds: float | None, max_lag_seconds: float) -> bool:
    """Fail closed: never complete, or complete only through an instant older than the bound."""
    return age_seconds is None or age_seconds > max_lag_seconds


def merge_offsets(parts: Iterable[Mapping[TopicPartition, int]]) -> dict[TopicPartition, int]:
    merged: dict[TopicPartition, int] = {}
    for part in parts:
        for partition, offset in part.items():
            merged[partition] = max(offset, merged.get(partition, 0))
    return merged


def _millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _instant(value: datetime | int) -> datetime:
    # fastavro gives timestamp-millis as aware datetimes; JSON and raw records give milliseconds
    return value if isinstance(value, datetime) else datetime.fromtimestamp(value / 1000, tz=UTC)
