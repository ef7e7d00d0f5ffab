"""Bulk import as an API job: `POST /v1/imports` takes a CRM file (CSV or NDJSON) and answers 202 with
a job; the import runs in the background of this replica, the same code path as `samtykke consent
import`. `GET /v1/imports/{id}` is its progress (from the job row, so any replica answers) and
`GET /v1/imports/{id}/rejects` the rejected rows (row, field, rule).

The body is spooled to a temporary file first (its digest identifies the file: posting it again
after a replica died resumes after the last committed batch, and after a finished job adds nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from samtykke.adapters.auth import Principal, require
from samtykke.adapters.problems import problem

from . import imports_store
from .imports import FileRefused, ImportFormat, read_rows
from .imports_jobs import ConsentImporter, FileFacts
from .imports_store import IMPORT_LOCK, ImportBusy, ImportJob
from .schemas import ERROR_RESPONSES

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/imports", responses=ERROR_RESPONSES, tags=["imports"])
MEDIA_TYPES = {
    "text/csv": ImportFormat.CSV,
    "application/x-ndjson": ImportFormat.NDJSON,
    "application/jsonl": ImportFormat.NDJSON,
}
# smaller batches than the command line's: a batch's decisions are worked out on the event loop the
# service's requests and relay share, so its size bounds how long they wait (about 0.1 s)
JOB_BATCH = 2_000
JobId = Annotated[UUID, PathParam(description="The import job's id")]
# a job whose run holds no lock any more: its replica stopped or died; posting the file again resumes it
HELD = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid "
    "AND objid = hashtext($2)::oid AND objsubid = 2)"
)


class ImportJobOut(BaseModel):
    job_id: str
    file_name: str
    format: str
    state: Literal["running", "done", "failed", "interrupted"] = Field(
        description="`interrupted`: no run holds the job (its replica stopped); post the same file to resume it"
    )
    last_row: int = Field(description="The last row committed (its line, the header being 1)")
    imported: int = Field(description="Decisions recorded")
    skipped: int = Field(description="Rows whose decision was already in the ledger")
    rejected: int = Field(description="Rows rejected; `GET /v1/imports/{job_id}/rejects` names them")
    client_id: str | None
    error: str | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class RejectOut(BaseModel):
    row: int
    field: str
    rule: str


class RejectsOut(BaseModel):
    job_id: str
    rejects: list[RejectOut] = Field(description="Row number, column and rule; never the value")


async def _view(request: Request, job: ImportJob) -> dict[str, object]:
    pool = request.app.state.pool
    if job.state == "running" and not await pool.fetchval(HELD, IMPORT_LOCK, job.digest):
        # a run sets its job done before it lets go of the lock: one that finished since the job was
        # read shows done now, and a job still running without a lock has no run
        job = await imports_store.job(pool, job.job_id) or job
        if job.state == "running":
            job = replace(job, state="interrupted")
    view = job.view()
    view.pop("digest")
    return view


def _format(request: Request, given: ImportFormat | None) -> ImportFormat | None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return given or MEDIA_TYPES.get(media)


async def _spool(request: Request) -> Path:
    handle, name = tempfile.mkstemp(prefix="samtykke-import-")
    with os.fdopen(handle, "wb") as out:
        async for chunk in request.stream():
            out.write(chunk)
    return Path(name)


def _check_header(path: Path, fmt: ImportFormat) -> None:
    """Refuse a file whose header cannot be read before a job is opened for it."""
    with path.open("rb") as source:
        next(read_rows(source, fmt), None)


@router.post(
    "",
    status_code=202,
    response_model=ImportJobOut,
    summary="Import a CRM file of decisions (CSV or NDJSON, docs/import.md) as a job",
    description="The format comes from `format` or the Content-Type (`text/csv`, `application/x-ndjson`). "
    "Answers 202 with the job and its Location; a header that cannot be read is a 422 naming it, a file "
    "being imported right now a 409. Posting a file again resumes an unfinished job, or adds nothing.",
    responses={409: {"description": "The same file is being imported right now"}},
    openapi_extra={
        "requestBody": {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            }
        }
    },
)
async def start_import(
    request: Request,
    fmt: Annotated[ImportFormat | None, Query(alias="format", description="csv or ndjson")] = None,
    name: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00]+$")] = None,
    who: Principal = Depends(require("consent:import")),
) -> JSONResponse:
    found = _format(request, fmt)
    if found is None:
        rule = "text/csv or application/x-ndjson, or give format=csv|ndjson"
        return problem(415, "unsupported_media_type", [("Content-Type", rule)])
    path = await _spool(request)
    try:
        await asyncio.to_thread(_check_header, path, found)
    except FileRefused as refused:
        path.unlink(missing_ok=True)
        return problem(422, "file_refused", [(refused.field, refused.rule)])
    opened: asyncio.Future[ImportJob] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_run(request.app, path, found, name or "upload", who.client_id, opened))
    request.app.state.import_tasks.add(task)
    task.add_done_callback(request.app.state.import_tasks.discard)
    waiting: list[asyncio.Future[Any]] = [opened, task]
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if not opened.done():
        if isinstance(task.exception(), ImportBusy):
            return problem(409, "import_running", [("body", "this file is being imported right now")])
        return problem(503, "import_not_started", [("body", "the job could not be opened; try again")])
    job = opened.result()
    return JSONResponse(await _view(request, job), 202, headers={"Location": f"/v1/imports/{job.job_id}"})


async def _run(
    app: FastAPI, path: Path, fmt: ImportFormat, name: str, client_id: str | None, opened: asyncio.Future[ImportJob]
) -> None:
    importer: ConsentImporter = app.state.importer

    def started(job: ImportJob, _: FileFacts) -> None:
        if not opened.done():  # the request that posted the file may be gone
            opened.set_result(job)

    try:
        async with app.state.pool.acquire() as conn:
            summary = await importer.run(
                conn, path, fmt, file_name=name, client_id=client_id, batch_size=JOB_BATCH, started=started
            )
        log.info("%s", summary.line())
    except ImportBusy:
        raise
    except Exception:  # the job row says failed, with the error; the service goes on
        log.exception("import job from %s failed", client_id)
    finally:
        path.unlink(missing_ok=True)


@router.get("/{job_id}", response_model=ImportJobOut, summary="An import job's progress and counts")
async def import_status(
    request: Request, job_id: JobId, _: Principal = Depends(require("consent:import"))
) -> JSONResponse:
    job = await imports_store.job(request.app.state.pool, str(job_id))
    if job is None:
        return problem(404, "not_found", [("job_id", "no import job with this id")])
    return JSONResponse(await _view(request, job))


@router.get("/{job_id}/rejects", response_model=RejectsOut, summary="An import job's rejected rows")
async def import_rejects(
    request: Request, job_id: JobId, _: Principal = Depends(require("consent:import"))
) -> JSONResponse:
    pool = request.app.state.pool
    if await imports_store.job(pool, str(job_id)) is None:
        return problem(404, "not_found", [("job_id", "no import job with this id")])
    found = await imports_store.rejects(pool, str(job_id))
    return JSONResponse({"job_id": str(job_id), "rejects": [r._asdict() for r in found]})


async def stop_jobs(app: FastAPI) -> None:
    """At shutdown: the running jobs stop after their last committed batch (posting the file resumes)."""
    tasks = list(app.state.import_tasks)
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
