"""Request and response bodies of the consent API (pydantic: they generate the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from samtykke.adapters import problems
from samtykke.adapters.limits import BodyLimits, KiB, MiB
from samtykke.domain.model import ActorKind, Channel, ConsentAction, Country, Source, SubjectKind

# No NUL (PostgreSQL text cannot hold it), bounded length.
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
# Instants must carry a zone and sit in a sane range (lapse arithmetic must not overflow).
Instant = Annotated[AwareDatetime, Field(ge=datetime(2000, 1, 1).astimezone(), le=datetime(2200, 1, 1).astimezone())]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentifiersIn(Strict):
    phone: Text | None = Field(None, description="E.164, or national form for the subject's country")
    email: Text | None = None
    national_id: Text | None = Field(None, description="CPR (DK), personnummer (SE), fødselsnummer (NO)")


class SubjectIn(Strict):
    kind: SubjectKind
    country: Country
    account_id: Text | None = Field(None, description="Business account; required for employees and businesses")
    identifiers: IdentifiersIn = IdentifiersIn()


class SubjectOut(BaseModel):
    subject_id: str
    kind: SubjectKind
    country: Country
    account_id: str | None
    created_at: datetime
    erased_at: datetime | None
    has_identifiers: dict[str, bool]
    identifiers: dict[str, str | None] | None = Field(None, description="Clear identifiers: only for the admin scope")


class LookupIn(Strict):
    phone: Text | None = None
    email: Text | None = None
    national_id: Text | None = None
    country: Country | None = Field(None, description="Needed for a national id or a national phone form")

    @model_validator(mode="after")
    def _exactly_one(self) -> LookupIn:
        given = [n for n in ("phone", "email", "national_id") if getattr(self, n) is not None]
        if len(given) != 1:
            raise problems.field_rule("phone|email|national_id", "give exactly one of phone, email, national_id")
        if self.national_id is not None and self.country is None:
            raise problems.field_rule("country", "is required with national_id")
        return self


class LookupOut(BaseModel):
    subject_ids: list[str]


class ReleaseIn(Strict):
    identifiers: list[Literal["phone", "email"]] = Field(
        min_length=1, max_length=2, description="Which of the subject's identifiers it no longer holds"
    )
    reason: Literal["subscription_ended", "ported_out"] | None = Field(
        None, description="Why: the subscription ended, or the number was ported to another operator"
    )

    @model_validator(mode="after")
    def _distinct(self) -> ReleaseIn:
        if len(set(self.identifiers)) != len(self.identifiers):
            raise problems.field_rule("identifiers", "name each identifier once")
        return self


class ActorIn(Strict):
    kind: ActorKind
    ref: Text | None = Field(None, description="Agent or admin reference (not a personal identifier)")


class DecisionIn(Strict):
    purpose: Text
    channel: Channel | None = None
    action: ConsentAction
    occurred_at: Instant | None = Field(None, description="When the subject decided; default now")


class DecisionBatchIn(Strict):
    decisions: list[DecisionIn] = Field(min_length=1, max_length=100)
    source: Source
    actor: ActorIn
    notice_version: Text | None = None
    evidence_ref: Text | None = None
    correlation_id: Text | None = None


class ChangeOut(BaseModel):
    event_id: str
    purpose: str
    channel: str | None
    status: str
    previous_status: str | None
    version: int
    occurred_at: str
    valid_until: str | None


class BatchOut(BaseModel):
    subject_id: str
    changes: list[ChangeOut]
    replayed: bool


class DecisionOut(BaseModel):
    """The ledger row of the decision in force: a grant, withdrawal or revocation, never a usage report or lapse."""

    event_id: str = Field(description="The decision's event id in the ledger (`/history`)")
    seq: int = Field(description="The decision's position in the ledger (`/history`)")
    source: str
    actor_kind: str
    notice_version: str | None = Field(description="The notice the decision was made under")
    occurred_at: datetime = Field(description="When the subject decided")
    recorded_at: datetime
    client_id: str | None = Field(description="The credential that recorded the decision (not the claimed actor)")
    evidence_on_file: bool = Field(description="Whether the ledger holds an evidence reference (dropped on erasure)")


class ConsentOut(BaseModel):
    purpose: str
    channel: str | None
    status: str
    version: int
    occurred_at: datetime
    valid_until: datetime | None
    last_used_at: datetime | None
    recorded_at: datetime | None = Field(None, description="When the state was last written (usage reports included)")
    notice_version: str | None = Field(None, description="The notice of the last write; null after a usage report")
    source: str | None = Field(None, description="The source of the last write, e.g. `usage_report` or `system`")
    decision: DecisionOut | None = Field(
        None, description="The decision in force at the instant asked about; null when its documentation was purged"
    )


class LedgerEntryOut(BaseModel):
    seq: int
    event_id: str
    purpose: str
    channel: str | None
    status: str
    previous_status: str | None
    version: int
    occurred_at: datetime
    recorded_at: datetime
    valid_until: datetime | None
    last_used_at: datetime | None
    source: str
    actor_kind: str
    actor_ref: str | None
    notice_version: str | None
    evidence_ref: str | None
    correlation_id: str | None
    client_id: str | None = Field(None, description="The credential that made the change (not the claimed actor)")
    evidence_on_file: bool = Field(
        False, description="Whether the ledger holds evidence; `evidence_ref` and `actor_ref` need `evidence:read`"
    )


class EvidenceOut(BaseModel):
    """The evidence of one change, which only the ledger holds (the topics say only whether it is on file)."""

    event_id: str
    subject_id: str
    purpose: str
    channel: str | None
    status: str
    occurred_at: datetime
    actor_kind: str
    actor_ref: str | None = Field(description="Who acted, as the request claimed; null after erasure")
    evidence_ref: str | None = Field(description="The evidence reference; null when none was given or after erasure")
    evidence_on_file: bool


class UsageIn(Strict):
    purpose: Text
    channel: Channel | None = None
    used_at: Instant | None = Field(None, description="When the consent was used; default now")


class AccessExportOut(BaseModel):
    subject: SubjectOut
    consents: list[ConsentOut]
    history: list[LedgerEntryOut]
    catalog_version: str


class ErrorOut(problems.ErrorOut):
    subject_id: str | None = None  # the subject a conflict concerns


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or unknown credential"},
    403: {"model": ErrorOut, "description": "Credential lacks the scope"},
    422: {"model": ErrorOut, "description": "A field breaks a rule; each problem names it"},
}

# The largest body each route reads (bytes), refused with 413 before parsing or credentials. A one-entry
# body is a few hundred bytes even with every text at its 200 characters; a batch holds <= 100 decisions.
BODY_LIMITS = BodyLimits(
    default=16 * KiB,
    routes={
        "/v1/subjects": 16 * KiB,
        "/v1/subjects/lookup": 16 * KiB,
        "/v1/subjects/{subject_id}/consents": 256 * KiB,
        "/v1/subjects/{subject_id}/usage": 16 * KiB,
        # a CRM file of decisions, spooled to disk: a few million rows (bigger ones: the command line)
        "/v1/imports": 512 * MiB,
    },
)
