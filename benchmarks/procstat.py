"""CPU and resident memory per process (Linux /proc), for the benchmarks' per-process table.

A part may be a process tree (PostgreSQL forks a backend per connection), so a sample sums the
process and all its descendants. CPU is reported as the share of one core over an interval.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    rss_bytes: int


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds, resident bytes) of one process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    # after the command name: state ppid ... utime(12) stime(13) ... rss(22), counted from state
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS, int(fields[21]) * PAGE


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            tree.setdefault(stat[0], []).append(int(entry.name))
    return tree


def usage(pid: int, tree: dict[int, list[int]] | None = None) -> Usage:
    """The process and its descendants (none when `tree` is empty), summed."""
    tree = _children() if tree is None else tree
    cpu, rss, todo = 0.0, 0, [pid]
    while todo:
        current = todo.pop()
        if (stat := _stat(current)) is not None:
            cpu, rss = cpu + stat[1], rss + stat[2]
        todo.extend(tree.get(current, ()))
    return Usage(cpu, rss)


class ProcessMeter:
    """CPU share and peak resident memory of named processes between `start()` and `stop()`."""

    def __init__(self, pids: dict[str, int], alone: frozenset[str] = frozenset()) -> None:
        self.pids = pids
        self._alone = alone  # measured without their descendants (a parent of the measured services)
        self._first: dict[str, Usage] = {}
        self._peak: dict[str, int] = {}
        self._started = 0.0

    def start(self) -> None:
        tree = _children()
        self._first = {name: self._usage(name, tree) for name in self.pids}
        self._peak = {name: u.rss_bytes for name, u in self._first.items()}
        self._started = time.monotonic()

    def sample(self) -> None:
        """Note resident memory now (call it now and then during a run: the peak is kept)."""
        tree = _children()
        for name in self.pids:
            self._peak[name] = max(self._peak.get(name, 0), self._usage(name, tree).rss_bytes)

    def _usage(self, name: str, tree: dict[int, list[int]]) -> Usage:
        return usage(self.pids[name], {} if name in self._alone else tree)

    def stop(self) -> dict[str, dict[str, float]]:
        """{name: {"cpu_percent": share of one core, "rss_mib": peak}} over the interval."""
        tree = _children()
        elapsed = max(time.monotonic() - self._started, 1e-9)
        result = {}
        for name in self.pids:
            last = self._usage(name, tree)
            cpu = (last.cpu_seconds - self._first[name].cpu_seconds) / elapsed * 100
            peak = max(self._peak.get(name, 0), last.rss_bytes)
            result[name] = {"cpu_percent": round(cpu, 1), "rss_mib": round(peak / 2**20, 1)}
        return result
