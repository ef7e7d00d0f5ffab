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


def test_bench_compaction_rebuilds_every_read_model_from_the_compacted_log(stack: StackEndpoints) -> None:
    """The compaction benchmark on a tiny history: the cleaner leaves one record per consent (and
    each partition's open segment), and every read model rebuilt from it equals the whole history's.
    Its replay is the one `bench e2e --replay` times, suppression readiness (watermarks) included."""
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "compaction", "--events", "2000"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "400 consents of 80 subjects, each changed 5 times" in run.stdout
    records = next(line for line in run.stdout.splitlines() if line.startswith("records on consent.changes"))
    before, after = (int(n.replace(",", "")) for n in records.split()[-2:])
    assert before == 2000 and 400 <= after <= 406, records  # + at most one record of each partition's open segment
    assert "marketing yes, analytics yes, customer_service yes" in run.stdout
