"""Fault matrix, the relay: its leader hung, and an outbox row it cannot encode."""

from __future__ import annotations

import signal
import time

import pytest

from .harness import BOUND_SECONDS, FaultPlatform
from .row import Row
from .watch import DM_SMS, wait_decision

pytestmark = pytest.mark.stack


async def test_relay_leader_hung(fault_platform: FaultPlatform, row: Row) -> None:
    """1. relay leader hung (SIGSTOP, then SIGCONT)"""
    [subject] = await row.granted()
    leader, _ = await fault_platform.relay_leader()
    other = next(name for name in fault_platform.consent_urls if name != leader)
    fault_platform.send(leader, signal.SIGSTOP)
    await row.withdraw(subject, via=other)  # the replica that does not lead takes the write
    await row.hold(BOUND_SECONDS + 2)
    fault_platform.send(leader, signal.SIGCONT)
    await row.verify(time.monotonic())


async def test_poison_outbox_row(fault_platform: FaultPlatform, row: Row) -> None:
    """2. poison outbox row ahead of a withdrawal"""
    poisoned, other = await row.granted(2)
    conn = await fault_platform.owner()
    try:
        await conn.execute(
            "INSERT INTO consent.outbox (topic, message_key, schema_name, payload) "
            "VALUES ($1, $2, 'NoSuchSchema', '{}')",
            fault_platform.settings.topic_changes,
            poisoned,
        )
    finally:
        await conn.close()
    await row.withdraw(poisoned)
    await row.withdraw(other)  # another subject's withdrawal is not held up by the poison row
    await wait_decision(fault_platform, lambda d: d["reasons"] == ["withdrawn"], subject_id=other, **DM_SMS)
    await row.hold(BOUND_SECONDS + 1)
    for answers in row.watch.tracked[0].answers.values():
        assert answers[-1].reasons[:1] == ("stale",), answers[-3:]  # held: the poisoned subject stays stale
    dead = (await row.consent["consent"].client.get("/v1/outbox/dead-letters")).json()
    assert [(d["subject_id"], d["schema_name"]) for d in dead] == [(poisoned, "NoSuchSchema")]
    discarded = await row.consent["consent"].client.delete(f"/v1/outbox/dead-letters/{dead[0]['id']}")
    assert discarded.status_code == 200, discarded.text
    await row.verify(time.monotonic())
