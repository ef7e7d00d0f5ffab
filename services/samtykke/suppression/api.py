"""Check routes: one target, or a JSON batch of up to 10,000. They translate payloads and call the gate.

Responses are built as plain dicts (the pydantic models document them): a single check is on
the send path of every marketing message and must stay within a few milliseconds.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from samtykke.adapters.auth import Principal
from samtykke.domain.catalog import Purpose
from samtykke.domain.model import Channel
from samtykke.domain.suppression import Reason, Verdict

from .auth import decision_instant, require
from .errors import RequestProblems
from .gate import Snapshot, SuppressionGate
from .schemas import ERROR_RESPONSES, BulkIn, BulkOut, CheckIn, DecisionOut
from .targets import EntryProblem, Target, TargetParser

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES, tags=["checks"])
Mode = Annotated[Literal["blocked", "full"], Query(description="blocked: only blocked entries; full: every entry")]
SkipInvalid = Annotated[
    bool, Query(description="Report invalid entries and decide the rest, instead of rejecting the batch")
]


def gate(request: Request) -> SuppressionGate:
    value: SuppressionGate = request.app.state.gate
    return value


def parser(request: Request) -> TargetParser:
    value: TargetParser = request.app.state.parser
    return value


Gate = Annotated[SuppressionGate, Depends(gate)]
Parser = Annotated[TargetParser, Depends(parser)]


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def resolve_purpose(g: SuppressionGate, code: str, channel: Channel | None) -> tuple[Purpose, str | None]:
    purpose = g.purpose(code)
    if purpose is None:
        raise RequestProblems([("purpose", f"unknown purpose '{code[:60]}'")])
    if purpose.per_channel:
        offered = {c for chans in purpose.channels.values() for c in chans}
        if channel is None:
            raise RequestProblems(
                [("channel", f"'{purpose.code}' is per channel: one of {sorted(c.value for c in offered)}")]
            )
        if channel not in offered:
            raise RequestProblems([("channel", f"'{channel.value}' is not a channel of '{purpose.code}'")])
    return purpose, channel.value if channel is not None else None


def registers_out(verdict: Verdict) -> list[dict[str, Any]]:
    return [
        {
            "register": e.register.value,
            "standing": e.standing.value,
            "published": e.published.isoformat() if e.published else None,
            "fresh_until": iso(e.fresh_until),
        }
        for e in verdict.evidence
    ]


def entry_out(index: int, verdict: Verdict, holders: tuple[str, ...]) -> dict[str, Any]:
    return {
        "index": index,
        "result": "allowed" if verdict.allowed else "blocked",
        "reasons": [r.value for r in verdict.reasons],
        "subject_ids": list(holders),
        "valid_until": iso(verdict.valid_until),
    }


@router.post("/check", response_model=DecisionOut, summary="Decide one send: subject id, E.164 phone or e-mail")
async def check(
    body: CheckIn, g: Gate, p: Parser, request: Request, who: Principal = Depends(require("suppression:check"))
) -> JSONResponse:
    purpose, channel = resolve_purpose(g, body.purpose, body.channel)
    kind, raw = next(
        (k, v)
        for k, v in (("subject_id", body.subject_id), ("phone", body.phone), ("email", body.email))
        if v is not None
    )
    try:
        target = p.parse(kind, raw)
    except EntryProblem as exc:
        raise RequestProblems([(exc.field, exc.rule)]) from exc
    snap = g.snapshot(decision_instant(request, who, body.at))
    verdict, holders = g.decide_one(target, g.plan(purpose, channel), snap)
    return JSONResponse(
        {
            "result": "allowed" if verdict.allowed else "blocked",
            "reasons": [r.value for r in verdict.reasons],
            "subject_ids": list(holders),
            "valid_until": iso(verdict.valid_until),
            "evaluated_at": iso(snap.evaluated_at),
            "at": iso(snap.at),
            "registers": registers_out(verdict),
            "position": snap.position,
        }
    )


@router.post("/check/bulk", response_model=BulkOut, summary="Decide up to 10,000 targets (JSON)")
async def check_bulk(
    body: BulkIn,
    g: Gate,
    p: Parser,
    request: Request,
    mode: Mode = "blocked",
    skip_invalid: SkipInvalid = False,
    who: Principal = Depends(require("suppression:check")),
) -> JSONResponse:
    started = time.perf_counter()
    purpose, channel = resolve_purpose(g, body.purpose, body.channel)
    targets: list[tuple[int, Target]] = []
    invalid: list[dict[str, Any]] = []
    for i, entry in enumerate(body.entries):
        try:
            targets.append((i, p.parse_entry(entry)))
        except EntryProblem as exc:
            field = f"entries[{i}]" + (f".{exc.field}" if exc.field else "")
            invalid.append({"index": i, "result": "invalid", "problems": [{"field": field, "rule": exc.rule}]})
    if invalid and not skip_invalid:
        raise RequestProblems(
            [(e["problems"][0]["field"], e["problems"][0]["rule"]) for e in invalid], "invalid_entries"
        )
    snap: Snapshot = g.snapshot(decision_instant(request, who, body.at))
    tally: Tally[tuple[Reason, ...]] = Tally()
    results: list[dict[str, Any]] = list(invalid)
    blocked = 0
    verdicts = g.decide_many((t for _, t in targets), g.plan(purpose, channel), snap, tally)
    for (i, _target), (verdict, holders) in zip(targets, verdicts, strict=False):
        blocked += not verdict.allowed
        if mode == "full" or not verdict.allowed:
            results.append(entry_out(i, verdict, holders))
    results.sort(key=lambda r: r["index"])
    g.metrics.count(tally)
    g.metrics.check_latency.labels("bulk").observe(time.perf_counter() - started)
    return JSONResponse(
        {
            "purpose": purpose.code,
            "channel": channel,
            "evaluated_at": iso(snap.evaluated_at),
            "at": iso(snap.at),
            "position": snap.position,
            "checked": len(targets),
            "blocked": blocked,
            "invalid": len(invalid),
            "results": results,
        }
    )
