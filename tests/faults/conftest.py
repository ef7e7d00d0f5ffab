"""Fixtures of the fault matrix: one stack and platform of its own for the whole package (started
once, stopped after the last row), restored to healthy before every row; and the table of times
printed at the end of the session, whatever the output capture.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import pytest

from tests.integration.projections.history import RandomHistory, population
from tests.integration.projections.oracle import expected, ledger

from .harness import MAX_LAG_SECONDS, PROJECTORS, FaultPlatform, fault_settings
from .row import Row
from .watch import RESULTS, Consent, GateWatch, RowRecord, convergence_problems

SEED = 7


def in_own_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine from a synchronous fixture, in a thread with its own event loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def seed(platform: FaultPlatform) -> None:
    """A varied history (consumers, businesses, employees; grants, withdrawals, revocations, lapsed
    grants, uses, an erasure) so every compared table has rows; then wait until it is everywhere."""
    consent = Consent(platform.consent_urls["consent"])
    try:
        rng = random.Random(SEED)
        history = RandomHistory(consent.client, await population(consent.client, rng, 6, 2, 3), seed=SEED)
        await history.decide(40)
        await history.lifecycle(erasures=1)
    finally:
        await consent.aclose()
    conn = await platform.owner()
    try:
        changes, subjects = await ledger(conn)
    finally:
        await conn.close()
    key = platform.settings.analytics_pseudonym_key.encode()
    for domain in PROJECTORS:  # no comparison of a row is vacuous
        empty = [table for table, rows in expected(domain, changes, subjects, key).items() if not rows]
        assert not empty, f"the seeded history leaves {domain} tables {empty} empty"
    deadline = time.monotonic() + 120
    while problems := await convergence_problems(platform, GateWatch({})):
        assert time.monotonic() < deadline, f"the seeded history never converged: {problems[:10]}"
        await asyncio.sleep(0.5)


@pytest.fixture(scope="package")
def fault_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultPlatform]:
    settings = fault_settings(tmp_path_factory.mktemp("faults") / "state")
    platform = FaultPlatform(settings, report=lambda line: print(f"faults: {line}", flush=True))
    began = time.monotonic()
    try:
        platform.stack_up()
        platform.start_services()
        in_own_loop(platform.start_replica("consent-2"))
        in_own_loop(platform.start_replica("suppression-2"))
        in_own_loop(seed(platform))
        print(f"faults: stack, platform and seed ready in {time.monotonic() - began:.1f}s (max lag {MAX_LAG_SECONDS}s)")
        yield platform
    finally:
        began = time.monotonic()
        platform.shutdown()
        print(f"faults: stopped in {time.monotonic() - began:.1f}s")


@pytest.fixture
async def row(fault_platform: FaultPlatform, request: pytest.FixtureRequest) -> AsyncIterator[Row]:
    """A row on a healthy platform, its gate watch running; the row's record joins the table."""
    await fault_platform.restore()
    doc = (request.function.__doc__ or request.node.name).strip().splitlines()[0]
    record = RowRecord(doc, request.node.nodeid)
    RESULTS.append(record)
    running = Row(fault_platform, record)
    try:
        async with running.watch:
            yield running
    finally:
        fault_platform.resume_all()  # a failed row must not leave a process stopped
        running.finish()
        await running.aclose()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for record in RESULTS:
        if record.nodeid != report.nodeid:
            continue
        if hasattr(report, "wasxfail"):
            record.outcome = "xfail" if report.skipped else "XPASS"
        elif report.when == "call" or report.failed:
            record.outcome = report.outcome


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    write = terminalreporter.write_line
    terminalreporter.write_sep("=", f"fault matrix (max lag {MAX_LAG_SECONDS:.0f}s, bound {MAX_LAG_SECONDS + 1:.0f}s)")
    header = f"{'row':<52} {'blocked after':>13} {'first as':<10} {'converged after':>15} {'answers':>7}"
    write(f"{header} {'late allowed':>12}  outcome")
    for r in RESULTS:
        notes = [r.note] if r.note else []
        if r.restarted:
            notes.append(f"exited, started again: {r.restarted}")
        write(
            f"{r.row[:52]:<52} {seconds(r.blocked_after):>13} {r.first_reason:<10} {seconds(r.converged_after):>15} "
            f"{r.answers:>7} {r.violations:>12}  {r.outcome}  {'; '.join(notes)}".rstrip()
        )
    write("blocked after: commit (201) of a withdrawal -> the slowest replica's first blocked answer;")
    write("converged after: recovery -> projections, index and every replica equal the recomputation from the ledger")
