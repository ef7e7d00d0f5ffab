"""Applying a register snapshot to the index without stalling the event loop.

The snapshot itself is swapped in at once (decisions use it from that moment, an O(1) step);
what takes time is telling the suppression list's change feed which entries changed, and how
many indexed subjects the snapshot lists. Both walk only what changed — the hashes listed by
one snapshot and not the other, or every subject of the register's country when the
register's freshness flips — in time slices of a few milliseconds, yielding to the event
loop between slices, so the topic feed and the request path go on meanwhile. Only the
entries a register can change (its country's subjects, its channels) are recomputed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Iterator

from samtykke.domain.model import SubjectId
from samtykke.domain.registers import REGISTER_SCOPE, Register, RegisterBook, RegisterSnapshot, changed_hashes
from samtykke.domain.suppression import Reason, SubjectState, SuppressionRules

from .index import Entries, SuppressionIndex

SLICE_SECONDS = 0.004  # longest run on the event loop between two yields
_CHECK_EVERY = 8  # items between two looks at the clock (a subject costs ~0.1 ms)


@contextlib.asynccontextmanager
async def collector_paused() -> AsyncIterator[None]:
    """No cyclic garbage collection while a snapshot is applied: a million change-feed entries
    made in a few seconds trigger full collections that each stop the event loop for up to two
    seconds (measured), longer than the index's freshness bound. The entries hold no cycles;
    reference counting frees what they replace, and the collector runs again afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class RegisterApplier:
    """Swaps register snapshots into the index and records what they changed, in slices."""

    def __init__(self, index: SuppressionIndex, slice_seconds: float = SLICE_SECONDS) -> None:
        self._index = index
        self._slice = slice_seconds
        self._lock = asyncio.Lock()  # one register change at a time: each diffs against the one before

    async def install(self, snapshot: RegisterSnapshot) -> int:
        """Use `snapshot` from now on; returns how many indexed subjects it lists."""
        async with self._lock, collector_paused():
            now = time.time()
            before = self._index.swap_register(snapshot.register, snapshot, now)
            await self._record(snapshot.register, before, now)
            return await self._matched(snapshot)

    async def withdraw(self, register: Register) -> None:
        """Use no snapshot of `register`: its decisions turn `stale` (fail closed)."""
        async with self._lock, collector_paused():
            now = time.time()
            before = self._index.swap_register(register, None, now)
            await self._record(register, before, now)

    async def record_flips(self) -> None:
        """Record the subjects of every register whose freshness flipped with time (`index.tick`)."""
        while self._index.register_flips:
            register, flipped_at = self._index.register_flips.pop(0)
            async with self._lock:
                await self._record_country(register, self._index.registers, flipped_at - 0.001)

    # -- slices --------------------------------------------------------------------------
    async def _record(self, register: Register, before: RegisterBook, now: float) -> None:
        if self._index.changes is None:
            return  # the start-up replay records nothing: the export is the starting point
        if before.is_fresh(register, now) != self._index.registers.is_fresh(register, now):
            await self._record_country(register, before, now)
            return
        old = before.snapshots.get(register)
        new = self._index.registers.snapshots.get(register)
        changed = changed_hashes(old.phone_hashes if old else set(), new.phone_hashes if new else set())
        country = REGISTER_SCOPE[register][0].value
        subjects: Iterator[SubjectId] = (s for h in changed for s in self._index.current_holders(h))
        await self._record_subjects(register, subjects, country, before, now)

    async def _record_country(self, register: Register, before: RegisterBook, before_at: float) -> None:
        if self._index.changes is None:
            return
        country = REGISTER_SCOPE[register][0].value
        ids = list(self._index.subjects)  # a copy: the feed adds subjects while we yield
        await self._record_subjects(register, iter(ids), country, before, before_at)

    async def _record_subjects(
        self, register: Register, ids: Iterator[SubjectId], country: str, before: RegisterBook, before_at: float
    ) -> None:
        channels = frozenset(c.value for c in REGISTER_SCOPE[register][1])
        rules, subjects = self._index.rules, self._index.subjects
        started = time.perf_counter()
        for n, subject_id in enumerate(ids, start=1):
            state = subjects.get(subject_id)
            changes = self._index.changes
            if state is not None and state.country == country and changes is not None:
                now = time.time()
                old = covered_entries(rules, state, before_at, before, channels)
                new = covered_entries(rules, state, now, self._index.registers, channels)
                changes.record(state.subject_id, old, new, now)
            if n % _CHECK_EVERY == 0 and time.perf_counter() - started > self._slice:
                await asyncio.sleep(0)
                started = time.perf_counter()

    async def _matched(self, snapshot: RegisterSnapshot) -> int:
        holdings, matched = self._index.holdings, 0
        started = time.perf_counter()
        for n, hashed in enumerate(snapshot.phone_hashes, start=1):
            matched += hashed in holdings
            if n % 4096 == 0 and time.perf_counter() - started > self._slice:
                await asyncio.sleep(0)
                started = time.perf_counter()
        return matched


def covered_entries(
    rules: SuppressionRules, state: SubjectState, at: float, registers: RegisterBook, channels: frozenset[str]
) -> Entries:
    """The subject's suppression-list entries on `channels` only: all a register can change
    (`suppressed_entries`, restricted; the change feed diffs only the keys it is given)."""
    entries: Entries = {}
    for plan in rules.marketing_plans[state.kind]:
        if plan.channel in channels:
            verdict = rules.decide_planned(state, plan, at, registers)
            if not verdict.allowed and verdict.reasons != (Reason.NO_CONSENT,):
                entries[(plan.purpose.code, plan.channel)] = verdict.reasons
    return entries
