"""Bulk import, the rows: reading a CRM file (CSV or NDJSON) and validating each row as the API would.

One row is one decision of one subject; a subject may have several rows. A row is checked with the
API's own types (`schemas.Text`, `schemas.Instant`, the enums), the service's identifier rules and the
domain's decision rules (`check_decision`), except the one that needs the stored state (a decision
older than the one recorded), which the batch applies (`imports_batch`). A bad row becomes rejections
naming its row, field and rule, never the value: a report must not repeat an identifier.

Rows are numbered by the line they start on, the header being line 1 (what a spreadsheet shows).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import IO, Any, Literal, NamedTuple

from pydantic import Field, ValidationError

from samtykke.domain.catalog import PurposeCatalog
from samtykke.domain.consent import Decision, check_decision
from samtykke.domain.identifiers import InvalidIdentifier
from samtykke.domain.model import ActorKind, Channel, ConsentAction, Country, Source, SubjectKind

from .ports import IdentifierKind
from .schemas import Instant, Strict, Text
from .service import normalise

# the namespace of imported decisions' event ids: one decision of one file row is one event id, so a
# re-run of the file (or of any file holding the same decision) finds it in the ledger
IMPORT_NAMESPACE = uuid.UUID("6f1d5a0e-3c2b-5d7e-9a41-2b8f0c6e1d35")
_NAMESPACE_BYTES = IMPORT_NAMESPACE.bytes
STATUS_ACTION = {"granted": ConsentAction.GRANT, "withdrawn": ConsentAction.WITHDRAW, "revoked": ConsentAction.REVOKE}
IDENTIFIERS = tuple(IdentifierKind)
NORMALISED_KEPT = 65_536  # identifiers remembered, normalised, while a file is read


class ImportFormat(StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"

    @classmethod
    def of_path(cls, name: str) -> ImportFormat | None:
        lowered = name.lower()
        if lowered.endswith(".csv"):
            return cls.CSV
        if lowered.endswith((".ndjson", ".jsonl")):
            return cls.NDJSON
        return None


class ImportRowIn(Strict):
    """One row as the file gives it; every type is the API's (`SubjectIn`, `DecisionIn`, `DecisionBatchIn`)."""

    subject_ref: Text = Field(description="The operator's own reference of the subject (CRM id), unique per operator")
    kind: SubjectKind
    country: Country
    account_id: Text | None = Field(None, description="Business account; required for employees and businesses")
    phone: Text | None = Field(None, description="E.164, or national form for the subject's country")
    email: Text | None = None
    national_id: Text | None = Field(None, description="CPR (DK), personnummer (SE), fødselsnummer (NO)")
    purpose: Text
    channel: Channel | None = None
    status: Literal["granted", "withdrawn", "revoked"]
    occurred_at: Instant = Field(description="When the subject decided (ISO 8601 with a zone)")
    source: Source = Source.IMPORT
    actor_kind: ActorKind = ActorKind.SYSTEM
    notice_version: Text | None = None
    evidence: Text | None = Field(None, description="Evidence reference: kept in the ledger, never on a topic")


COLUMNS = tuple(ImportRowIn.model_fields)
REQUIRED = tuple(name for name, spec in ImportRowIn.model_fields.items() if spec.is_required())
# the domain rules name request fields; a report names the file's columns
_RULE_FIELDS = {"purpose": "purpose", "channel": "channel", "occurred_at": "occurred_at", "action": "status"}


class Rejection(NamedTuple):
    row: int
    field: str
    rule: str


class FileRefused(ValueError):
    """The file as a whole cannot be read (a header without a required column, an unknown column)."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field, self.rule = field, rule


@dataclass(frozen=True, slots=True)
class ImportRow:
    """A row that passed every rule a row can be checked by alone; identifiers normalised."""

    row: int
    subject_ref: str
    kind: SubjectKind
    country: Country
    account_id: str | None
    identifiers: dict[IdentifierKind, str]
    decision: Decision
    source: Source
    actor_kind: ActorKind
    notice_version: str | None
    evidence_ref: str | None
    event_id: str

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.decision.purpose, self.decision.channel.value if self.decision.channel else None)


def event_id(subject_ref: str, purpose: str, channel: Channel | None, occurred_at: datetime, status: str) -> str:
    """The decision's event id, the same for the same decision however its instant's zone was written:
    `uuid.uuid5(IMPORT_NAMESPACE, name)` as text, without building UUID objects (a third of the cost)."""
    instant = occurred_at.astimezone(UTC).isoformat()
    name = "\x1f".join((subject_ref, purpose, channel.value if channel else "", instant, status))
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6], digest[8] = (digest[6] & 0x0F) | 0x50, (digest[8] & 0x3F) | 0x80  # version 5, RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class RowValidator:
    def __init__(self, catalog: PurposeCatalog, now: datetime) -> None:
        self._catalog = catalog
        self._now = now  # "not in the future" is judged against the start of the import
        self._normalised: dict[tuple[IdentifierKind, str, Country], str | InvalidIdentifier] = {}

    def validate(self, row: int, values: dict[str, Any]) -> ImportRow | list[Rejection]:
        try:
            given = ImportRowIn.model_validate(values)
        except ValidationError as exc:
            # `msg` states the rule; the input itself is never repeated
            return [Rejection(row, str(e["loc"][0]) if e["loc"] else "row", e["msg"]) for e in exc.errors()]
        problems = self._subject_rules(row, given)
        identifiers = self._identifiers(row, given, problems)
        decision = Decision(given.purpose, given.channel, STATUS_ACTION[given.status], given.occurred_at)
        problems += self._decision_rules(row, given, decision)
        if problems:
            return problems
        return ImportRow(
            row=row,
            subject_ref=given.subject_ref,
            kind=given.kind,
            country=given.country,
            account_id=given.account_id,
            identifiers=identifiers,
            decision=decision,
            source=given.source,
            actor_kind=given.actor_kind,
            notice_version=given.notice_version,
            evidence_ref=given.evidence,
            event_id=event_id(given.subject_ref, given.purpose, given.channel, given.occurred_at, given.status),
        )

    @staticmethod
    def _subject_rules(row: int, given: ImportRowIn) -> list[Rejection]:
        if given.kind in (SubjectKind.EMPLOYEE, SubjectKind.BUSINESS) and not given.account_id:
            return [Rejection(row, "account_id", f"a {given.kind.value} belongs to a business account")]
        return []

    def _identifiers(self, row: int, given: ImportRowIn, problems: list[Rejection]) -> dict[IdentifierKind, str]:
        found: dict[IdentifierKind, str] = {}
        for kind in IDENTIFIERS:
            raw = getattr(given, kind.value)
            if raw is None:
                continue
            normalised = self._normalise(kind, raw, given.country)
            if isinstance(normalised, InvalidIdentifier):
                problems.append(Rejection(row, kind.value, str(normalised)))
            else:
                found[kind] = normalised
        return found

    def _normalise(self, kind: IdentifierKind, raw: str, country: Country) -> str | InvalidIdentifier:
        """`service.normalise`, once per value: a subject's rows repeat its identifiers."""
        key = (kind, raw, country)
        known = self._normalised.get(key)
        if known is None:
            if len(self._normalised) >= NORMALISED_KEPT:
                self._normalised.clear()
            try:
                known = self._normalised[key] = normalise(kind, raw, country)
            except InvalidIdentifier as exc:
                known = self._normalised[key] = exc
        return known

    def _decision_rules(self, row: int, given: ImportRowIn, decision: Decision) -> list[Rejection]:
        if self._catalog.get(given.purpose) is None:
            # the API's rule names the value; a report does not (a shifted column would show an identifier)
            return [Rejection(row, "purpose", "unknown purpose: not in the catalog")]
        broken = check_decision(self._catalog, given.kind, given.actor_kind, decision, "", self._now, None)
        return [Rejection(row, _RULE_FIELDS.get(v.field.lstrip("."), "actor_kind"), v.rule) for v in broken]


# -- reading ------------------------------------------------------------------


def _not_utf8(values: Iterable[str]) -> bool:
    # surrogateescape keeps undecodable bytes as lone surrogates, which UTF-8 cannot encode
    text = "".join(values)
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_csv(source: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | Rejection]]:
    """RFC 4180 records (quoted fields may span lines); a byte-order mark is fine; blank lines are skipped."""
    text = io.TextIOWrapper(source, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise FileRefused("header", "the file is empty") from None
    except csv.Error as exc:
        raise FileRefused("header", f"not CSV: {exc}") from None
    _check_header(header)
    start = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield start, Rejection(start, "row", "is not valid CSV (RFC 4180)")
            start = reader.line_num + 1
            continue
        row, start = start, reader.line_num + 1
        if not record:
            continue
        if len(record) != len(header):
            yield row, Rejection(row, "row", f"has {len(record)} fields, the header has {len(header)}")
        elif _not_utf8(record):
            yield row, Rejection(row, "row", "is not valid UTF-8")
        else:
            yield row, {name: value for name, value in zip(header, record, strict=True) if value != ""}


def _check_header(header: list[str]) -> None:
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise FileRefused("header", f"unknown column '{unknown[0][:40]}': the columns are {', '.join(COLUMNS)}")
    if len(set(header)) != len(header):
        raise FileRefused("header", "a column is named twice")
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise FileRefused("header", f"missing required column '{missing[0]}'")


def read_ndjson(source: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | Rejection]]:
    """One JSON object per line; null or an empty string is a missing value; blank lines are skipped."""
    for row, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line.removeprefix(b"\xef\xbb\xbf") if row == 1 else line)
        except UnicodeDecodeError:
            yield row, Rejection(row, "row", "is not valid UTF-8")
            continue
        except ValueError:
            yield row, Rejection(row, "row", "is not a JSON object")
            continue
        if not isinstance(value, dict):
            yield row, Rejection(row, "row", "is not a JSON object")
            continue
        yield row, {name: v for name, v in value.items() if v is not None and v != ""}


def read_rows(source: IO[bytes], fmt: ImportFormat) -> Iterator[tuple[int, dict[str, Any] | Rejection]]:
    return read_csv(source) if fmt is ImportFormat.CSV else read_ndjson(source)
