"""Request and response bodies of the suppression API (pydantic: they generate the OpenAPI document)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from samtykke.adapters.limits import BodyLimits, KiB, MiB
from samtykke.adapters.problems import ErrorOut, field_rule
from samtykke.domain.model import Channel

Text = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
Instant = Annotated[AwareDatetime, Field(ge=datetime(2000, 1, 1).astimezone(), le=datetime(2200, 1, 1).astimezone())]
Position = dict[str, dict[str, int]]
MAX_BULK = 10_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckIn(Strict):
    subject_id: Text | None = Field(None, description="Opaque subject id")
    phone: Text | None = Field(None, description="E.164 phone number (+46701234567)")
    email: Text | None = None
    purpose: Text = Field(description="Purpose code from the catalog, e.g. direct_marketing")
    channel: Channel | None = Field(None, description="The send's channel; required for per-channel purposes")
    at: Instant | None = Field(None, description="Decide as of this instant (default: now)")

    @model_validator(mode="after")
    def _exactly_one(self) -> CheckIn:
        if sum(v is not None for v in (self.subject_id, self.phone, self.email)) != 1:
            raise field_rule("subject_id|phone|email", "give exactly one of subject_id, phone, email")
        return self


class RegisterEvidenceOut(BaseModel):
    register_name: str = Field(alias="register")
    standing: Literal["listed", "clear", "stale"]
    published: date | None
    fresh_until: datetime | None


class DecisionOut(BaseModel):
    result: Literal["allowed", "blocked"]
    reasons: list[str]
    subject_ids: list[str] = Field(description="The subjects the identifier resolved to (none: unknown)")
    valid_until: datetime | None = Field(description="Until when an allowed decision holds")
    evaluated_at: datetime
    at: datetime = Field(description="The instant the decision is for")
    registers: list[RegisterEvidenceOut] = Field(description="Register snapshots the decision relied on")
    position: Position = Field(description="Index position as proof: topic -> partition -> next offset")


class BulkIn(Strict):
    purpose: Text
    channel: Channel | None = None
    at: Instant | None = None
    entries: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BULK,
        description="Each entry is an object with exactly one of subject_id, phone, email",
    )


class EntryOut(BaseModel):
    index: int
    result: Literal["allowed", "blocked", "invalid"]
    reasons: list[str] = []
    subject_ids: list[str] = []
    valid_until: datetime | None = None
    problems: list[dict[str, str]] | None = None


class BulkOut(BaseModel):
    purpose: str
    channel: str | None
    evaluated_at: datetime
    at: datetime
    position: Position
    checked: int
    blocked: int
    invalid: int
    results: list[EntryOut] = Field(description="Blocked (and invalid) entries; every entry with mode=full")


class DryRunOut(BaseModel):
    purpose: str
    channel: str | None
    evaluated_at: datetime
    position: Position
    total: int
    allowed: int
    blocked: int
    invalid: int
    blocked_by_reason: dict[str, int] = Field(description="A blocked entry counts once under each of its reasons")


class SuppressionOut(BaseModel):
    subject_id: str
    purpose: str
    channel: str | None
    reasons: list[str]


class ChangeOut(SuppressionOut):
    seq: int
    at: datetime
    action: Literal["added", "removed"]


class ChangesOut(BaseModel):
    changes: list[ChangeOut]
    next_cursor: str


class RegisterImportOut(BaseModel):
    job_id: str
    register_name: str = Field(alias="register")
    published: date
    state: Literal["running", "done", "failed"]
    read: int
    listed: int
    matched: int = Field(description="Listed numbers that belong to an indexed subject")
    invalid: int
    invalid_lines: list[int] = Field(description="Line numbers of the first invalid rows")
    error: str | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or unknown credential"},
    403: {"model": ErrorOut, "description": "Credential lacks the scope"},
    422: {"model": ErrorOut, "description": "A field breaks a rule; each problem names it"},
    429: {"model": ErrorOut, "description": "Rate limit exceeded; see Retry-After and RateLimit-* headers"},
    503: {"model": ErrorOut, "description": "Index older than its bound (with SUPPRESSION_STALE_RESPONSE=503)"},
}

# The largest body each route reads (bytes), refused with 413 before parsing or credentials: a single
# check is on every send's path and small; a bulk check holds <= MAX_BULK entries (~2 MB with
# 200-character e-mails); a streamed campaign list or a register file holds millions of lines
# (about 10 million phone numbers in CSV).
BODY_LIMITS = BodyLimits(
    default=16 * KiB,
    routes={
        "/v1/check": 8 * KiB,
        "/v1/check/bulk": 4 * MiB,
        "/v1/check/stream": 128 * MiB,
        "/v1/campaigns/dry-run": 128 * MiB,
        "/v1/registers/{register}/imports": 128 * MiB,
    },
)
