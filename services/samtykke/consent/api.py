"""HTTP routes of the consent service: they translate payloads and call `ConsentService`."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse

from samtykke.adapters.auth import Principal, ScopeRequired, require
from samtykke.adapters.problems import install_problem_handlers, problem
from samtykke.domain.consent import ConsentRecord, Decision
from samtykke.domain.holdings import ReleaseReason
from samtykke.domain.model import Country

from .errors import Conflict, RulesBroken, SubjectNotFound
from .ports import CurrentConsent, IdentifierKind, LedgerEntry, SubjectRow
from .schemas import (
    ERROR_RESPONSES,
    AccessExportOut,
    BatchOut,
    ChangeOut,
    ConsentOut,
    DecisionBatchIn,
    DecisionOut,
    EvidenceOut,
    Instant,
    LedgerEntryOut,
    LookupIn,
    LookupOut,
    ReleaseIn,
    SubjectIn,
    SubjectOut,
    UsageIn,
)
from .service import ConsentService, DecisionBatch, NewSubject

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Makes a retry harmless: same key + same body = same result, no second event",
    ),
]


async def service(request: Request) -> ConsentService:
    # async: a plain `def` dependency would cost a thread-pool hop on every request
    svc: ConsentService = request.app.state.service
    return svc


Service = Annotated[ConsentService, Depends(service)]


def _subject_out(svc: ConsentService, row: SubjectRow, reveal: bool) -> SubjectOut:
    return SubjectOut(
        subject_id=row.subject_id,
        kind=row.kind,
        country=Country(row.country),
        account_id=row.account_id,
        created_at=row.created_at,
        erased_at=row.erased_at,
        has_identifiers={
            "phone": row.phone_hash is not None,
            "email": row.email_hash is not None,
            "national_id": row.national_id_hash is not None,
        },
        identifiers=svc.reveal(row) if reveal else None,
    )


def _consent_out(
    record: ConsentRecord, recorded: CurrentConsent | LedgerEntry | None = None, decision: LedgerEntry | None = None
) -> ConsentOut:
    return ConsentOut(
        purpose=record.purpose,
        channel=record.channel,
        status=record.status,
        version=record.version,
        occurred_at=record.occurred_at,
        valid_until=record.valid_until,
        last_used_at=record.last_used_at,
        recorded_at=recorded.recorded_at if recorded else None,
        notice_version=recorded.notice_version if recorded else None,
        source=recorded.source if recorded else None,
        decision=None if decision is None else _decision_out(decision),
    )


def _decision_out(entry: LedgerEntry) -> DecisionOut:
    # the evidence itself stays in the ledger: an answer read by every consent:read client says only
    # whether it is on file
    return DecisionOut(
        event_id=entry.event_id,
        seq=entry.seq,
        source=entry.source,
        actor_kind=entry.actor_kind,
        notice_version=entry.notice_version,
        occurred_at=entry.occurred_at,
        recorded_at=entry.recorded_at,
        client_id=entry.client_id,
        evidence_on_file=entry.evidence_ref is not None,
    )


@router.get("/purposes", summary="The purpose catalog")
async def purposes(svc: Service, _: Principal = Depends(require("consent:read"))) -> dict[str, Any]:
    return {"version": svc.catalog.version, "purposes": [p.as_dict() for p in svc.catalog.purposes.values()]}


@router.post(
    "/subjects",
    status_code=201,
    response_model=SubjectOut,
    responses={409: {"description": "National id already registered"}},
)
async def register_subject(
    body: SubjectIn, svc: Service, who: Principal = Depends(require("consent:write"))
) -> SubjectOut:
    ids = body.identifiers
    row = await svc.register_subject(
        NewSubject(body.kind, body.country, body.account_id, ids.phone, ids.email, ids.national_id)
    )
    return _subject_out(svc, row, who.has("identifiers:read"))


@router.post("/subjects/lookup", response_model=LookupOut, summary="Find subjects by an identifier (kept out of URLs)")
async def lookup(body: LookupIn, svc: Service, _: Principal = Depends(require("consent:read"))) -> LookupOut:
    # the body holds exactly one identifier (LookupIn checks it), in the field named by its kind
    kind, value = next((k, v) for k in IdentifierKind if (v := getattr(body, k.value)) is not None)
    return LookupOut(subject_ids=await svc.find_subjects(kind, value, body.country))


@router.get("/subjects/{subject_id}", response_model=SubjectOut)
async def get_subject(subject_id: UUID, svc: Service, who: Principal = Depends(require("consent:read"))) -> SubjectOut:
    return _subject_out(svc, await svc.subject(str(subject_id)), who.has("identifiers:read"))


@router.post(
    "/subjects/{subject_id}/consents",
    response_model=BatchOut,
    status_code=201,
    responses={404: {"description": "Unknown subject"}, 409: {"description": "Subject erased"}},
)
async def record_decisions(
    subject_id: UUID,
    body: DecisionBatchIn,
    svc: Service,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    who: Principal = Depends(require("consent:write")),
) -> dict[str, Any]:
    if not who.has("consent:import"):
        window = timedelta(days=request.app.state.backdate_window_days)
        oldest = datetime.now(UTC) - window
        late = [i for i, d in enumerate(body.decisions) if d.occurred_at is not None and d.occurred_at < oldest]
        if late:
            rule = f"more than {window.days} days in the past needs the consent:import scope"
            raise ScopeRequired([(f"decisions[{i}].occurred_at", rule) for i in late])
    batch = DecisionBatch(
        # an omitted occurred_at is stamped by the database under the subject's lock, so concurrent
        # requests for one subject never record "now" out of order, whatever this replica's clock says
        decisions=[Decision(d.purpose, d.channel, d.action, d.occurred_at) for d in body.decisions],
        source=body.source,
        actor_kind=body.actor.kind,
        actor_ref=body.actor.ref,
        notice_version=body.notice_version,
        evidence_ref=body.evidence_ref,
        correlation_id=body.correlation_id,
        client_id=who.client_id,
    )
    fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    return await svc.record(str(subject_id), batch, idempotency_key, fingerprint)


@router.get("/subjects/{subject_id}/consents", response_model=list[ConsentOut])
async def current_consents(
    subject_id: UUID,
    svc: Service,
    at: Annotated[Instant | None, Query(description="State as of this instant")] = None,
    _: Principal = Depends(require("consent:read")),
) -> list[ConsentOut]:
    states = await (svc.current_documented(str(subject_id)) if at is None else svc.state_at(str(subject_id), at))
    return [_consent_out(s.record, s.recorded, s.decision) for s in states]


@router.get("/subjects/{subject_id}/history", response_model=list[LedgerEntryOut])
async def history(
    subject_id: UUID, svc: Service, who: Principal = Depends(require("consent:read"))
) -> list[LedgerEntryOut]:
    """The evidence and the actor's reference are personal free text: shown only with `evidence:read`,
    otherwise only whether evidence is on file."""
    entries = [LedgerEntryOut.model_validate(e, from_attributes=True) for e in await svc.history(str(subject_id))]
    for entry in entries:
        entry.evidence_on_file = entry.evidence_ref is not None
        if not who.has("evidence:read"):
            entry.evidence_ref = entry.actor_ref = None
    return entries


@router.get(
    "/subjects/{subject_id}/evidence/{event_id}",
    response_model=EvidenceOut,
    summary="The evidence of one change, opened by an agent",
    responses={404: {"description": "Unknown subject, or no such change of it in the ledger"}},
)
async def evidence(
    subject_id: UUID, event_id: UUID, svc: Service, _: Principal = Depends(require("evidence:read"))
) -> EvidenceOut | JSONResponse:
    # evidence and actor references are personal free text: they never leave the ledger on a topic,
    # and a screen fetches them one change at a time, when an agent opens it
    wanted = str(event_id)
    entry = next((e for e in await svc.history(str(subject_id)) if e.event_id == wanted), None)
    if entry is None:
        return problem(404, "change_not_found", [("event_id", "no change with this id in the subject's ledger")])
    return EvidenceOut(
        event_id=entry.event_id,
        subject_id=entry.subject_id,
        purpose=entry.purpose,
        channel=entry.channel,
        status=entry.status,
        occurred_at=entry.occurred_at,
        actor_kind=entry.actor_kind,
        actor_ref=entry.actor_ref,
        evidence_ref=entry.evidence_ref,
        evidence_on_file=entry.evidence_ref is not None,
    )


@router.post(
    "/subjects/{subject_id}/usage",
    response_model=ChangeOut,
    responses={409: {"description": "No grant in force to use"}},
)
async def report_usage(
    subject_id: UUID, body: UsageIn, svc: Service, who: Principal = Depends(require("consent:write"))
) -> dict[str, Any]:
    return await svc.report_usage(str(subject_id), body.purpose, body.channel, body.used_at, who.client_id)


@router.post("/subjects/{subject_id}/erasure", response_model=SubjectOut, summary="Erase identifiers, stay suppressed")
async def erase(subject_id: UUID, svc: Service, _: Principal = Depends(require("subjects:erase"))) -> SubjectOut:
    return _subject_out(svc, await svc.erase(str(subject_id)), reveal=False)


@router.post(
    "/subjects/{subject_id}/identifiers/release",
    response_model=SubjectOut,
    summary="The subject no longer holds its phone or e-mail (subscription ended, number ported out)",
    responses={404: {"description": "Unknown subject"}, 409: {"description": "Subject erased, or not holding it"}},
)
async def release_identifiers(
    subject_id: UUID, body: ReleaseIn, svc: Service, who: Principal = Depends(require("consent:write"))
) -> SubjectOut:
    """The subject stays; the identifier leaves it. A check by that phone or e-mail answers `released`
    for the time the subject held it and the quarantine after, then a later holder's own decisions."""
    kinds = [IdentifierKind(k) for k in body.identifiers]
    row = await svc.release_identifiers(str(subject_id), kinds, ReleaseReason(body.reason) if body.reason else None)
    return _subject_out(svc, row, who.has("identifiers:read"))


@router.get("/subjects/{subject_id}/export", response_model=AccessExportOut, summary="Everything held about a subject")
async def access_export(
    subject_id: UUID, svc: Service, _: Principal = Depends(require("identifiers:read"))
) -> AccessExportOut:
    row = await svc.subject(str(subject_id))
    return AccessExportOut(
        subject=_subject_out(svc, row, reveal=True),
        consents=[_consent_out(s.record, s.recorded, s.decision) for s in await svc.current_documented(row.subject_id)],
        history=[LedgerEntryOut.model_validate(e, from_attributes=True) for e in await svc.history(row.subject_id)],
        catalog_version=svc.catalog.version,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Every failure the client can fix is a 4xx naming the field and the rule.

    A conflict names the subject it concerns only to a credential that may read identifiers
    (`identifiers:read`): otherwise a 409 on registering a
    national id would tell any writer whose national id it is. The credential is the principal the
    auth dependency leaves on `request.state`; without one nothing is revealed.
    """
    from .ports import AlreadyStored

    def may_read_identifiers(request: Request) -> bool:
        principal: Principal | None = getattr(request.state, "principal", None)
        return principal is not None and principal.has("identifiers:read")

    install_problem_handlers(app)

    @app.exception_handler(RulesBroken)
    async def _rules(_: Request, exc: RulesBroken) -> JSONResponse:
        if isinstance(exc.__cause__, AlreadyStored):
            # the unique fact was stored by a request running at the same moment: a race, not a rule
            return problem(409, "conflict", [(v.field, f"{v.rule} (by a concurrent request)") for v in exc.violations])
        return problem(422, "rule_violated", [(v.field, v.rule) for v in exc.violations])

    @app.exception_handler(SubjectNotFound)
    async def _missing(_: Request, exc: SubjectNotFound) -> JSONResponse:
        return problem(404, "subject_not_found", [("subject_id", "no subject with this id")])

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> JSONResponse:
        holder = exc.subject_id if may_read_identifiers(request) else None
        return problem(409, "conflict", [("subject", str(exc))], subject_id=holder or None)


__all__ = ["install_error_handlers", "router"]
