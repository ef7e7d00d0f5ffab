"""The end-to-end benchmark's pure parts: which keys flip suppression, pool sizes, percentiles,
and what counts as a sustained rate."""

from __future__ import annotations

import asyncio
import math

from benchmarks.consent_api import Result, _drive
from benchmarks.drive import KEYS, pool_size, requests_needed
from benchmarks.e2e import passes, stats
from benchmarks.percentiles import percentile

DESTINATIONS = ("marketing", "analytics", "customer_service", "suppression")


def test_every_benchmark_key_is_an_opt_in_marketing_key_of_a_consumer() -> None:
    assert len(KEYS) == len(set(KEYS)) == 10
    assert {p for p, _ in KEYS} == {"direct_marketing", "third_party_marketing", "personalised_offers"}


def test_the_pool_touches_no_key_twice_in_a_step() -> None:
    # 1,000 changes/s for 20 s, 5 per request: 4,000 requests, two per subject
    assert requests_needed(1000, 20, 5) == 4000
    assert pool_size(1000, 20, 5) == 2000
    assert pool_size(1000, 20, 3) * (len(KEYS) // 3) >= requests_needed(1000, 20, 3)


def test_stats_are_nearest_rank_percentiles() -> None:
    result = stats([float(v) for v in range(1, 101)])
    assert (result["p50"], result["p95"], result["p99"], result["max"], result["n"]) == (51, 96, 100, 100, 100)
    assert math.isnan(stats([])["p99"]) and math.isnan(stats([])["max"])


def test_every_benchmark_takes_percentiles_the_same_way() -> None:
    sample = [float(v) for v in range(100, 0, -1)]  # unsorted: the percentile sorts
    assert (percentile(sample, 0.5), percentile(sample, 0.99), percentile(sample, 1.0)) == (51, 100, 100)
    assert percentile([7.0], 0.99) == 7.0
    assert math.isnan(percentile([], 0.5))  # no sample, no figure: never a made-up 0 ms
    assert Result("api", 10, 1.0, [0.001 * v for v in range(1, 11)]).percentile_ms(0.5) == 6.0


def _step(p99: float, achieved: float, missing: int = 0) -> dict[str, object]:
    return {
        "target_rate": 1000.0,
        "achieved_rate": achieved,
        "destinations": {d: {"p99": p99, "missing": missing} for d in DESTINATIONS},
    }


def test_a_rate_is_sustained_only_with_every_change_delivered_within_a_second() -> None:
    assert passes(_step(p99=900, achieved=990))
    assert not passes(_step(p99=1100, achieved=1000))
    assert not passes(_step(p99=100, achieved=900))
    assert not passes(_step(p99=100, achieved=1000, missing=1))


def test_every_step_flips_decisions_even_when_rates_grow() -> None:
    from benchmarks.e2e import SubjectPool

    pool = SubjectPool([f"s{i}" for i in range(10)])  # twice the largest step (5)
    seen: dict[str, str] = {f"s{i}": "granted" for i in range(10)}
    for need in (3, 4, 5, 5, 2):
        action, subjects = pool.take(need)
        assert len(subjects) == need
        before = "granted" if action == "withdraw" else "withdrawn"
        assert all(seen[s] == before for s in subjects), (action, subjects)
        seen.update(dict.fromkeys(subjects, "withdrawn" if action == "withdraw" else "granted"))


async def test_the_consent_benchmark_counts_every_workers_decisions() -> None:
    # workers finish their steps while others are suspended: each step's decisions must all be counted
    # (a `done += await step()` lost them, and the benchmark reported a twentieth of the real rate)
    async def step(worker: int) -> int:
        await asyncio.sleep(0.001 * (worker % 3))
        return 5

    result = await _drive(8, 0.05, step, "steps")
    assert result.decisions == 5 * len(result.latencies) > 0
