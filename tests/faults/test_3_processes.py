"""Fault matrix, the platform's own processes: crashes mid-batch, and a relay leader losing its lock."""

from __future__ import annotations

import asyncio
import time

import pytest

from .harness import FaultPlatform
from .row import Row

pytestmark = pytest.mark.stack


async def test_projector_and_suppression_replica_sigkilled(fault_platform: FaultPlatform, row: Row) -> None:
    """7. projector and suppression replica SIGKILLed mid-batch"""
    [subject] = await row.granted()
    async with row.writing(await row.writers()) as committed:
        await asyncio.sleep(1.5)
        assert committed[0] > 0, "nothing was flowing when the processes were killed"
        await fault_platform.kill("marketing")
        await fault_platform.kill("suppression-2")
        await row.withdraw(subject)
        await row.hold(2.0)
        recovered = time.monotonic()
        fault_platform.start_one("marketing")
        await fault_platform.start_replica("suppression-2", wait=False)
        await asyncio.sleep(1.0)
    await row.verify(recovered)


async def test_relay_lock_session_terminated(fault_platform: FaultPlatform, row: Row) -> None:
    """8. relay leader's lock session terminated (2 consent replicas)"""
    first, second = await row.granted(2)
    _, epoch = await fault_platform.relay_leader()
    assert await fault_platform.terminate_relay_lock_session() == 1
    terminated = time.monotonic()
    await fault_platform.leadership_lost(epoch)  # noticed at its next lease renewal; nobody publishes now
    await row.withdraw(first, via="consent")
    await row.withdraw(second, via="consent-2")
    await row.verify(terminated)
    await fault_platform.relay_leader(newer_than=epoch)  # a successor took office under a new epoch
