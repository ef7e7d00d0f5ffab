"""Importing a national register into a large index without stalling the event loop.

Builds an in-memory index of N Swedish subjects with phone numbers (default 1,000,000), then
imports a NIX file listing every one of them the way a replica does — read and hash the file
in slices, check the refusal rules, fold the snapshot together chunk by chunk as the register
topic delivers it, and apply it to the index with the change feed recorded — while a stand-in
for the topic feed confirms the index every 20 ms and a sampler wakes every 50 ms. Printed:
the longest event-loop stall and the highest index age seen during the import, beside the
import's own time and a baseline measured in the same run: reading and hashing the same file
in one go, applying nothing. Kafka is left out: it adds I/O, not event-loop work.

    python -m benchmarks registers [--subjects 1000000]
"""

from __future__ import annotations

import asyncio
import gc
import io
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from samtykke.domain.catalog import load_catalog
from samtykke.domain.events import SubjectChanged
from samtykke.domain.identifiers import IdentifierHasher
from samtykke.domain.registers import (
    CHUNK_SIZE,
    Register,
    RegisterBook,
    RegisterFileReading,
    SnapshotAssembly,
    SnapshotHead,
    chunked,
    refusals,
)
from samtykke.domain.suppression import SuppressionRules
from samtykke.suppression.index import SuppressionIndex
from samtykke.suppression.register_apply import RegisterApplier
from samtykke.suppression.registers import count_dropped, read_file

KEY = b"benchmark-identifier-key"
CONFIRM_SECONDS = 0.02
SAMPLE_SECONDS = 0.05


@dataclass
class Samples:
    stalls: list[float] = field(default_factory=list)  # how late the sampler woke, seconds
    ages: list[float] = field(default_factory=list)  # now minus the feed stand-in's last confirmation


def build_index(subjects: int, hasher: IdentifierHasher) -> tuple[SuppressionIndex, bytes]:
    index = SuppressionIndex(SuppressionRules(load_catalog()), RegisterBook({"NIX": 60}))
    lines = []
    at = datetime.now(UTC)
    for n in range(subjects):
        national = f"070{n:07d}"
        phone = hasher("phone", f"+4670{n:07d}")
        event = SubjectChanged("e", str(uuid.uuid4()), "consumer", "SE", None, phone, None, None, False, 1, at)
        index.apply_subject(event, 0.0)
        lines.append(f"{national[:3]}-{national[3:6]} {national[6:8]} {national[8:]}\n")
    index.start_recording(time.time())  # caught up: a register change is recorded for the export
    gc.collect()
    gc.freeze()  # as the service does once its replay has caught up
    return index, "".join(lines).encode()


def baseline(content: bytes, hasher: IdentifierHasher) -> float:
    started = time.perf_counter()
    reading = RegisterFileReading(Register.NIX, hasher)
    for line in io.BytesIO(content):
        reading.feed(line)
    return time.perf_counter() - started


async def import_register(index: SuppressionIndex, content: bytes, hasher: IdentifierHasher) -> dict[str, float]:
    phases: dict[str, float] = {}
    started = time.perf_counter()
    reading = RegisterFileReading(Register.NIX, hasher)
    await read_file(io.BytesIO(content), reading, "benchmark")
    assert not refusals(reading, 0, await count_dropped(frozenset(), reading.hashes), 0.2)
    phases["read and check"] = time.perf_counter() - started
    mark = time.perf_counter()
    assembly = SnapshotAssembly()  # as the register feed folds the topic's chunks, one record per poll
    for n, batch in enumerate(chunked(reading.hashes, CHUNK_SIZE)):
        assembly.chunk(Register.NIX, "bench", n, batch)
        await asyncio.sleep(0)
    head = SnapshotHead(Register.NIX, "bench", datetime.now(UTC).date(), len(reading.hashes), n + 1)
    snapshot = assembly.complete(head)
    phases["assemble from chunks"] = time.perf_counter() - mark
    mark = time.perf_counter()
    phases["matched"] = await RegisterApplier(index).install(snapshot)
    phases["apply and record"] = time.perf_counter() - mark
    phases["import"] = time.perf_counter() - started
    return phases


async def measure(
    index: SuppressionIndex, content: bytes, hasher: IdentifierHasher
) -> tuple[dict[str, float], Samples]:
    samples, confirmed, done = Samples(), [time.time()], asyncio.Event()

    async def feed_stand_in() -> None:
        while not done.is_set():
            confirmed[0] = time.time()
            await asyncio.sleep(CONFIRM_SECONDS)

    async def sampler() -> None:
        while not done.is_set():
            due = time.perf_counter() + SAMPLE_SECONDS
            await asyncio.sleep(SAMPLE_SECONDS)
            samples.stalls.append(max(0.0, time.perf_counter() - due))
            samples.ages.append(time.time() - confirmed[0])

    tasks = [asyncio.create_task(feed_stand_in()), asyncio.create_task(sampler())]
    try:
        phases = await import_register(index, content, hasher)
    finally:
        done.set()
        await asyncio.gather(*tasks)
    return phases, samples


def main(subjects: int) -> str:
    hasher = IdentifierHasher(KEY)
    started = time.perf_counter()
    index, content = build_index(subjects, hasher)
    built = time.perf_counter() - started
    parse_only = baseline(content, hasher)
    phases, samples = asyncio.run(measure(index, content, hasher))
    assert index.changes is not None
    stalls = sorted(samples.stalls)
    p99 = stalls[int(0.99 * (len(stalls) - 1))] if stalls else 0.0
    rows = [
        f"register import into an index of {subjects:,} subjects (NIX file listing all of them; "
        f"index built in {built:.1f}s; in-process, no Kafka)",
        f"  baseline, same run: read + hash the file in one go, apply nothing   {parse_only:8.2f} s",
        f"  import, sliced: read + hash + rules                                {phases['read and check']:8.2f} s",
        f"                  fold {subjects // CHUNK_SIZE + 1:,} topic chunks                        "
        f"{phases['assemble from chunks']:8.2f} s",
        f"                  swap + record the change feed + count matches    {phases['apply and record']:8.2f} s",
        f"                  total                                            {phases['import']:8.2f} s "
        f"({phases['import'] / parse_only:.1f}x the baseline)",
        f"  matched subjects {int(phases['matched']):,}; change-feed entries recorded "
        f"{int(index.changes.cursor.split('.')[1]):,}",
        f"  event loop during the import ({len(stalls)} samples every {SAMPLE_SECONDS * 1000:.0f} ms): "
        f"max stall {max(stalls, default=0) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"median {statistics.median(stalls or [0]) * 1000:.1f} ms",
        f"  index age (feed confirming every {CONFIRM_SECONDS * 1000:.0f} ms): "
        f"max {max(samples.ages, default=0):.3f} s (target < 1 s)",
    ]
    return "\n".join(rows)
