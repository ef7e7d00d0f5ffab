"""National register import: a register file becomes a snapshot of keyed phone hashes, shared by
every replica through the register topic.

File format (all three registers): UTF-8 text (a byte-order mark is fine), one phone number per
line, E.164 (`+46701234567`) or the register country's national form (`070-123 45 67` for NIX);
blank lines and lines starting with `#` are skipped. The publication date comes with the upload.
Numbers are hashed as they are read and never kept.

The request reads and checks the whole file (in slices of a few milliseconds, so checks keep
being answered) and refuses a suspicious snapshot with 422 naming the rule — undecodable, empty,
mostly invalid, or dropping more than `register_max_drop_share` of the list in use — unless
`force=true`. An accepted snapshot is published once to the register topic and the response is
202 with a job; the job is done when this replica has applied the snapshot from the topic, as
every other replica does.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import uuid
from collections.abc import Set
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import IO, Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from samtykke.adapters.auth import Principal
from samtykke.adapters.avro import AvroDecoder, AvroEncoder, RegistryError, SchemaRegistry, load_schema
from samtykke.adapters.kafka import client_options
from samtykke.adapters.problems import problem
from samtykke.adapters.settings import Settings
from samtykke.domain.registers import Register, RegisterFileReading, refusals

from .auth import require
from .errors import RequestProblems
from .gate import SuppressionGate
from .index import SuppressionIndex
from .metrics import SuppressionMetrics
from .register_apply import SLICE_SECONDS, RegisterApplier
from .register_feed import RegisterFeed, RegisterMetrics
from .register_topic import SCHEMA, RegisterPublisher
from .schemas import ERROR_RESPONSES, RegisterImportOut

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/registers", responses=ERROR_RESPONSES, tags=["registers"])
APPLY_TIMEOUT_SECONDS = 600.0
_PROGRESS_EVERY = 100_000


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
    snapshot_id: str | None = None
    forced: bool = False
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
            "snapshot_id": self.snapshot_id,
            "forced": self.forced,
            "error": self.error,
        }

    async def wait_applied(self, feed: RegisterFeed) -> None:
        """Done once this replica applied the snapshot from the topic (as every replica does)."""
        assert self.snapshot_id is not None
        try:
            self.matched = await feed.applied(self.snapshot_id, APPLY_TIMEOUT_SECONDS)
            self.state = "done"
        except LookupError as exc:
            self.state, self.error = "failed", str(exc)
            log.error("register %s import %s failed: %s", self.register, self.job_id, exc)


async def read_file(source: IO[bytes], reading: RegisterFileReading, job_id: str) -> None:
    """Read `source` into `reading`, yielding to the event loop every few milliseconds."""
    started = slice_started = time.perf_counter()
    for n, raw in enumerate(source, start=1):
        if not reading.feed(raw):
            return
        if n % 256 == 0 and time.perf_counter() - slice_started > SLICE_SECONDS:
            await asyncio.sleep(0)
            slice_started = time.perf_counter()
        if n % _PROGRESS_EVERY == 0:
            rate = n / (time.perf_counter() - started)
            log.info(
                "register %s import %s: %d rows read, %d invalid, %.0f rows/s",
                reading.register,
                job_id,
                reading.read,
                reading.invalid,
                rate,
            )


async def count_dropped(current: Set[str], listed: Set[str]) -> int:
    """How many numbers listed now the new snapshot leaves out, in slices."""
    dropped, slice_started = 0, time.perf_counter()
    for n, hashed in enumerate(current, start=1):
        dropped += hashed not in listed
        if n % 4096 == 0 and time.perf_counter() - slice_started > SLICE_SECONDS:
            await asyncio.sleep(0)
            slice_started = time.perf_counter()
    return dropped


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
    summary="Import a register file (text/plain, one phone number per line) for every replica",
    description="The file is checked first: an undecodable (not UTF-8), empty or mostly invalid file, or one "
    "that would drop more than the set share of the numbers listed now, is refused with 422 naming the rule "
    "(`register:<name>: ...`) and the snapshot in use stays, unless `force=true`. An accepted file is "
    "published to the register topic; the job is done when this replica has applied it.",
    openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def start_import(
    request: Request,
    register: Annotated[Register, Path()],
    published: Annotated[date, Query(description="The register file's publication date")],
    force: Annotated[bool, Query(description="Publish even if a refusal rule holds (registers:import)")] = False,
    _: Principal = Depends(require("registers:import")),
) -> JSONResponse:
    state = request.app.state
    gate: SuppressionGate = state.gate
    feed: RegisterFeed = state.register_feed
    _check_published(gate, register, published)
    if not feed.caught_up.is_set():  # the list in use is not known yet: nothing to compare against
        return problem(503, "registers_not_ready", [("register", "register topic not read yet")], {"Retry-After": "1"})
    job = RegisterImport(register, published)
    reading = RegisterFileReading(register, state.parser.keyed)
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as spool:
        async for chunk in request.stream():
            spool.write(chunk)
        spool.seek(0)
        await read_file(spool, reading, job.job_id)
    in_use = gate.register_in_use(register, time.time())
    current = in_use.snapshot.phone_hashes if in_use else frozenset[str]()
    problems = refusals(reading, len(current), await count_dropped(current, reading.hashes), state.register_max_drop)
    metrics: RegisterMetrics = state.register_metrics
    if problems and not force:
        metrics.imports.labels(register.value, "refused").inc()
        log.warning("register %s import refused: %s", register, "; ".join(problems))
        raise RequestProblems([("body", rule) for rule in problems], error="register_refused")
    if problems:
        log.warning("register %s import forced over: %s", register, "; ".join(problems))
    job.read, job.invalid, job.invalid_lines, job.listed = (
        reading.read,
        reading.invalid,
        reading.invalid_lines,
        len(reading.hashes),
    )
    publisher: RegisterPublisher = state.register_publisher
    try:
        head = await publisher.publish(register, published, reading.hashes, bool(problems), feed.heads.get(register))
    except (KafkaError, RegistryError) as exc:
        log.error("register %s import %s not published: %s", register, job.job_id, exc)
        return problem(503, "register_topic_unavailable", [("register", f"not published: {type(exc).__name__}")])
    job.snapshot_id, job.forced = head.snapshot_id, head.forced
    metrics.imports.labels(register.value, "forced" if head.forced else "published").inc()
    suppression_metrics: SuppressionMetrics = state.metrics
    suppression_metrics.register_rows.labels(register.value, "valid").inc(reading.read - reading.invalid)
    suppression_metrics.register_rows.labels(register.value, "invalid").inc(reading.invalid)
    jobs: dict[str, RegisterImport] = state.register_jobs
    jobs[job.job_id] = job
    task = asyncio.create_task(job.wait_applied(feed))
    state.background.add(task)
    task.add_done_callback(state.background.discard)
    return JSONResponse(job.view(), status_code=202, headers={"Location": f"/v1/registers/imports/{job.job_id}"})


@router.get(
    "/imports/{job_id}",
    response_model=RegisterImportOut,
    summary="Progress and counts of an import job",
    responses={404: {"description": "Unknown job"}},
)
async def import_status(
    request: Request, job_id: Annotated[str, Path(max_length=64)], _: Principal = Depends(require("registers:import"))
) -> JSONResponse:
    job = request.app.state.register_jobs.get(job_id)
    if job is None:
        return JSONResponse({"error": "not_found", "problems": [{"field": "job_id", "rule": "no such job"}]}, 404)
    return JSONResponse(job.view())


@router.get("", summary="The register snapshots in use and their freshness")
async def registers(request: Request, _: Principal = Depends(require("suppression:check"))) -> dict[str, Any]:
    gate: SuppressionGate = request.app.state.gate
    feed: RegisterFeed = request.app.state.register_feed
    now = time.time()
    out: dict[str, Any] = {}
    for register in Register:
        in_use = gate.register_in_use(register, now)
        until = in_use.fresh_until if in_use else None
        head = feed.heads.get(register)
        out[register.value] = (
            None
            if in_use is None
            else {
                "published": in_use.snapshot.published.isoformat(),
                "listed": len(in_use.snapshot.phone_hashes),
                "fresh_until": datetime.fromtimestamp(until, UTC).isoformat() if until else None,
                "fresh": in_use.fresh,
                "snapshot_id": head.snapshot_id if head else None,
                "forced": head.forced if head else None,
            }
        )
    return out


def attach(app: Any, settings: Settings, index: SuppressionIndex, schema_registry: SchemaRegistry) -> RegisterFeed:
    """Wire the register topic into the app (part of the composition root): its feed, publisher and metrics."""
    schema = load_schema(settings.schema_dir, SCHEMA)
    metrics = RegisterMetrics(app.state.metrics.registry)
    kafka = client_options(settings)
    feed = RegisterFeed(
        kafka,
        settings.topic_registers,
        AvroDecoder(schema_registry, schema),
        RegisterApplier(index),
        metrics,
    )
    app.state.register_feed, app.state.register_metrics = feed, metrics
    app.state.register_publisher = RegisterPublisher(
        kafka,
        settings.topic_registers,
        AvroEncoder(schema_registry, settings.topic_registers, schema),
    )
    app.state.register_max_drop = settings.register_max_drop_share
    return feed
