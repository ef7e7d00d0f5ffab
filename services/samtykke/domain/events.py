"""The events on the contract topics, as plain values, and their Avro record shape.

`as_record()` gives the dict the Avro schema expects (timestamps in epoch milliseconds,
which is also what the outbox stores as JSON); `from_record()` reads a decoded record back,
accepting datetimes (fastavro's logical types) or milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def to_millis(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def from_millis(value: datetime | int | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(value / 1000, tz=UTC)


_CHANGE_TIMES = ("occurred_at", "recorded_at", "valid_until", "last_used_at")


# not frozen: a frozen dataclass sets each field through object.__setattr__, five times the cost of
# constructing it, and a replay decodes millions of events. Treat events as values all the same.
@dataclass(slots=True)
class ConsentChanged:
    event_id: str
    subject_id: str
    subject_kind: str
    account_id: str | None
    country: str
    purpose: str
    channel: str | None
    status: str
    previous_status: str | None
    version: int
    occurred_at: datetime
    recorded_at: datetime
    valid_until: datetime | None
    source: str
    actor_kind: str
    notice_version: str | None
    evidence_ref: str | None
    correlation_id: str | None
    last_used_at: datetime | None = None
    evidence_on_file: bool = False

    def as_record(self) -> dict[str, Any]:
        """The record on the topic (and in the outbox): the evidence reference is personal free text
        and stays in the ledger, so the record says only whether there is evidence."""
        # every field is a str, int, bool, datetime or None: a shallow dict is what `asdict` would
        # build, at a tenth of its cost (it deep-copies each value), which a bulk import pays per row
        record = {name: getattr(self, name) for name in _CHANGE_FIELDS}
        for name in _CHANGE_TIMES:
            record[name] = to_millis(record[name])
        record["evidence_on_file"] = self.evidence_on_file or self.evidence_ref is not None
        record["evidence_ref"] = None
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ConsentChanged:
        values: dict[str, Any] = {name: record.get(name) for name in cls.__dataclass_fields__}
        for name in _CHANGE_TIMES:
            values[name] = from_millis(values[name])
        values["event_id"] = str(values["event_id"])
        # records written before v4 carried the reference itself
        values["evidence_on_file"] = bool(values["evidence_on_file"]) or values["evidence_ref"] is not None
        values["evidence_ref"] = None
        return cls(**values)


_CHANGE_FIELDS = tuple(ConsentChanged.__dataclass_fields__)


@dataclass(slots=True)  # not frozen, as ConsentChanged
class SubjectChanged:
    event_id: str
    subject_id: str
    kind: str
    country: str
    account_id: str | None
    phone_hash: str | None
    email_hash: str | None
    national_id_hash: str | None
    erased: bool
    version: int
    occurred_at: datetime
    phone_since: datetime | None = None  # None: held since before v2 recorded it
    email_since: datetime | None = None
    released: tuple[ReleasedIdentifier, ...] = ()

    def as_record(self) -> dict[str, Any]:
        record = {name: getattr(self, name) for name in _SUBJECT_FIELDS}  # shallow: see ConsentChanged
        for name in _SUBJECT_TIMES:
            record[name] = to_millis(record[name])
        record["released"] = [r.as_record() for r in self.released]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SubjectChanged:
        values: dict[str, Any] = {name: record.get(name) for name in cls.__dataclass_fields__}
        for name in _SUBJECT_TIMES:
            values[name] = from_millis(values[name])
        values["event_id"] = str(values["event_id"])
        # records written before v2 have no holdings to tell
        values["released"] = tuple(ReleasedIdentifier.from_record(r) for r in values["released"] or ())
        return cls(**values)


_SUBJECT_TIMES = ("occurred_at", "phone_since", "email_since")


@dataclass(frozen=True, slots=True)
class ReleasedIdentifier:
    """A phone or e-mail a subject held from `since` until `until`, by its keyed hash only."""

    kind: str  # phone | email
    hash: str
    since: datetime
    until: datetime
    reason: str | None

    def as_record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "hash": self.hash,
            "since": to_millis(self.since),
            "until": to_millis(self.until),
            "reason": self.reason,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ReleasedIdentifier:
        since, until = from_millis(record["since"]), from_millis(record["until"])
        if since is None or until is None:
            raise ValueError("a released identifier has both since and until")
        return cls(record["kind"], record["hash"], since, until, record.get("reason"))


_SUBJECT_FIELDS = tuple(SubjectChanged.__dataclass_fields__)
