"""National register import: a register file becomes a snapshot of keyed phone hashes, as a job.

File format (all three registers): UTF-8 text, one phone number per line, E.164 (`+46701234567`)
or the register country's national form (`070-123 45 67` for NIX); blank lines and lines
starting with `#` are skipped. The publication date comes with the upload. Numbers are
hashed as they are read and never kept; the job reports progress and counts (read, listed,
matched, invalid) and logs a line with counts and rate every 100,000 rows.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from samtykke.adapters.auth import Principal
from samtykke.domain.identifiers import InvalidIdentifier, normalise_phone
from samtykke.domain.registers import REGISTER_COUNTRY, Register, RegisterSnapshot

from .auth import require
from .errors import RequestProblems
from .gate import SuppressionGate
from .metrics import SuppressionMetrics
from .schemas import ERROR_RESPONSES, RegisterImportOut
from .targets import TargetParser

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/registers", responses=ERROR_RESPONSES, tags=["registers"])
KEPT_INVALID_LINES = 100


@dataclass
class RegisterImport:
    register: Register
    published: date
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = "running"
    read: int = 0
    listed: int = 0
    matched: int = 0
    invalid: int = 0
    invalid_lines: list[int] = field(default_factory=list)
    error: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "register": self.register.value,
            "published": self.published.isoformat(),
            "state": self.state,
            "read": self.read,
            "listed": self.listed,
            "matched": self.matched,
            "invalid": self.invalid,
            "invalid_lines": self.invalid_lines,
            "error": self.error,
        }

    async def run(
        self, source: IO[bytes], parser: TargetParser, gate: SuppressionGate, metrics: SuppressionMetrics
    ) -> None:
        country = REGISTER_COUNTRY[self.register]
        hashes: set[str] = set()
        started = time.perf_counter()
        try:
            for number, raw in enumerate(source, start=1):
                line = raw.decode("utf-8", "replace").strip()
                if not line or line.startswith("#"):
                    continue
                self.read += 1
                try:
                    hashes.add(parser.keyed("phone", normalise_phone(line, country)))
                except InvalidIdentifier:
                    self.invalid += 1
                    if len(self.invalid_lines) < KEPT_INVALID_LINES:
                        self.invalid_lines.append(number)
                if self.read % 100_000 == 0:
                    log.info(
                        "register %s import %s: %d rows read, %d invalid, %.0f rows/s",
                        self.register,
                        self.job_id,
                        self.read,
                        self.invalid,
                        self.read / (time.perf_counter() - started),
                    )
                    await asyncio.sleep(0)  # checks keep being answered during a long import
            self.listed = len(hashes)
            self.matched = gate.install_register(
                RegisterSnapshot(self.register, self.published, frozenset(hashes)), time.time()
            )
            self.state = "done"
            metrics.register_rows.labels(self.register.value, "valid").inc(self.read - self.invalid)
            metrics.register_rows.labels(self.register.value, "invalid").inc(self.invalid)
            log.info(
                "register %s import %s done: %d read, %d listed, %d matched, %d invalid",
                self.register,
                self.job_id,
                self.read,
                self.listed,
                self.matched,
                self.invalid,
            )
        except Exception as exc:  # a job failure is reported on the job, the snapshot in use is kept
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("register %s import %s failed", self.register, self.job_id)
        finally:
            source.close()


def _check_published(gate: SuppressionGate, register: Register, published: date) -> None:
    if published > datetime.now(UTC).date() + timedelta(days=1):
        raise RequestProblems([("published", "must not be in the future")])
    if published < date(2000, 1, 1):
        raise RequestProblems([("published", "must be after 2000-01-01")])
    current = gate.register_in_use(register, time.time())
    if current is not None and published < current.snapshot.published:
        in_use = current.snapshot.published.isoformat()
        raise RequestProblems([("published", f"older than the snapshot in use ({in_use})")])


@router.post(
    "/{register}/imports",
    status_code=202,
    response_model=RegisterImportOut,
    summary="Import a register file (text/plain, one phone number per line) as a job",
    openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def start_import(
    request: Request,
    register: Annotated[Register, Path()],
    published: Annotated[date, Query(description="The register file's publication date")],
    _: Principal = Depends(require("admin")),
) -> JSONResponse:
    gate: SuppressionGate = request.app.state.gate
    _check_published(gate, register, published)
    # closed by the import job when it has read the file
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)  # noqa: SIM115
    async for chunk in request.stream():
        spool.write(chunk)
    spool.seek(0)
    job = RegisterImport(register, published)
    jobs: dict[str, RegisterImport] = request.app.state.register_jobs
    jobs[job.job_id] = job
    task = asyncio.create_task(job.run(spool, request.app.state.parser, gate, request.app.state.metrics))
    request.app.state.background.add(task)
    task.add_done_callback(request.app.state.background.discard)
    return JSONResponse(job.view(), status_code=202, headers={"Location": f"/v1/registers/imports/{job.job_id}"})


@router.get(
    "/imports/{job_id}",
    response_model=RegisterImportOut,
    summary="Progress and counts of an import job",
    responses={404: {"description": "Unknown job"}},
)
async def import_status(
    request: Request, job_id: Annotated[str, Path(max_length=64)], _: Principal = Depends(require("admin"))
) -> JSONResponse:
    job = request.app.state.register_jobs.get(job_id)
    if job is None:
        return JSONResponse({"error": "not_found", "problems": [{"field": "job_id", "rule": "no such job"}]}, 404)
    return JSONResponse(job.view())


@router.get("", summary="The register snapshots in use and their freshness")
async def registers(request: Request, _: Principal = Depends(require("suppression:check"))) -> dict[str, Any]:
    gate: SuppressionGate = request.app.state.gate
    now = time.time()
    out: dict[str, Any] = {}
    for register in Register:
        in_use = gate.register_in_use(register, now)
        until = in_use.fresh_until if in_use else None
        out[register.value] = (
            None
            if in_use is None
            else {
                "published": in_use.snapshot.published.isoformat(),
                "listed": len(in_use.snapshot.phone_hashes),
                "fresh_until": datetime.fromtimestamp(until, UTC).isoformat() if until else None,
                "fresh": in_use.fresh,
            }
        )
    return out
