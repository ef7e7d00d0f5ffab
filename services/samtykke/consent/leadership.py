"""Relay leadership: one publisher at a time, and a leader that loses its lock stops before the next starts.

The leader holds a session-level advisory lock on one connection. The lock alone does not fence: a
leader whose session was terminated would go on publishing from its other connections. So leadership
is also a lease, renewed on the lock's own connection (which fails once that session is gone) before
every batch and every watermark; a leader issues sends only within its lease, waits at most
`ACK_SECONDS` for their acknowledgement, and discards its producer (at most `STOP_SECONDS`) when
that fails. A new leader therefore waits `FENCE_SECONDS` after the last renewal of the one before
(the database's clock, in `consent.relay_leadership`) before it publishes anything, and takes the
next epoch, which every watermark it publishes carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import asyncpg

log = logging.getLogger(__name__)

RELAY_LOCK = 0x5A_4D_54_01
LEASE_SECONDS = 3.0
RENEW_SECONDS = 1.0  # renewed at most this often (once per round would write the row per batch)
ACK_SECONDS = 4.0
STOP_SECONDS = 1.0
# what a leader that lost its lock may still send after its last renewal, plus a margin for requests
# already on the wire when its producer was discarded
FENCE_SECONDS = LEASE_SECONDS + ACK_SECONDS + STOP_SECONDS + 2.0
STANDBY_POLL_SECONDS = 1.0

# the previous leader's last renewal (read before this statement writes) says how long to wait
_TAKE_OFFICE = """
WITH previous AS (SELECT renewed_at FROM consent.relay_leadership)
INSERT INTO consent.relay_leadership AS l (singleton, epoch, renewed_at) VALUES (true, 1, clock_timestamp())
ON CONFLICT (singleton) DO UPDATE SET epoch = l.epoch + 1, renewed_at = clock_timestamp()
RETURNING l.epoch,
    -- a leader that resigned left '-infinity' (nothing to wait for), which cannot be subtracted from
    coalesce((SELECT extract(epoch FROM greatest(p.renewed_at, clock_timestamp() - interval '1 hour')
                                        - clock_timestamp()) FROM previous p), -1e9)::float8 AS since
"""
_RENEW = "UPDATE consent.relay_leadership SET renewed_at = clock_timestamp() WHERE epoch = $1 RETURNING true"


class LeadershipLost(RuntimeError):
    """The lease ran out or could not be renewed: stop publishing now."""


class Lease:
    """The leader's right to publish until `LEASE_SECONDS` after its last renewal began."""

    def __init__(self, connection: asyncpg.Connection, epoch: int, clock: Callable[[], float]) -> None:
        self.connection = connection
        self.epoch = epoch
        self._clock = clock
        self._until = 0.0

    async def renew(self) -> None:
        started = self._clock()  # counted from before the database confirms: the safe side
        try:
            renewed = await self.connection.fetchval(_RENEW, self.epoch, timeout=LEASE_SECONDS)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise LeadershipLost(f"lease not renewed: {type(exc).__name__}: {exc}") from exc
        if not renewed:
            raise LeadershipLost(f"epoch {self.epoch} was taken over")
        self._until = started + LEASE_SECONDS

    async def renew_if_due(self) -> None:
        if self._clock() >= self._until - LEASE_SECONDS + RENEW_SECONDS:
            await self.renew()

    async def resign(self) -> None:
        """After a clean stop (every send acknowledged or failed): the next leader need not wait."""
        with contextlib.suppress(OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await self.connection.execute(
                "UPDATE consent.relay_leadership SET renewed_at = '-infinity' WHERE epoch = $1", self.epoch, timeout=2
            )

    def check(self) -> None:
        if self._clock() >= self._until:
            raise LeadershipLost("lease expired")


class RelayLeadership:
    def __init__(self, pool: asyncpg.Pool, clock: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._clock = clock

    @contextlib.asynccontextmanager
    async def lead(self) -> AsyncIterator[Lease]:
        """Wait to become the leader (polling, so a standby never trips the lock timeout), wait out
        the previous leader's fence, then hold the lease until the block ends."""
        async with self._pool.acquire() as connection:
            try:
                while not await connection.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                    await asyncio.sleep(STANDBY_POLL_SECONDS)
                row = await connection.fetchrow(_TAKE_OFFICE)
                assert row is not None
                epoch, wait = int(row["epoch"]), FENCE_SECONDS + float(row["since"])
                if wait > 0:
                    log.info("relay leader epoch %d: waiting %.1fs for the previous leader to stop", epoch, wait)
                    await asyncio.sleep(wait)
                lease = Lease(connection, epoch, self._clock)
                await lease.renew()
                log.info("relay leader epoch %d", epoch)
                yield lease
            finally:
                try:
                    await connection.execute("SELECT pg_advisory_unlock_all()")
                except BaseException:
                    # the pool does no full reset: a connection that may still hold the relay lock must
                    # never be handed to anyone else (a dead one the pool has already taken back itself)
                    with contextlib.suppress(Exception):
                        connection.terminate()
                    raise
