"""The end-to-end benchmark runs from its one command and measures every change everywhere.

A short, slow run (the figures themselves are the benchmark's business, not a test's): every
change must reach all three domains and the suppression decision, the floor must have run,
and the JSON and the chart must be written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import StackEndpoints


def test_bench_e2e_measures_every_change_in_every_destination(stack: StackEndpoints, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "e2e", "--rates", "50", "--seconds", "2", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    [result_file] = tmp_path.glob("e2e-*.json")
    results = json.loads(result_file.read_text())
    [step] = results["steps"]
    assert step["changes"] == 100 and not step["errors"]
    for name in ("marketing", "analytics", "customer_service", "suppression"):
        destination = step["destinations"][name]
        assert destination["missing"] == 0, (name, destination)
        assert destination["n"] == 100 and 0 < destination["p50"] <= destination["max"], (name, destination)
    assert step["floor"]["n"] == 100
    assert {"consent", "marketing", "suppression", "postgres", "kafka"} <= set(step["processes"])
    assert [p.name for p in tmp_path.glob("e2e-*.png")], "no chart written"
    assert "floor p99" in run.stdout
