"""What a projector consumes and what it makes of it: raw messages, decoded batches, poison."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from samtykke.adapters.dead_letters import PoisonKind as PoisonKind
from samtykke.domain.consent_keys import ConsentKey
from samtykke.domain.events import ConsentChanged, SubjectChanged

TopicPartition = tuple[str, int]


class RawMessage(NamedTuple):
    """One Kafka record as consumed, before decoding (what a dead letter carries on). A tuple: a
    replay makes millions, and a frozen dataclass costs three times as much to construct."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def position(self) -> TopicPartition:
        return (self.topic, self.partition)


class PoisonMessage(ValueError):
    """A message no retry will fix: it goes to the dead-letter queue and the projector goes on."""

    def __init__(self, kind: PoisonKind, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail[:300]


@dataclass(slots=True)
class Batch:
    """A decoded batch in consumption order, with the last offset consumed per partition."""

    changes: list[ConsentChanged] = field(default_factory=list)
    subjects: list[SubjectChanged] = field(default_factory=list)
    poison: list[tuple[RawMessage, PoisonMessage]] = field(default_factory=list)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    # consents whose tombstone arrived, each with the number of `changes` consumed before it
    removals: list[tuple[int, ConsentKey]] = field(default_factory=list)

    def add_removal(self, key: ConsentKey) -> None:
        self.removals.append((len(self.changes), key))

    def in_order(self) -> list[tuple[Batch, list[ConsentKey]]]:
        """Steps to apply in turn: the changes consumed before a run of tombstones, then those
        tombstones' consents to remove. Every change is applied (the analytics facts count each
        one), and a change consumed after a tombstone of its consent survives it. The subjects go
        with the first step."""
        steps: list[tuple[Batch, list[ConsentKey]]] = []
        start = 0
        for at, key in self.removals:
            if steps and at == start:
                steps[-1][1].append(key)
                continue
            steps.append((Batch(changes=self.changes[start:at], subjects=[] if steps else self.subjects), [key]))
            start = at
        steps.append((Batch(changes=self.changes[start:], subjects=[] if steps else self.subjects), []))
        return steps

    def __len__(self) -> int:
        return len(self.changes) + len(self.subjects) + len(self.poison) + len(self.removals)


@dataclass(frozen=True, slots=True)
class Applied:
    """What a projection actually changed: the version guard lets duplicates and stale events pass
    through without effect, so these can be fewer than the batch."""

    changes: list[ConsentChanged]
    subjects: int
