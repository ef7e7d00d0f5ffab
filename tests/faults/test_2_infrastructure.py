"""Fault matrix, the infrastructure: the schema registry, the broker and PostgreSQL go away and come back."""

from __future__ import annotations

import asyncio
import time

import pytest

from .harness import BOUND_SECONDS, FaultPlatform
from .row import Row

pytestmark = pytest.mark.stack


async def restart_part(platform: FaultPlatform, row: Row, part: str) -> float:
    """Start a stopped part; notes how long it took to answer. Returns the instant it answered."""
    began = time.monotonic()
    await platform.start_part(part)
    row.record.note = f"{part} back in {time.monotonic() - began:.1f}s"
    return time.monotonic()


async def test_registry_down(fault_platform: FaultPlatform, row: Row) -> None:
    """3. registry down (stopped, then started)"""
    [subject] = await row.granted()
    await fault_platform.stop_part("registry")
    await row.withdraw(subject)
    await row.hold(BOUND_SECONDS + 1)
    recovered = await restart_part(fault_platform, row, "registry")
    await row.verify(recovered)


async def test_registry_restarted(fault_platform: FaultPlatform, row: Row) -> None:
    """4. registry restarted: durable, everything flows after"""
    [before] = await row.granted()
    await fault_platform.stop_part("registry")
    recovered = await restart_part(fault_platform, row, "registry")
    await row.withdraw(before)
    # consumers that start now know no schema id yet: they must find every one in the restarted registry
    await fault_platform.restart("marketing")
    await fault_platform.restart("suppression-2")
    [after] = await row.granted()  # a change made after the restart reaches every reader
    await row.withdraw(after)
    await row.verify(recovered)


async def test_broker_stopped_mid_publish(fault_platform: FaultPlatform, row: Row) -> None:
    """5. broker stopped mid-publish, then restarted"""
    [subject] = await row.granted()
    async with row.writing(await row.writers()) as committed:
        await asyncio.sleep(1.0)
        assert committed[0] > 0, "nothing was being published when the broker stopped"
        await fault_platform.stop_part("kafka")
        await row.withdraw(subject)
        await row.hold(BOUND_SECONDS + 1)
        recovered = await restart_part(fault_platform, row, "kafka")
        await asyncio.sleep(1.0)
    await row.verify(recovered)


async def test_postgres_restarted(fault_platform: FaultPlatform, row: Row) -> None:
    """6. PostgreSQL restarted under consent, projectors and relay"""
    first, second = await row.granted(2)
    async with row.writing(await row.writers()) as committed:
        await asyncio.sleep(1.0)
        assert committed[0] > 0, "nothing was being written when the database stopped"
        await row.withdraw(first)
        await fault_platform.stop_part("postgres")
        recovered = await restart_part(fault_platform, row, "postgres")
        await row.withdraw_when_possible(second)
        await asyncio.sleep(1.0)
    # a new relay leader must register its schemas, and the registry answers 500 until its pool has
    # dropped the connections the restart broke (about a minute): fail closed meanwhile, then converge
    await row.verify(recovered, timeout=150)
