"""CloudEvents 1.0 attributes in Kafka's binary content mode, and W3C trace context, for every
record the platform writes: one place builds the headers, every producer sends them.

    ce_specversion  `1.0`
    ce_id           the event's own id where it has one (ConsentChanged, SubjectChanged: `event_id`,
                    so a republished duplicate keeps it and `ce_source` + `ce_id` dedupe it);
                    otherwise a fresh UUID, or one derived from what makes the record unique
    ce_source       who wrote it: `/samtykke/consent-service`, `/samtykke/suppression-service`, or
                    `/samtykke/consumers/<consumer>` for a dead letter
    ce_type         `dk.samtykke.<entity>.<occurrence>.v<major>` (`EventType`); the major version
                    changes only with a break a reader must act on. Avro evolution under
                    FULL_TRANSITIVE compatibility never does: the writer schema is named by the
                    value's registry frame, not by the type
    ce_time         when it happened, RFC 3339 in UTC with milliseconds (`2026-06-01T12:30:05.250Z`)
    content-type    what the value's bytes are (`AVRO_CONFLUENT`); absent on a tombstone (no value)
    traceparent     W3C trace context, version 00: `00-<32 hex trace id>-<16 hex span id>-01`

No attribute carries a personal identifier or a hash of one: there is no `ce_subject`, and the
subject id stays where it already is, in the key and the value. Header values are UTF-8 text.
"""

from __future__ import annotations

import functools
import random
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

SPECVERSION = "ce_specversion"
ID = "ce_id"
SOURCE = "ce_source"
TYPE = "ce_type"
TIME = "ce_time"
CONTENT_TYPE = "content-type"
TRACEPARENT = "traceparent"
HEADERS = (SPECVERSION, ID, SOURCE, TYPE, TIME, CONTENT_TYPE, TRACEPARENT)
SPEC_VERSION = "1.0"
_SPEC_VERSION = SPEC_VERSION.encode()

# the value is the Confluent wire format: magic byte 0, the writer schema's 4-byte big-endian registry
# id, then the Avro binary body (no container file, no schema in the bytes)
AVRO_CONFLUENT = "application/avro; framing=confluent"
OCTET_STREAM = "application/octet-stream"

CONSENT_SERVICE = "/samtykke/consent-service"
SUPPRESSION_SERVICE = "/samtykke/suppression-service"

Headers = list[tuple[str, bytes]]
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_EPOCH = datetime(1970, 1, 1)
# dead letters get ids derived from where they came from, so a re-sent one keeps its id
_DEAD_LETTER_IDS = uuid.UUID("5b0c6f2e-3d1a-4c8e-9a57-2f6d8e1b4c90")


class EventType(StrEnum):
    """`ce_type` of each kind of record, by topic."""

    CONSENT_CHANGED = "dk.samtykke.consent.changed.v1"  # consent.changes
    SUBJECT_CHANGED = "dk.samtykke.subject.changed.v1"  # consent.subjects
    WATERMARK = "dk.samtykke.consent.watermark.v1"  # consent.watermarks
    REGISTER_SNAPSHOT = "dk.samtykke.register.snapshot.v1"  # consent.registers: a snapshot's head
    REGISTER_CHUNK = "dk.samtykke.register.chunk.v1"  # consent.registers: one chunk of its hashes
    REGISTER_CHUNK_REMOVED = "dk.samtykke.register.chunk.removed.v1"  # consent.registers: a tombstone
    DEAD_LETTER = "dk.samtykke.dead_letter.v1"  # <consumer>.dlq


# the outbox's schema names (and the watermark's) as event types
TYPE_OF_SCHEMA = {
    "ConsentChanged": EventType.CONSENT_CHANGED,
    "SubjectChanged": EventType.SUBJECT_CHANGED,
    "Watermark": EventType.WATERMARK,
}


# what each header says, for the AsyncAPI document and docs/topics.md
DESCRIPTIONS = {
    SPECVERSION: "CloudEvents spec version, always `1.0` (binary content mode: attributes are headers)",
    ID: "the event id: ConsentChanged/SubjectChanged carry it as `event_id` too (a republished copy keeps "
    "it: dedupe on ce_source + ce_id); other records get a fresh UUID",
    SOURCE: "who wrote the record: `/samtykke/consent-service`, `/samtykke/suppression-service` or "
    "`/samtykke/consumers/<consumer>` (a dead letter)",
    TYPE: "`dk.samtykke.<entity>.<occurrence>.v<major>`; the major version changes only with a break a reader "
    "must act on, never with Avro evolution under FULL_TRANSITIVE compatibility",
    TIME: "when it happened, RFC 3339 in UTC with milliseconds: a change's `occurred_at`, otherwise when the "
    "record was written",
    CONTENT_TYPE: f"`{AVRO_CONFLUENT}`: magic byte 0, the writer schema's 4-byte big-endian registry id, the "
    f"Avro binary body; `{OCTET_STREAM}` on a dead letter (the bytes as consumed); absent on a tombstone",
    TRACEPARENT: "W3C trace context `00-<trace id>-<span id>-01`: a change's trace id is its event id's 32 hex "
    "digits, a dead letter continues the consumed record's trace, other records start a trace",
}


def consumer_source(consumer: str) -> str:
    return f"/samtykke/consumers/{consumer}"


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A W3C `traceparent` (version 00): the trace, the span that wrote the record, the flags."""

    trace_id: str
    span_id: str
    flags: str = "01"

    @classmethod
    def parse(cls, text: str | bytes | None) -> TraceParent | None:
        """The trace context of a header value, or None when it is absent or not valid (all-zero ids
        are invalid)."""
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        found = _TRACEPARENT.fullmatch(text.strip()) if text else None
        if found is None or set(found[1]) == {"0"} or set(found[2]) == {"0"}:
            return None
        return cls(found[1], found[2], found[3])

    @classmethod
    def start(cls, trace_id: str | None = None) -> TraceParent:
        """A new trace (or the given 32-hex trace id), sampled, with a fresh span."""
        return cls(trace_id or secrets.token_hex(16), _span_id())

    def child(self) -> TraceParent:
        """The next hop in the same trace: a fresh span id, the same trace and flags."""
        return TraceParent(self.trace_id, _span_id(), self.flags)

    def __str__(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def _span_id() -> str:
    # unique, not secret: the process's PRNG, not a system call per record as `secrets` makes
    while not (span := random.getrandbits(64)):
        pass
    return f"{span:016x}"


def rfc3339(at: datetime | int) -> str:
    """UTC with milliseconds and `Z`; a naive datetime is taken as UTC, an int is epoch milliseconds
    (as the events carry their instants)."""
    if isinstance(at, int):
        seconds, millis = divmod(at, 1000)
        return f"{_utc_second(seconds)}.{millis:03d}Z"
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@functools.lru_cache(maxsize=1024)
def _utc_second(seconds: int) -> str:
    # the relay stamps every record: changes arrive with instants of the same few seconds
    return (_EPOCH + timedelta(seconds=seconds)).isoformat()


@functools.lru_cache(maxsize=256)
def _text(value: str) -> bytes:
    """A header value that repeats (spec version, source, type, content type), encoded once."""
    return value.encode()


def cloud_event_headers(
    event_type: EventType,
    source: str,
    time: datetime | int,
    *,
    event_id: str | None = None,
    content_type: str | None = AVRO_CONFLUENT,
    trace: TraceParent | None = None,
) -> Headers:
    """The headers of one record, in `HEADERS` order: `event_id` or a fresh UUID as `ce_id`;
    `content_type` None for a tombstone; `trace` continues a trace (one span per record), None
    starts one. `time` may be epoch milliseconds."""
    headers: Headers = [
        (SPECVERSION, _SPEC_VERSION),
        (ID, (event_id or str(uuid.uuid4())).encode()),
        (SOURCE, _text(source)),
        (TYPE, _text(event_type)),
        (TIME, rfc3339(time).encode()),
    ]
    if content_type is not None:
        headers.append((CONTENT_TYPE, _text(content_type)))
    headers.append((TRACEPARENT, str(trace or TraceParent.start()).encode()))
    return headers


def event_trace(event_id: str) -> TraceParent:
    """A change's own trace: its trace id is the event id's 128 bits (a random UUID), so every
    republished copy of a change is in one trace and a tracing backend finds it by the event id."""
    if _CANONICAL_UUID.fullmatch(event_id):  # as the platform writes them: no parse needed
        trace_id = event_id.replace("-", "")
    else:
        try:
            trace_id = uuid.UUID(event_id).hex
        except ValueError:
            return TraceParent.start()
    return TraceParent.start(None if trace_id == "0" * 32 else trace_id)


def dead_letter_id(consumer: str, topic: str, partition: int, offset: int) -> str:
    """One id per record a consumer gave up on: a dead letter sent twice is one event."""
    return str(uuid.uuid5(_DEAD_LETTER_IDS, f"{consumer}/{topic}/{partition}/{offset}"))
