"""One row of the fault matrix: subjects granted beforehand, withdrawals committed while the fault
lasts and watched on every replica, then convergence after the recovery, timed and recorded."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator

import httpx

from .harness import FaultPlatform
from .watch import DM_SMS, Consent, GateWatch, RowRecord, converge, wait_decision

_phones = itertools.count(1)


def phone_number(country: str = "SE") -> str:
    """A number no other row uses (the registers rows match subjects by it)."""
    prefix, digits = {"SE": ("+4670", 7), "DK": ("+4520", 6), "NO": ("+4790", 6)}[country]
    return f"{prefix}{next(_phones) + 123000:0{digits}d}"


class Row:
    def __init__(self, platform: FaultPlatform, record: RowRecord) -> None:
        self.platform = platform
        self.record = record
        self.consent = {name: Consent(url) for name, url in platform.consent_urls.items()}
        self.watch = GateWatch(platform.suppression_urls)
        self.restarted_before = len(platform.restarted)
        self.phones: dict[str, str] = {}

    async def aclose(self) -> None:
        for client in self.consent.values():
            await client.aclose()

    async def granted(self, count: int = 1, country: str = "DK", phones: bool = False) -> list[str]:
        """New subjects granted direct marketing by SMS, once every replica allows it."""
        subjects = []
        for _ in range(count):
            phone = phone_number(country) if phones else None
            subject = await self.consent["consent"].subject(country, phone)
            if phone is not None:
                self.phones[subject] = phone
            subjects.append(subject)
        await self.grant(*subjects)
        return subjects

    async def grant(self, *subjects: str) -> None:
        """Grant direct marketing by SMS, and wait until every replica allows it."""
        for subject in subjects:
            response = await self.consent["consent"].decide(subject, "grant")
            assert response.status_code == 201, response.text
        for subject in subjects:
            await wait_decision(self.platform, lambda d: d["result"] == "allowed", subject_id=subject, **DM_SMS)

    async def withdraw(self, subject: str, via: str = "consent") -> float:
        """Commit a withdrawal (201) and watch it on every replica from then on."""
        committed = await self.consent[via].withdraw(subject)
        self.watch.track(subject, committed)
        return committed

    async def withdraw_when_possible(self, subject: str, timeout: float = 60.0) -> float:
        """Withdraw through a consent service that may still be reconnecting to its database: tried
        again until a 201 (a refused attempt committed nothing)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                response = await self.consent["consent"].decide(subject, "withdraw")
                if response.status_code == 201:
                    committed = time.monotonic()
                    self.watch.track(subject, committed)
                    return committed
            assert time.monotonic() < deadline, f"no withdrawal committed within {timeout:.0f}s"
            await asyncio.sleep(0.2)

    async def writers(self, count: int = 3) -> list[str]:
        """Subjects for `writing` (they decide by e-mail; the watch follows SMS)."""
        return [await self.consent["consent"].subject() for _ in range(count)]

    async def hold(self, seconds: float) -> None:
        """Let the fault last; the watch goes on asking."""
        await asyncio.sleep(seconds)

    @contextlib.asynccontextmanager
    async def writing(self, subjects: list[str]) -> AsyncIterator[list[int]]:
        """Keep committing changes (e-mail grants and withdrawals of `subjects`) in the background, so
        a fault lands mid-publish and mid-batch; yields the count of changes committed (201s)."""
        committed = [0]
        stop = asyncio.Event()

        async def write() -> None:
            for n in itertools.count():
                if stop.is_set():
                    return
                subject = subjects[n % len(subjects)]
                action = "grant" if (n // len(subjects)) % 2 == 0 else "withdraw"
                with contextlib.suppress(Exception):  # the database may be away: nothing committed then
                    if (await self.consent["consent"].decide(subject, action, channel="email")).status_code == 201:
                        committed[0] += 1
                await asyncio.sleep(0.02)

        task = asyncio.create_task(write())
        try:
            yield committed
        finally:
            stop.set()
            await task

    async def verify(self, recovered: float, timeout: float = 90.0) -> None:
        """Invariant (b) after the recovery (timed), then invariant (a) over the whole row."""
        self.record.converged_after = await converge(self.platform, self.watch, recovered, timeout)
        await asyncio.sleep(0.3)  # answers after convergence count too
        self.finish()
        violations = self.watch.violations()
        assert not violations, violations[:5]

    def finish(self) -> None:
        blocked, reason = self.watch.blocked_after()
        self.record.blocked_after, self.record.first_reason = blocked, reason
        self.record.answers = self.watch.answered()
        self.record.violations = len(self.watch.violations())
        restarted = self.platform.restarted[self.restarted_before :]
        self.record.restarted = ", ".join(restarted)
