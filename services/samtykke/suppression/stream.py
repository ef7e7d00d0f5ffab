"""Campaign-sized checks: streamed NDJSON or CSV in, streamed results out, and the dry-run summary.

Input (by Content-Type): `application/x-ndjson`, one object per line with exactly one of
subject_id / phone / email; or `text/csv` with a one-column header naming the kind
(`subject_id`, `phone` or `email`) and one value per line. Entries are numbered from 0.

All or nothing, unless `skip_invalid=true`: results are decided as the body arrives and
spooled (memory, then disk); only when the whole body was valid is the spool streamed back,
otherwise the answer is a 422 naming each invalid entry (the first 1,000) and its rule.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Iterator
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AwareDatetime

from samtykke.adapters.auth import Principal
from samtykke.domain.model import Channel
from samtykke.domain.suppression import Reason

from .api import Gate, Mode, Parser, SkipInvalid, entry_out, iso, resolve_purpose
from .auth import require
from .errors import RequestProblems
from .schemas import ERROR_RESPONSES, DryRunOut
from .targets import KINDS, EntryProblem, Target, TargetParser

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES, tags=["checks"])
LISTED_PROBLEMS = 1000
SPOOL_IN_MEMORY = 32 * 1024 * 1024
BODY = {"content": {"application/x-ndjson": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}}
Purpose = Annotated[str, Query(min_length=1, max_length=200)]
At = Annotated[AwareDatetime | None, Query(description="Decide as of this instant (ISO 8601 with zone; default now)")]


async def _lines(request: Request) -> AsyncIterator[list[str]]:
    tail = b""
    async for chunk in request.stream():
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        yield [line.decode("utf-8", "replace").rstrip("\r") for line in lines]
    if tail.strip():
        yield [tail.decode("utf-8", "replace").rstrip("\r")]


class EntryReader:
    """Turns body lines into (entry number, target or problem), whatever the format."""

    def __init__(self, parser: TargetParser, content_type: str) -> None:
        self._parser = parser
        self._csv = content_type.split(";")[0].strip().lower() == "text/csv"
        self._kind: str | None = None
        self.count = 0

    def read(self, lines: list[str]) -> Iterator[tuple[int, Target | EntryProblem]]:
        for line in lines:
            if not line.strip():
                continue
            if self._csv and self._kind is None:
                self._kind = line.strip().strip('"').lower()
                if self._kind not in KINDS:
                    raise RequestProblems([("header", f"CSV header must be one of {', '.join(KINDS)}")])
                continue
            index = self.count
            self.count += 1
            try:
                if self._kind is not None:
                    yield index, self._parser.parse(self._kind, line.strip().strip('"'))
                else:
                    yield index, self._parser.parse_entry(json.loads(line))
            except EntryProblem as exc:
                yield index, EntryProblem(f"entries[{index}]" + (f".{exc.field}" if exc.field else ""), exc.rule)
            except ValueError:
                yield index, EntryProblem(f"entries[{index}]", "is not a JSON object")


def _reject(problems: list[EntryProblem], total: int) -> RequestProblems:
    listed = [(p.field, p.rule) for p in problems[:LISTED_PROBLEMS]]
    if total > LISTED_PROBLEMS:
        listed.append(("entries", f"and {total - LISTED_PROBLEMS} more invalid entries"))
    return RequestProblems(listed, "invalid_entries")


@router.post(
    "/check/stream",
    summary="Decide a campaign list (NDJSON or CSV), streamed back",
    openapi_extra={"requestBody": BODY},
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
async def check_stream(
    request: Request,
    g: Gate,
    p: Parser,
    purpose: Purpose,
    channel: Channel | None = None,
    at: At = None,
    mode: Mode = "blocked",
    skip_invalid: SkipInvalid = False,
    _: Principal = Depends(require("suppression:check")),
) -> Any:
    started = time.perf_counter()
    chosen, chan = resolve_purpose(g, purpose, channel)
    as_csv = "text/csv" in request.headers.get("accept", "")
    snap = g.snapshot(at.timestamp() if at else None)
    reader = EntryReader(p, request.headers.get("content-type", ""))
    # closed by the streaming response once it has sent the answers
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    spool.write(b"index,result,reasons,subject_ids,valid_until\n" if as_csv else b"")
    problems: list[EntryProblem] = []
    invalid = 0
    tally: Tally[tuple[Reason, ...]] = Tally()
    plan = g.plan(chosen, chan)
    async for lines in _lines(request):
        out: list[str] = []
        for index, item in reader.read(lines):
            if isinstance(item, EntryProblem):
                invalid += 1
                if len(problems) < LISTED_PROBLEMS:
                    problems.append(item)
                if skip_invalid:
                    out.append(
                        _line(
                            {
                                "index": index,
                                "result": "invalid",
                                "problems": [{"field": item.field, "rule": item.rule}],
                            },
                            as_csv,
                        )
                    )
                continue
            verdict, holders = g.decide(item, plan, snap)
            if mode == "full" or not verdict.allowed:
                out.append(_line(entry_out(index, verdict, holders), as_csv))
            tally[verdict.reasons] += 1
        if out:
            spool.write("".join(out).encode())
    if invalid and not skip_invalid:
        spool.close()
        raise _reject(problems, invalid)
    g.metrics.count(tally)
    g.metrics.check_latency.labels("stream").observe(time.perf_counter() - started)
    spool.seek(0)
    headers = {
        "Suppression-Evaluated-At": iso(snap.evaluated_at) or "",
        "Suppression-Position": json.dumps(snap.position),
        "Suppression-Counts": json.dumps({"checked": reader.count - invalid, "invalid": invalid}),
    }
    return StreamingResponse(
        _drain(spool), media_type="text/csv" if as_csv else "application/x-ndjson", headers=headers
    )


def _line(entry: dict[str, Any], as_csv: bool) -> str:
    if not as_csv:
        return json.dumps(entry, separators=(",", ":")) + "\n"
    reasons = "|".join(entry.get("reasons", [])) or ";".join(
        f"{p['field']}: {p['rule']}" for p in entry.get("problems") or []
    )
    subject_ids = "|".join(entry.get("subject_ids", []))
    return f'{entry["index"]},{entry["result"]},"{reasons}",{subject_ids},{entry.get("valid_until") or ""}\n'


async def _drain(spool: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while chunk := spool.read(256 * 1024):
            yield chunk
    finally:
        spool.close()


@router.post(
    "/campaigns/dry-run",
    response_model=DryRunOut,
    openapi_extra={"requestBody": BODY},
    summary="Campaign dry run: how many would be allowed, blocked by which reason (no side effects)",
)
async def dry_run(
    request: Request,
    g: Gate,
    p: Parser,
    purpose: Purpose,
    channel: Channel | None = None,
    at: At = None,
    skip_invalid: SkipInvalid = False,
    _: Principal = Depends(require("suppression:check")),
) -> JSONResponse:
    chosen, chan = resolve_purpose(g, purpose, channel)
    snap = g.snapshot(at.timestamp() if at else None)
    reader = EntryReader(p, request.headers.get("content-type", ""))
    problems: list[EntryProblem] = []
    invalid = allowed = blocked = 0
    by_reason: Tally[str] = Tally()
    plan = g.plan(chosen, chan)
    async for lines in _lines(request):
        for _index, item in reader.read(lines):
            if isinstance(item, EntryProblem):
                invalid += 1
                if len(problems) < LISTED_PROBLEMS:
                    problems.append(item)
                continue
            verdict, _holders = g.decide(item, plan, snap)
            if verdict.allowed:
                allowed += 1
            else:
                blocked += 1
                by_reason.update(r.value for r in verdict.reasons)
    if invalid and not skip_invalid:
        raise _reject(problems, invalid)
    return JSONResponse(
        {
            "purpose": chosen.code,
            "channel": chan,
            "evaluated_at": iso(snap.evaluated_at),
            "position": snap.position,
            "total": reader.count,
            "allowed": allowed,
            "blocked": blocked,
            "invalid": invalid,
            "blocked_by_reason": dict(by_reason.most_common()),
        }
    )
