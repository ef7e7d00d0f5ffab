"""Makes Faust resume from the offsets stored in PostgreSQL, not from Kafka's group offsets.

Faust moves a consumer to "the committed position" in one place, `Consumer.seek_to_committed`
(called by `perform_seek` after every rebalance, before the flow resumes, and whenever it
re-fetches while the flow is paused). This consumer answers that call from the projection's
offsets table: each assigned partition goes to its last applied offset + 1, or to the earliest
retained offset when nothing was applied yet. The projector's topics are consumed with
`acks=False`, so Faust never commits group offsets itself; the projector commits what it applied
after each batch's transaction (`advise`), for Kafka's tools only: PostgreSQL is the position.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TP, AppT
from faust.types.transports import ConsumerCallback, ConsumerT
from yarl import URL

log = logging.getLogger(__name__)

# assigned partitions -> next offset to read per partition (None: nothing applied yet)
StoredPositions = Callable[[set[TP]], Awaitable[Mapping[TP, int | None]]]


# Faust's consumer asks the broker for at least 1 byte, waiting up to 1.5 s: under a steady
# flow every fetch returns with a message or two, and the consumer thread spends its time
# sending fetch requests (~30 % of a projector's CPU at 500 changes/s). Asking for a batch's
# worth, waiting at most a fraction of the 50 ms batch window, fetches far less often.
FETCH_MIN_BYTES = 16 * 1024
FETCH_MAX_WAIT_MS = 20


class BatchFetchingThread(faust_kafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads these when it starts its fetcher; Faust passes no way to set them
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class StoredPositionConsumer(faust_kafka.Consumer):
    def __init__(self, *args: Any, stored_positions: StoredPositions, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stored_positions = stored_positions

    def _new_consumer_thread(self) -> faust_kafka.AIOKafkaConsumerThread:
        return BatchFetchingThread(self, loop=self.loop, beacon=self.beacon)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        assigned = self.assignment()
        if not assigned:
            return {}
        wanted = await self._stored_positions(assigned)
        fresh = [tp for tp in assigned if wanted.get(tp) is None]
        earliest = await self.earliest_offsets(*fresh) if fresh else {}
        positions: dict[TP, int] = {}
        for tp in assigned:
            stored = wanted.get(tp)
            positions[tp] = stored if stored is not None else earliest[tp]
        await self.seek_wait(positions)
        log.info(
            "resuming from PostgreSQL positions: %s",
            ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in sorted(positions.items())),
        )
        return positions

    async def advise(self, offsets: Mapping[TP, int]) -> None:
        """Commit applied positions (next offset to read) to the consumer group, after PostgreSQL did:
        advice for `kafka-consumer-groups` and lag exporters; the table stays the truth on restart."""
        await self._commit(offsets)


class StoredPositionTransport(faust_kafka.Transport):
    """The aiokafka transport, building `StoredPositionConsumer`s."""

    def __init__(self, url: list[URL], app: AppT, stored_positions: StoredPositions) -> None:
        super().__init__(url, app)
        self._stored_positions = stored_positions

    def create_consumer(self, callback: ConsumerCallback, **kwargs: Any) -> ConsumerT:
        return StoredPositionConsumer(
            self, callback=callback, loop=self.loop, stored_positions=self._stored_positions, **kwargs
        )
