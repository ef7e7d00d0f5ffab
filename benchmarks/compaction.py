"""Compaction: what a downstream team replays from `consent.changes`, before and after the cleaner.

A history of N ConsentChanged events in which every consent changed `changes` times (N / changes
consents, `per_subject` per subject, keyed and partitioned as the relay does) goes onto a fresh
topic pair that is compacted but, like the real topic, keeps every record for the documentation
retention: nothing is cleaned yet. Measured on it: the topic's size on the broker's disk, its
record count, and the time to rebuild every read model from offset 0 (`samtykke projections
rebuild` of each domain and a suppression service start, together), beside a raw aiokafka read
of the same records.

Then the compaction lag drops to 0, each partition's active segment rolls (one more record of a
consent it already holds, so no new key), the cleaner runs, and the same measures are taken on what
it kept. Every domain's current-state table rebuilt from the compacted log must equal the one
rebuilt from the whole history (the customer-service timeline is shorter by design: it holds the
history the log still has).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from benchmarks.projections import bench_platform, end_offsets, raw_consumer
from benchmarks.replay import rebuild_every_read_model
from benchmarks.synthetic import KINDS, SyntheticHistory, SyntheticProducer
from samtykke.adapters.kafka import client_options
from samtykke.adapters.progress import Progress
from samtykke.adapters.settings import Settings
from samtykke.devstack.kafka_credentials import kafka_home
from samtykke.devstack.layout import StackLayout
from samtykke.domain.consent_keys import subject_partition
from samtykke.domain.events import ConsentChanged
from samtykke.projections.domains import DOMAINS

# what the log cleaner needs to run at once on the bench topic (the real one keeps the lag)
CLEAN_NOW = {"min.compaction.lag.ms": "0", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01"}
COMPACTION_TIMEOUT_SECONDS = 900.0


async def _produce(
    bench: Settings, events: int, changes: int, per_subject: int
) -> tuple[int, int, list[ConsentChanged]]:
    """`events` changes, each consent changed `changes` times in rounds; returns the subjects, the
    consents, and the last change produced to each partition (the latest of its consent)."""
    consents = max(1, events // changes)
    subjects = max(1, consents // per_subject)
    history, producer = SyntheticHistory(), SyntheticProducer(bench, linger_ms=20)
    await producer.start()
    keys = KINDS["consumer"][:per_subject]
    last: dict[int, ConsentChanged] = {}
    with Progress(subjects + consents * changes, "producing the history") as progress:
        for _ in range(subjects):
            await producer.send(history.subject())
        progress.advance(subjects)
        for _ in range(changes):  # round by round: each consent's earlier records are superseded later
            for subject_id in history.subjects:
                for purpose, channel in keys:
                    change = history.change_of(subject_id, purpose, channel)
                    await producer.send(change)
                last[subject_partition(subject_id, bench.topic_partitions)] = change
                progress.advance(len(keys))
        await producer.stop()
    return subjects, subjects * len(keys), list(last.values())


def _topic_bytes(data_dir: Path, topic: str) -> int:
    """The topic's log segments on the broker's disk (segments the cleaner replaced, `.deleted`, not)."""
    return sum(f.stat().st_size for d in data_dir.glob(f"{topic}-*") for f in d.glob("*.log"))


def _cleaned_to(data_dir: Path, topic: str) -> dict[int, int]:
    """The cleaner's checkpoint: per partition, the offset up to which the log is compacted."""
    checkpoint = data_dir / "cleaner-offset-checkpoint"
    cleaned: dict[int, int] = {}
    if checkpoint.exists():
        for line in checkpoint.read_text().splitlines()[2:]:
            name, partition, offset = line.rsplit(" ", 2)
            if name == topic:
                cleaned[int(partition)] = int(offset)
    return cleaned


async def _count(bench: Settings, topic: str) -> int:
    """Records left in `topic`, read from offset 0 to its end."""
    async with raw_consumer(bench, [topic], from_end=False) as consumer:
        ends = await consumer.end_offsets(consumer.assignment())
        seen = 0
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            seen += sum(len(records) for records in (await consumer.getmany(timeout_ms=200)).values())
        return seen


async def _compact(bench: Settings, latest: list[ConsentChanged], data_dir: Path) -> float:
    """Let the cleaner compact the changes topic at once; seconds until every partition is clean.
    `latest` holds each partition's last record: sent again (same event, same version: nothing
    changes for a reader), it rolls the partition's active segment so the cleaner may take it all."""
    topic = bench.topic_changes
    admin = AIOKafkaAdminClient(**client_options(bench))
    await admin.start()
    try:
        configs = {"cleanup.policy": "compact", **CLEAN_NOW}
        responses = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
        for response in responses:  # the broker answers per resource; aiokafka does not raise
            for code, message, *_ in response.resources:
                if code:
                    raise RuntimeError(f"altering {topic}'s configs: error {code} {message}")
    finally:
        await admin.close()
    started = time.perf_counter()
    await asyncio.sleep(1.0)  # the active segments are now older than segment.ms: the next record rolls them
    producer = SyntheticProducer(bench, linger_ms=0)
    await producer.start()
    for change in latest:
        await producer.send(change)
    await producer.stop()
    async with raw_consumer(bench, [topic], from_end=False) as consumer:
        ends = {partition: end for (_, partition), end in (await end_offsets(consumer)).items()}
    while time.perf_counter() - started < COMPACTION_TIMEOUT_SECONDS:
        cleaned = _cleaned_to(data_dir, topic)
        if all(cleaned.get(p, 0) >= end - 1 for p, end in ends.items()):
            return time.perf_counter() - started
        await asyncio.sleep(1.0)
    raise TimeoutError(f"the cleaner did not compact {topic} within {COMPACTION_TIMEOUT_SECONDS:.0f} s")


# what each domain's current-state table holds from the events (not when a row was applied)
STATE_COLUMNS = "purpose, channel, status, version, occurred_at, valid_until"
IDS = {"analytics": "pseudonym"}


async def _current_state(bench: Settings) -> dict[str, tuple[int, str]]:
    """Each domain's current-state table: (rows, digest of what the events put in every row)."""
    connection = await asyncpg.connect(bench.database_url)
    try:
        state: dict[str, tuple[int, str]] = {}
        for name in DOMAINS:
            columns = f"{IDS.get(name, 'subject_id')}, {STATE_COLUMNS}"
            row = await connection.fetchrow(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(r, '|' ORDER BY r), '')) AS digest "
                f"FROM (SELECT row({columns})::text AS r FROM {name}.consents) t"
            )
            state[name] = (row["n"], row["digest"])
        return state
    finally:
        await connection.close()


@dataclass
class Compaction:
    changes: int  # ConsentChanged events in the history
    subjects: int
    consents: int
    cleaner_seconds: float
    uncompacted: dict[str, float]  # records, bytes, raw_aiokafka_read, one entry per read model, all
    compacted: dict[str, float]
    equal: dict[str, bool]  # per domain: its current-state table the same from either log


async def run(settings: Settings, events: int, changes: int, per_subject: int) -> Compaction:
    data_dir = kafka_home(StackLayout.from_settings(settings)) / "data"
    async with bench_platform(settings) as bench:
        subjects, consents, latest = await _produce(bench, events, changes, per_subject)
        measures: list[dict[str, float]] = []
        states: list[dict[str, tuple[int, str]]] = []
        cleaner_seconds = 0.0
        for step in ("uncompacted", "compacted"):
            if step == "compacted":
                cleaner_seconds = await _compact(bench, latest, data_dir)
            await asyncio.sleep(2.0)  # the broker flushed what it acknowledged: the sizes are on disk
            records = await _count(bench, bench.topic_changes)
            size = _topic_bytes(data_dir, bench.topic_changes)
            print(f"{step}: {records:,} records, {size / 2**20:,.1f} MiB on disk", flush=True)
            measure = {"records": float(records), "bytes": float(size)}
            measures.append(measure | await rebuild_every_read_model(bench, records + subjects))
            states.append(await _current_state(bench))
    return Compaction(
        changes=consents * changes,
        subjects=subjects,
        consents=consents,
        cleaner_seconds=cleaner_seconds,
        uncompacted=measures[0],
        compacted=measures[1],
        equal={name: states[0][name] == states[1][name] for name in DOMAINS},
    )


def report(result: Compaction) -> str:
    before, after = result.uncompacted, result.compacted
    rows = [
        ("records on consent.changes", f"{before['records']:,.0f}", f"{after['records']:,.0f}"),
        ("size on disk (MiB)", f"{before['bytes'] / 2**20:,.1f}", f"{after['bytes'] / 2**20:,.1f}"),
        ("raw aiokafka read (s)", f"{before['raw_aiokafka_read']:.1f}", f"{after['raw_aiokafka_read']:.1f}"),
        *((f"rebuild {name} (s)", f"{before[name]:.1f}", f"{after[name]:.1f}") for name in (*DOMAINS, "suppression")),
        ("every read model (s)", f"{before['all']:.1f}", f"{after['all']:.1f}"),
        (
            "every read model / raw read",
            f"{before['all'] / before['raw_aiokafka_read']:.0f}x",
            f"{after['all'] / after['raw_aiokafka_read']:.0f}x",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(
        [
            f"{result.changes:,} changes: {result.consents:,} consents of {result.subjects:,} subjects, each "
            f"changed {result.changes // result.consents} times (+ {result.subjects:,} subject records); "
            f"the cleaner took {result.cleaner_seconds:.1f} s",
            f"{'':{width}}  {'uncompacted':>12}  {'compacted':>12}",
            *(f"{name:{width}}  {a:>12}  {b:>12}" for name, a, b in rows),
            "current-state tables the same from either log: "
            + ", ".join(f"{name} {'yes' if same else 'NO'}" for name, same in result.equal.items()),
        ]
    )


def main(settings: Settings, events: int, changes: int, per_subject: int) -> int:
    result = asyncio.run(run(settings, events, changes, per_subject))
    print(report(result))
    return 0 if all(result.equal.values()) else 1
