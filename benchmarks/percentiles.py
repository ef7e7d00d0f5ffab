"""Percentiles of a measured sample, computed the same way in every benchmark.

Nearest rank: the value at index `int(q * n)` of the sorted sample (so p50 of 1..100 is 51 and
p99 is 100). An empty sample has no percentile: NaN, printed as `nan`, never a made-up zero.
Prometheus histograms are another matter: `projections.quantile` interpolates within buckets.
"""

from __future__ import annotations

from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
