"""Progress of a long job: a bar on a terminal, otherwise a log line with counts and rate."""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType

from tqdm import tqdm

log = logging.getLogger(__name__)


class Progress:
    def __init__(self, total: int, description: str, unit: str = "events", log_every: float = 2.0) -> None:
        self.total = total
        self.done = 0
        self._description = description
        self._unit = unit
        self._started = self._logged = time.monotonic()
        self._log_every = log_every
        self._bar = (
            tqdm(total=total, desc=description, unit=f" {unit}", unit_scale=True) if sys.stderr.isatty() else None
        )

    @property
    def rate(self) -> float:
        return self.done / max(time.monotonic() - self._started, 1e-9)

    def advance(self, count: int) -> None:
        self.done += count
        # events that arrived after the job started and were read with the rest
        self.total = max(self.total, self.done)
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.update(count)
        elif time.monotonic() - self._logged >= self._log_every:
            self._logged = time.monotonic()
            self._log_line()

    def _log_line(self) -> None:
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        log.info(
            "%s: %s/%s %s%s, %.0f %s/s",
            self._description,
            f"{self.done:,}",
            f"{self.total:,}",
            self._unit,
            share,
            self.rate,
            self._unit,
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.close()
        self._log_line()
