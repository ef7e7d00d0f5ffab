"""Fault matrix, beyond the issue's list: the relay leader stopped cleanly, as a rolling restart does
(it resigns, so its successor need not wait out the fence)."""

from __future__ import annotations

import time

import pytest

from .harness import FaultPlatform
from .row import Row

pytestmark = pytest.mark.stack


async def test_relay_leader_stopped_cleanly(fault_platform: FaultPlatform, row: Row) -> None:
    """12. relay leader stopped cleanly (SIGTERM), started again"""
    [subject] = await row.granted()
    leader, _ = await fault_platform.relay_leader()
    stopped = time.monotonic()
    await fault_platform.terminate(leader)  # SIGTERM: it resigns, so a successor need not wait the fence
    await row.withdraw(subject, via=next(name for name in fault_platform.consent_urls if name != leader))
    await fault_platform.start(leader)
    await row.verify(stopped)
