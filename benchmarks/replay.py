"""Replay: how long the platform takes to rebuild every read model from a full topic history.

N events (one SubjectChanged per ten ConsentChanged) go straight onto a fresh topic pair; a
raw aiokafka consumer reads them all (the floor), then the three domains' rebuilds
(`samtykke projections rebuild DOMAIN`, as an operator runs them) and a suppression service
start together, and the clock runs until each is done: a rebuild when it has switched its
fresh tables in and exited, the suppression service when `/ready` answers.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.projections import bench_platform, raw_rate
from benchmarks.service_process import suppression_service
from benchmarks.synthetic import SyntheticHistory, SyntheticProducer
from benchmarks.watermarks import bench_watermarks
from samtykke.adapters.progress import Progress
from samtykke.adapters.settings import Settings
from samtykke.devstack.process import samtykke_command, settings_environment
from samtykke.projections.domains import DOMAINS, Domain


async def _produce(settings: Settings, events: int) -> int:
    history, producer = SyntheticHistory(), SyntheticProducer(settings, linger_ms=20)
    subjects = max(1, events // 11)
    await producer.start()
    with Progress(events, "producing the history") as progress:
        for _ in range(subjects):
            await producer.send(history.subject())
        for i in range(events - subjects):
            await producer.send(history.change())
            if i % 10_000 == 9_999:
                progress.advance(10_000)
        progress.advance(events - progress.done)
        await producer.stop()
    return events


async def _rebuilt(domain: Domain, settings: Settings, started: float) -> float:
    env = settings_environment(
        settings,
        (
            "kafka_bootstrap",
            "registry_url",
            "database_url",
            "topic_changes",
            "topic_subjects",
            "projection_group_prefix",
        ),
    )
    process = await asyncio.create_subprocess_exec(
        *samtykke_command("projections", "rebuild", domain.name),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, errors = await process.communicate()
    except BaseException:  # cancelled because another read model failed: leave no rebuild behind
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"rebuild of {domain.name} failed: {errors.decode()[-2000:]}")
    return time.perf_counter() - started


async def _suppression_ready(settings: Settings, started: float) -> float:
    topics = (settings.topic_changes, settings.topic_subjects)
    async with (
        bench_watermarks(settings, topics) as watermarks,
        suppression_service(topics, settings.suppression_port + 20, watermarks),
    ):
        return time.perf_counter() - started


async def replay(settings: Settings, events: int) -> dict[str, float]:
    """Seconds to catch up per read model (and `all`), beside the raw consumer reading the same."""
    async with bench_platform(settings) as bench:
        total = await _produce(bench, events)
        return await rebuild_every_read_model(bench, total)


async def rebuild_every_read_model(bench: Settings, total: int) -> dict[str, float]:
    """The raw read of the bench topics' `total` records, then every read model rebuilt from offset
    0 at once: seconds per read model, `all` (the slowest) and the raw read's."""
    raw_started = time.perf_counter()
    await raw_rate(bench, total)
    result = {"raw_aiokafka_read": time.perf_counter() - raw_started}
    print(f"raw aiokafka consumer read {total:,} events in {result['raw_aiokafka_read']:.1f} s", flush=True)
    started = time.perf_counter()
    names = [*DOMAINS, "suppression"]
    tasks = [
        asyncio.create_task(job)
        for job in (*(_rebuilt(d, bench, started) for d in DOMAINS.values()), _suppression_ready(bench, started))
    ]
    try:
        times = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    result |= dict(zip(names, times, strict=True))
    result["all"] = max(times)
    result["events"] = float(total)
    return result
