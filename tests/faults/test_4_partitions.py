"""Fault matrix, the topics: a partition added to `consent.changes` while everything runs."""

from __future__ import annotations

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from aiokafka.partitioner import murmur2

from samtykke.adapters.kafka import client_options

from .harness import FaultPlatform
from .row import Row
from .watch import DM_SMS, check

pytestmark = pytest.mark.stack
ON_THE_NEW_PARTITION = 2


def partition_of(key: str, partitions: int) -> int:
    """The producer's default partitioner (murmur2 of the key)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


async def test_partition_added(fault_platform: FaultPlatform, row: Row) -> None:
    """9. partition added to consent.changes at run time"""
    topic = fault_platform.settings.topic_changes
    admin = AIOKafkaAdminClient(**client_options(fault_platform.settings))
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        count = len(described["partitions"])
        chosen: list[str] = []
        while len(chosen) < ON_THE_NEW_PARTITION:  # subjects whose key will hash to the new partition
            subject = await row.consent["consent"].subject()
            if partition_of(subject, count + 1) == count:
                chosen.append(subject)
        await row.grant(*chosen)
        await admin.create_partitions({topic: NewPartitions(count + 1)})
    finally:
        await admin.close()
    # a producer learns the partition count when it starts: restart the consent replicas, one at a time
    for name in fault_platform.consent_urls:
        await fault_platform.restart(name)
    committed = 0.0
    for subject in chosen:
        committed = await row.withdraw(subject)
    row.record.note = f"{count} -> {count + 1} partitions; converged timed from the last withdrawal"
    await row.verify(committed)
    async with httpx.AsyncClient(timeout=5) as client:
        for url in fault_platform.suppression_urls.values():
            position = (await check(client, url, subject_id=chosen[0], **DM_SMS))["position"][topic]
            assert position.get(str(count), 0) >= ON_THE_NEW_PARTITION, position  # read from the new partition
