"""Day one at an operator: a CRM export imported, then every domain and the gate catching up.

On a fresh platform (`benchmarks.platform`: consent service, three projectors, suppression service,
each its own process on a fresh database and topic pair):

1. a CSV of `subjects` consumers with `per_subject` decisions each (phone numbers, original dates,
   sources and notice versions), written once;
2. the baseline: PostgreSQL's own `COPY` of the same file into a plain table of text columns;
3. `samtykke consent import FILE`, as an operator runs it: decisions/s, and its CPU;
4. from the import's end until every domain's stored positions and the gate's index have reached the
   end of both topics (after the relay emptied the outbox): the catch-up, with CPU per process;
5. the baseline for the catch-up: a raw aiokafka read of the same records.
"""

from __future__ import annotations

import asyncio
import csv
import os
import resource
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from benchmarks.platform import CARRIED, RunningPlatform, running_platform
from benchmarks.procstat import ProcessMeter
from benchmarks.projections import end_offsets, raw_consumer, raw_rate
from samtykke.adapters.settings import Settings
from samtykke.devstack.process import samtykke_command, settings_environment
from samtykke.domain.catalog import load_catalog
from samtykke.domain.model import SubjectKind
from samtykke.projections.domains import DOMAINS

COLUMNS = [
    *("subject_ref", "kind", "country", "account_id", "phone", "email", "national_id"),
    *("purpose", "channel", "status", "occurred_at", "source", "notice_version", "evidence"),
]
CATCH_UP_TIMEOUT_SECONDS = 1800.0
_CATALOG = load_catalog()
_KEYS = [
    (p.code, c.value if c else "")
    for p in _CATALOG.purposes.values()
    if p.decidable and p.applies_to(SubjectKind.CONSUMER)
    for c in (p.channels[SubjectKind.CONSUMER] if p.per_channel else (None,))
]
_PHONE = {"DK": "+45{:08d}", "SE": "+467{:08d}", "NO": "+47{:08d}"}


def write_file(path: Path, subjects: int, per_subject: int) -> int:
    """The CRM export: a subject's rows together, in the order they occurred; returns the rows."""
    start = datetime(2023, 1, 1, tzinfo=UTC)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for n in range(subjects):
            country = ("DK", "SE", "NO")[n % 3]
            at = start + timedelta(seconds=n * 17 % 40_000_000)
            for k in range(per_subject):
                purpose, channel = _KEYS[(n + k) % len(_KEYS)]
                writer.writerow(
                    (
                        f"CRM-{n:08d}",
                        "consumer",
                        country,
                        "",
                        _PHONE[country].format(20_000_000 + n),
                        "",
                        "",
                        purpose,
                        channel,
                        ("granted", "granted", "withdrawn")[(n + k) % 3],
                        (at + timedelta(days=k)).isoformat(),
                        "import",
                        "crm-notice-2023",
                        "",
                    )
                )
    return subjects * per_subject


async def raw_copy(settings: Settings, path: Path) -> float:
    """Seconds for PostgreSQL to COPY the file into a plain table of text columns."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute("CREATE TABLE bench_raw_copy (" + ", ".join(f"{c} text" for c in COLUMNS) + ")")
        started = time.perf_counter()
        await connection.copy_to_table("bench_raw_copy", source=str(path), format="csv", header=True)
        return time.perf_counter() - started
    finally:
        await connection.execute("DROP TABLE IF EXISTS bench_raw_copy")
        await connection.close()


async def run_import(platform: RunningPlatform, path: Path) -> tuple[float, float, str]:
    """`samtykke consent import FILE`: (wall seconds, CPU seconds, its summary line)."""
    env = dict(os.environ) | settings_environment(platform.settings, CARRIED)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *samtykke_command("consent", "import", str(path)),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise RuntimeError(f"import failed ({process.returncode}): {err.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = next((line for line in out.decode().splitlines() if "decisions/s" in line), "")
    return seconds, cpu, summary


async def _caught_up(
    platform: RunningPlatform, http: httpx.AsyncClient, db: asyncpg.Connection, topics: AIOKafkaConsumer
) -> dict[str, bool]:
    """Which read models have applied everything on the topics (`relay`: the outbox is empty); none
    while the outbox holds rows. `topics`: a consumer assigned every partition, for their ends."""
    outbox = (await http.get(f"{platform.consent_url}/v1/outbox")).json()
    if outbox.get("backlog", 1):
        return {}
    ends = await end_offsets(topics)
    done: dict[str, bool] = {"relay (outbox empty)": True}
    for name in DOMAINS:
        rows = await db.fetch(f"SELECT topic, partition, last_offset FROM {name}.consumer_offsets")
        stored = {(r["topic"], r["partition"]): r["last_offset"] + 1 for r in rows}
        done[name] = all(stored.get(tp, 0) >= end for tp, end in ends.items() if end)
    ready = (await http.get(f"{platform.suppression_url}/ready")).json()
    position = {(t, int(p)): o for t, parts in (ready.get("position") or {}).items() for p, o in parts.items()}
    done["suppression"] = all(position.get(tp, 0) >= end for tp, end in ends.items() if end)
    return done


async def catch_up(platform: RunningPlatform, since: float) -> dict[str, float]:
    """Seconds from `since` (the import's end) until each read model has applied every record."""
    reached: dict[str, float] = {}
    headers = {"Authorization": "Bearer dev-admin"}
    settings = platform.settings
    db = await asyncpg.connect(settings.database_url)
    try:
        async with (
            httpx.AsyncClient(headers=headers, timeout=10) as http,
            raw_consumer(settings, [settings.topic_changes, settings.topic_subjects], from_end=True) as topics,
        ):
            while time.perf_counter() - since < CATCH_UP_TIMEOUT_SECONDS:
                for name, done in (await _caught_up(platform, http, db, topics)).items():
                    if done and name not in reached:
                        reached[name] = time.perf_counter() - since
                if len(reached) == len(DOMAINS) + 2:
                    return reached
                await asyncio.sleep(0.25)
    finally:
        await db.close()
    raise TimeoutError(f"not caught up within {CATCH_UP_TIMEOUT_SECONDS:.0f} s: only {sorted(reached)}")


@dataclass
class ImportBench:
    decisions: int
    raw_copy_seconds: float
    import_seconds: float
    import_cpu_seconds: float
    summary: str
    catch_up: dict[str, float]
    records: int
    raw_read_seconds: float
    cpu_ms_per_change: dict[str, float]


async def run(settings: Settings, subjects: int, per_subject: int, out_dir: Path) -> ImportBench:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"import-{subjects}x{per_subject}.csv"
    decisions = write_file(path, subjects, per_subject)
    print(f"wrote {decisions:,} decisions of {subjects:,} subjects to {path}", flush=True)
    async with running_platform(settings, str(out_dir / "logs")) as platform:
        copy_seconds = await raw_copy(platform.settings, path)
        print(f"raw COPY: {copy_seconds:.1f} s", flush=True)
        meter = ProcessMeter(dict(platform.pids))
        meter.start()
        metered = time.monotonic()
        seconds, cpu, summary = await run_import(platform, path)
        print(f"import: {seconds:.1f} s; {summary}", flush=True)
        reached = await catch_up(platform, time.perf_counter())
        usage = meter.stop()
        elapsed = time.monotonic() - metered
        topics = [platform.settings.topic_changes, platform.settings.topic_subjects]
        async with raw_consumer(platform.settings, topics, from_end=True) as consumer:
            records = sum((await end_offsets(consumer)).values())
        raw_started = time.perf_counter()
        await raw_rate(platform.settings, records)
        raw_seconds = time.perf_counter() - raw_started
    per_change = {name: u["cpu_percent"] / 100 * elapsed * 1000 / decisions for name, u in usage.items()}
    per_change["import"] = cpu * 1000 / decisions
    return ImportBench(decisions, copy_seconds, seconds, cpu, summary, reached, records, raw_seconds, per_change)


def report(result: ImportBench) -> str:
    rate = result.decisions / result.import_seconds
    raw = result.decisions / result.raw_copy_seconds
    slowest = max(t for name, t in result.catch_up.items() if name in (*DOMAINS, "suppression"))
    lines = [
        f"{result.decisions:,} decisions imported",
        f"  samtykke consent import      {result.import_seconds:8.1f} s  {rate:>10,.0f} decisions/s  {rate / raw:.2f}x",
        f"  raw COPY of the same file    {result.raw_copy_seconds:8.1f} s  {raw:>10,.0f} rows/s       (baseline)",
        f"caught up after the import's end ({result.records:,} records on the topics)",
        *(f"  {name:<27}  {seconds:8.1f} s" for name, seconds in result.catch_up.items()),
        f"  every domain and the gate    {slowest:8.1f} s",
        f"  raw aiokafka read            {result.raw_read_seconds:8.1f} s  (baseline; "
        f"{slowest / max(result.raw_read_seconds, 1e-9):.0f}x)",
        "CPU milliseconds per decision, import start to catch-up",
        *(f"  {name:<27}  {ms:8.3f}" for name, ms in result.cpu_ms_per_change.items()),
        f"  all                          {sum(result.cpu_ms_per_change.values()):8.3f}",
    ]
    return "\n".join(lines)


def main(settings: Settings, subjects: int, per_subject: int, out_dir: Path) -> int:
    print(report(asyncio.run(run(settings, subjects, per_subject, out_dir))))
    return 0
