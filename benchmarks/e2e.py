"""`samtykke bench e2e`: the whole platform end to end, beside the floor Kafka and PostgreSQL set.

For each rate: consent changes through the consent API at that rate for a fixed time (open
loop), then per change the time from its commit to its row in each domain table and to the
suppression decision flipping (see observe.py); CPU and resident memory per process while the
load ran; then the floor (floor.py) at the same rate. `--saturation` walks the rates upwards and
stops at the first whose p99 exceeds one second (or that the platform cannot keep up with);
`--replay N` times rebuilding every read model from N events. Results go to a JSON file and a
PNG chart under .state/bench/.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform as host
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from samtykke import devstack
from samtykke.adapters.settings import Settings

from .drive import KEYS, pool_size, run_step, subject_pool
from .floor import floor
from .observe import DESTINATIONS, DOMAIN_TABLES, SuppressionFeed, arrivals, relay_latencies
from .percentiles import percentile
from .platform import RunningPlatform, running_platform
from .procstat import ProcessMeter
from .replay import replay

P99_LIMIT_MS = 1000.0


class SubjectPool:
    """Every change must flip a decision: a step withdraws the keys of subjects that hold them
    granted, or, when too few are left, grants them again to subjects that withdrew. With twice
    the largest step's subjects in the pool one of the two always has enough."""

    def __init__(self, subjects: list[str]) -> None:
        self.granted, self.withdrawn = list(subjects), list[str]()

    def take(self, count: int) -> tuple[str, list[str]]:
        if len(self.granted) >= count:
            taken, self.granted = self.granted[:count], self.granted[count:]
            self.withdrawn += taken
            return "withdraw", taken
        taken, self.withdrawn = self.withdrawn[:count], self.withdrawn[count:]
        self.granted += taken
        return "grant", taken


def stats(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "max": max(values, default=float("nan")),
        "n": len(values),
    }


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        host.processor(),
    )
    memory = next(
        (
            int(line.split()[1]) * 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(memory / 2**30, 1),
        "python": host.python_version(),
        "kernel": host.release(),
    }


async def _settle(platform: RunningPlatform, feed: SuppressionFeed, timeout: float = 300) -> None:
    """Wait until the set-up's events are everywhere: nothing left in the outbox, the projectors'
    and the suppression index's lag at zero."""
    deadline = time.monotonic() + timeout
    urls = [f"http://127.0.0.1:{platform.settings.projection_web_port_base + n}" for n in (1, 2, 3)]
    async with httpx.AsyncClient(headers={"Authorization": "Bearer dev-admin"}, timeout=10) as http:
        while time.monotonic() < deadline:
            outbox = (await http.get(f"{platform.consent_url}/v1/outbox")).json()
            lags = [await _gauge(http, url, "samtykke_projection_consumer_lag") for url in urls]
            index = await _gauge(http, platform.suppression_url, "samtykke_suppression_index_lag_messages")
            if outbox.get("backlog", 1) == 0 and not any(lags) and index == 0:
                await feed.read()
                await _analyze(platform.settings.database_url)
                return
            await asyncio.sleep(0.5)
    raise RuntimeError("the platform did not catch up with the set-up's changes")


async def _analyze(database_url: str) -> None:
    """Statistics for the tables the set-up filled, as autovacuum has them on a platform in service.
    Without them the plans PostgreSQL made for a near-empty database read whole tables: every
    consent write scanned `consent.consents` (200 sequential scans a second at 1,000 changes/s)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def _gauge(http: httpx.AsyncClient, url: str, name: str) -> float:
    text = (await http.get(f"{url}/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _meter(settings: Settings, platform: RunningPlatform) -> ProcessMeter:
    pids = {row.name: row.pid for row in devstack.status(settings) if row.pid is not None}
    me = "load generator (this process)"
    return ProcessMeter({**platform.pids, **pids, me: os.getpid()}, alone=frozenset({me}))


async def _step(
    platform: RunningPlatform,
    feed: SuppressionFeed,
    meter: ProcessMeter,
    subjects: list[str],
    action: str,
    n: int,
    rate: float,
    seconds: float,
    per_request: int,
) -> dict[str, Any]:
    print(
        f"\nstep {n + 1}: {action} at {rate:,.0f} changes/s for {seconds:.0f} s ({per_request} per request)", flush=True
    )
    meter.start()
    sampler = asyncio.create_task(_sample(meter))
    load = await run_step(platform.consent_url, subjects, action, rate, seconds, per_request)
    sampler.cancel()
    processes = meter.stop()
    seen = await arrivals(platform.settings, feed, load, timeout=max(30.0, seconds))
    relay = await relay_latencies(platform.settings, load)
    floor_ms = await floor(platform.settings, rate, seconds)
    return {
        "target_rate": rate,
        "seconds": seconds,
        "action": action,
        "per_request": per_request,
        "achieved_rate": round(load.achieved_rate, 1),
        "changes": len(load.events),
        "requests": stats(load.request_ms),
        "errors": load.errors,
        "destinations": {d: stats(seen.latencies_ms(d)) | {"missing": seen.missing(d)} for d in DESTINATIONS},
        "floor": stats(floor_ms),
        "processes": processes,
        "relay": stats(relay) | {"missing": len(load.events) - len(relay)},
    }


async def _sample(meter: ProcessMeter) -> None:
    while True:
        await asyncio.sleep(1.0)
        meter.sample()


def passes(step: dict[str, Any]) -> bool:
    """Sustained: every change arrived everywhere, p99 within a second, the rate was kept."""
    worst = max(step["destinations"][d]["p99"] for d in DESTINATIONS)
    missing = sum(step["destinations"][d]["missing"] for d in DESTINATIONS)
    kept = float(step["achieved_rate"]) >= 0.95 * float(step["target_rate"])
    return bool(missing == 0 and worst <= P99_LIMIT_MS and kept)


def step_report(step: dict[str, Any]) -> str:
    req = step["requests"]
    lines = [
        f"achieved {step['achieved_rate']:,.0f} changes/s ({step['changes']:,} changes; request p50 "
        f"{req['p50']:.0f} ms, p99 {req['p99']:.0f} ms; errors {step['errors'] or 'none'})",
        f"{'commit -> destination (ms)':34} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'missing':>8}"
        f"   p99 / floor p99",
    ]
    floor_p99 = step["floor"]["p99"]
    for name in DESTINATIONS:
        d = step["destinations"][name]
        table = f"{name}.consents" if name in DOMAIN_TABLES else "suppression decision"
        lines.append(
            f"{table:34} {d['p50']:7.1f} {d['p95']:7.1f} {d['p99']:7.1f} {d['max']:7.1f} "
            f"{d['missing']:8}   {d['p99'] / max(floor_p99, 1e-9):.1f}x"
        )
    f = step["floor"]
    lines.append(
        f"{'floor: aiokafka -> asyncpg upsert':34} {f['p50']:7.1f} {f['p95']:7.1f} {f['p99']:7.1f} "
        f"{f['max']:7.1f} {'':8}   (baseline, same rate)"
    )
    r = step["relay"]
    lines.append(
        f"{'of which commit -> on Kafka (relay)':34} {r['p50']:7.1f} {r['p95']:7.1f} {r['p99']:7.1f} "
        f"{r['max']:7.1f} {r['missing']:8}   (acknowledged, from the outbox)"
    )
    lines.append(f"{'process (during the load)':34} {'cpu %':>7} {'rss MiB':>8}")
    lines += [f"{name:34} {u['cpu_percent']:7.0f} {u['rss_mib']:8.0f}" for name, u in step["processes"].items()]
    return "\n".join(lines)


async def run(
    settings: Settings,
    rates: list[float],
    seconds: float,
    per_request: int,
    saturation: bool,
    replay_events: int,
    out_dir: Path,
) -> dict[str, Any]:
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    results: dict[str, Any] = {
        "started_at": started_at,
        "machine": machine(),
        "steps": [],
        "per_request": per_request,
        "p99_limit_ms": P99_LIMIT_MS,
    }
    if rates:
        async with running_platform(settings, str(out_dir / "logs")) as platform:
            size = max(pool_size(r, seconds, per_request) for r in rates)
            print(f"set-up: {2 * size:,} consumers, each granted {len(KEYS)} marketing keys", flush=True)
            pool = SubjectPool(await subject_pool(platform.consent_url, 2 * size))
            feed = SuppressionFeed(platform.suppression_url)
            await _settle(platform, feed)
            meter = _meter(settings, platform)
            for n, rate in enumerate(rates):
                action, subjects = pool.take(pool_size(rate, seconds, per_request))
                step = await _step(platform, feed, meter, subjects, action, n, rate, seconds, per_request)
                results["steps"].append(step)
                print(step_report(step), flush=True)
                if saturation and not passes(step):
                    break
            await feed.aclose()
        sustained = [s["target_rate"] for s in results["steps"] if passes(s)]
        results["saturation_rate"] = max(sustained, default=0.0) if saturation else None
    if replay_events:
        print(f"\nreplay: {replay_events:,} events into every read model", flush=True)
        try:
            results["replay"] = await replay(settings, replay_events)
        except Exception as exc:  # keep the rate figures: report the replay's failure beside them
            results["replay_error"] = f"{type(exc).__name__}: {exc}"
            print(f"replay failed: {results['replay_error']}", flush=True)
    return results


def summary(results: dict[str, Any]) -> str:
    lines = [f"\nsamtykke end to end, {results['machine']['cores']} cores ({results['machine']['cpu']})"]
    for s in results["steps"]:
        sup, fl = s["destinations"]["suppression"], s["floor"]
        worst = max(s["destinations"][d]["p99"] for d in DOMAIN_TABLES)
        lines.append(
            f"  {s['target_rate']:6,.0f}/s: suppression p99 {sup['p99']:6.1f} ms, slowest domain p99 "
            f"{worst:6.1f} ms, floor p99 {fl['p99']:6.1f} ms ({sup['p99'] / max(fl['p99'], 1e-9):.1f}x), "
            f"achieved {s['achieved_rate']:,.0f}/s {'ok' if passes(s) else 'NOT sustained'}"
        )
    if results.get("saturation_rate") is not None:
        lines.append(f"  saturation: {results['saturation_rate']:,.0f} changes/s sustained (p99 <= 1 s everywhere)")
    if "replay" in results:
        r = results["replay"]
        per = ", ".join(f"{k} {v:.1f} s" for k, v in r.items() if k not in ("all", "events", "raw_aiokafka_read"))
        lines.append(
            f"  replay of {r['events']:,.0f} events: all read models {r['all']:.1f} s ({per}); "
            f"raw aiokafka read {r['raw_aiokafka_read']:.1f} s"
        )
    if "replay_error" in results:
        lines.append(f"  replay FAILED: {results['replay_error']}")
    return "\n".join(lines)


def main(
    settings: Settings,
    rates: list[float],
    seconds: float,
    per_request: int,
    saturation: bool,
    replay_events: int,
    out_dir: Path,
) -> int:
    devstack.up(settings)
    results = asyncio.run(run(settings, rates, seconds, per_request, saturation, replay_events, out_dir))
    stamp = results["started_at"].replace(":", "").replace("-", "")[:15]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"e2e-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(summary(results))
    print(f"\nresults: {out_dir / f'e2e-{stamp}.json'}")
    if results["steps"]:
        from .chart import draw  # matplotlib only when a chart is drawn

        draw(results, out_dir / f"e2e-{stamp}.png")
        print(f"chart:   {out_dir / f'e2e-{stamp}.png'}")
    return 1 if "replay_error" in results else 0
