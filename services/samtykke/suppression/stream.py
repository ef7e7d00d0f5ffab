"""Campaign-sized checks: streamed NDJSON or CSV in, streamed results out, and the dry-run summary.

Input (by Content-Type): `application/x-ndjson`, one object per line with exactly one of
subject_id / phone / email; or `text/csv` (RFC 4180, as spreadsheet programs write it: an optional
UTF-8 byte-order mark, quoted fields) with a one-column header naming the kind (`subject_id`,
`phone` or `email`) and one value per row. Entries are numbered from 0; a problem names the entry
(`entries[i]`) and its rule gives the line of the body it was on.

All or nothing, unless `skip_invalid=true`: results are decided as the body arrives and
spooled (memory, then disk); only when the whole body was valid is the spool streamed back,
otherwise the answer is a 422 naming each invalid entry (the first 1,000) and its rule.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AwareDatetime

from samtykke.adapters.auth import Principal
from samtykke.domain.model import Channel
from samtykke.domain.suppression import Reason

from .api import Gate, Mode, Parser, SkipInvalid, entry_out, iso, resolve_purpose
from .auth import decision_instant, require
from .errors import RequestProblems
from .schemas import ERROR_RESPONSES, DryRunOut
from .targets import KINDS, EntryProblem, Target, TargetParser

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES, tags=["checks"])
LISTED_PROBLEMS = 1000
SPOOL_IN_MEMORY = 32 * 1024 * 1024
# an entry is one identifier: a longer line is hostile, and would be collected across chunks
MAX_LINE = 64 * 1024
BODY = {"content": {"application/x-ndjson": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}}
Purpose = Annotated[str, Query(min_length=1, max_length=200)]
At = Annotated[AwareDatetime | None, Query(description="Decide as of this instant (ISO 8601 with zone; default now)")]
Item = tuple[int, Target | EntryProblem]


async def _lines(request: Request) -> AsyncIterator[list[str]]:
    tail, seen = b"", 0
    async for chunk in request.stream():
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        if len(tail) > MAX_LINE or max(map(len, lines), default=0) > MAX_LINE:
            first = next(i for i, n in enumerate([*map(len, lines), len(tail)]) if n > MAX_LINE)
            raise RequestProblems([("body", f"line {seen + first + 1} is longer than {MAX_LINE} bytes")])
        seen += len(lines)
        yield [line.decode("utf-8", "replace").rstrip("\r") for line in lines]
    if tail.strip():
        yield [tail.decode("utf-8", "replace").rstrip("\r")]


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EntryProblem("", f"invalid JSON at column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:  # [[[[... : the decoder's own limit, refused rather than crashed
        raise EntryProblem("", "JSON nested too deeply") from exc


class EntryReader:
    """Turns body lines into (entry number, target or problem), whatever the format."""

    def __init__(self, parser: TargetParser, content_type: str) -> None:
        self._parser = parser
        self._csv = content_type.split(";")[0].strip().lower() == "text/csv"
        self._kind: str | None = None
        self._line = 0  # lines read so far
        self._record: list[str] = []  # CSV: the lines of a row whose quoted field is still open
        self._record_line = 0
        self.count = 0

    def read(self, lines: list[str]) -> Iterator[Item]:
        for text in lines:
            self._line += 1
            if self._line == 1:
                text = text.removeprefix("\ufeff")  # the byte-order mark spreadsheet programs write
            if self._csv:
                yield from self._csv_line(text)
            elif text.strip():
                yield self._numbered(self._line, partial(self._json_entry, text))

    def _json_entry(self, text: str) -> Target:
        return self._parser.parse_entry(_json(text))

    def finish(self) -> Iterator[Item]:
        """What the end of the body leaves: a CSV row whose quoted field was never closed."""
        if self._record:
            line, self._record = self._record_line, []
            yield self._numbered(line, _unclosed)

    def _csv_line(self, text: str) -> Iterator[Item]:
        if not self._record and '"' not in text and "," not in text:
            self._record_line, row = self._line, [text]  # the common row: one bare value, no parsing needed
        else:
            if not self._record:
                self._record_line = self._line
            self._record.append(text)
            if sum(part.count('"') for part in self._record) % 2:
                return  # RFC 4180: a quoted field may hold a line break; the row goes on
            record, self._record = "\n".join(self._record), []
            try:
                row = next(csv.reader([record], strict=True), [])
            except csv.Error as exc:
                yield self._numbered(self._record_line, _malformed(str(exc)))
                return
        if not row or (len(row) == 1 and not row[0].strip()):
            return
        if self._kind is None:
            self._kind = row[0].strip().lower() if len(row) == 1 else ""
            if self._kind not in KINDS:
                rule = f"line {self._record_line}: CSV header must be one column, one of {', '.join(KINDS)}"
                raise RequestProblems([("header", rule)])
            return
        kind = self._kind
        if len(row) != 1:
            yield self._numbered(self._record_line, _malformed(f"has {len(row)} values; the CSV has one column"))
        else:
            yield self._numbered(self._record_line, lambda: self._parser.parse(kind, row[0].strip()))

    def _numbered(self, line: int, parse: Callable[[], Target]) -> Item:
        index = self.count
        self.count += 1
        try:
            return index, parse()
        except EntryProblem as exc:
            return index, EntryProblem(
                f"entries[{index}]" + (f".{exc.field}" if exc.field else ""), f"line {line}: {exc.rule}"
            )


def _malformed(rule: str) -> Callable[[], Target]:
    def refuse() -> Target:
        raise EntryProblem("", rule)

    return refuse


def _unclosed() -> Target:
    raise EntryProblem("", "a quoted field is not closed before the end of the body")


async def _entries(request: Request, reader: EntryReader) -> AsyncIterator[list[Item]]:
    async for lines in _lines(request):
        yield list(reader.read(lines))
    yield list(reader.finish())


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
    who: Principal = Depends(require("suppression:check")),
) -> Any:
    started = time.perf_counter()
    chosen, chan = resolve_purpose(g, purpose, channel)
    as_csv = "text/csv" in request.headers.get("accept", "")
    snap = g.snapshot(decision_instant(request, who, at))
    reader = EntryReader(p, request.headers.get("content-type", ""))
    # closed by the streaming response once it has sent the answers
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    spool.write(b"index,result,reasons,subject_ids,valid_until\n" if as_csv else b"")
    problems: list[EntryProblem] = []
    invalid = 0
    tally: Tally[tuple[Reason, ...]] = Tally()
    plan = g.plan(chosen, chan)
    async for items in _entries(request, reader):
        out: list[str] = []
        for index, item in items:
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
    out = io.StringIO()
    # a rule may hold a quote or a comma: quoted as RFC 4180 says, one row per entry
    csv.writer(out, lineterminator="\n").writerow(
        [entry["index"], entry["result"], reasons, subject_ids, entry.get("valid_until") or ""]
    )
    return out.getvalue()


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
    who: Principal = Depends(require("suppression:check")),
) -> JSONResponse:
    chosen, chan = resolve_purpose(g, purpose, channel)
    snap = g.snapshot(decision_instant(request, who, at))
    reader = EntryReader(p, request.headers.get("content-type", ""))
    problems: list[EntryProblem] = []
    invalid = allowed = blocked = 0
    by_reason: Tally[str] = Tally()
    plan = g.plan(chosen, chan)
    async for items in _entries(request, reader):
        for _index, item in items:
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
