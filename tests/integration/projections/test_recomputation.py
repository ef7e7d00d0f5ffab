"""Projection = recomputation: after a few hundred random decisions through the consent API,
each domain's tables equal what the pure rules compute from the ledger; also after SIGKILL
mid-stream and a restart, and after the topics are replayed twice."""

from __future__ import annotations

import asyncio
import random

from samtykke.projections.domains import DOMAINS

from .conftest import ProjectionPlatform
from .history import RandomHistory, population
from .oracle import assert_equals_recomputation, snapshot

ALL = tuple(DOMAINS)


async def test_each_domain_equals_the_recomputation_from_the_ledger(platform: ProjectionPlatform) -> None:
    await platform.start()
    client = platform.consent.client
    history = RandomHistory(client, await population(client, random.Random(11)), seed=11)
    await history.decide(300)
    await history.lifecycle(erasures=2)
    await platform.caught_up()
    conn = await platform.owner()
    try:
        await assert_equals_recomputation(conn, platform.settings.analytics_pseudonym_key.encode(), *ALL)
    finally:
        await conn.close()


async def test_sigkill_mid_stream_then_restart_converges(platform: ProjectionPlatform) -> None:
    projectors = await platform.start()
    client = platform.consent.client
    history = RandomHistory(client, await population(client, random.Random(23)), seed=23)
    await history.decide(60)
    killed = asyncio.Event()

    async def keep_deciding() -> None:
        while not killed.is_set():
            await history.decide(5)

    writing = asyncio.create_task(keep_deciding())
    await asyncio.sleep(1.0)  # decisions are flowing: the projectors are mid-stream
    conn = await platform.owner()
    for domain in ALL:
        assert await conn.fetchval(f"SELECT count(*) FROM {domain}.consumer_offsets") > 0
    await conn.close()
    for projector in projectors:
        projector.kill()
    assert not writing.done()
    killed.set()
    await writing
    await history.decide(100)  # and more while no projector runs
    await history.lifecycle(erasures=2)
    await platform.start()
    await platform.caught_up()
    conn = await platform.owner()
    try:
        await assert_equals_recomputation(conn, platform.settings.analytics_pseudonym_key.encode(), *ALL)
    finally:
        await conn.close()


async def test_replaying_the_topics_twice_changes_nothing(platform: ProjectionPlatform) -> None:
    projectors = await platform.start()
    client = platform.consent.client
    history = RandomHistory(client, await population(client, random.Random(37)), seed=37)
    await history.decide(120)
    await history.lifecycle(erasures=1)
    await platform.caught_up()
    conn = await platform.owner()
    try:
        before = await snapshot(conn, *ALL)
        for _ in range(2):
            await platform.stop(projectors)
            for domain in ALL:  # forget every position: the next start reads both topics from offset 0
                await conn.execute(f"DELETE FROM {domain}.consumer_offsets")
            projectors = await platform.start()
            await platform.caught_up()
            assert await snapshot(conn, *ALL) == before
        await assert_equals_recomputation(conn, platform.settings.analytics_pseudonym_key.encode(), *ALL)
    finally:
        await conn.close()
