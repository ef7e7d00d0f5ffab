"""The projectors' error policy for I/O: transient failures are retried with capped backoff,
for as long as they last; anything else is raised (a bug: the worker stops and is restarted)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from aiokafka.errors import KafkaError

from samtykke.adapters.avro import RegistryError

from .metrics import ProjectionMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # connection refused / reset
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # e.g. the connection was closed under us
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.InvalidCachedStatementError,  # a rebuild swapped the schema
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, query cancelled
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, RegistryError | KafkaError):
        return bool(exc.retriable)
    return isinstance(exc, _TRANSIENT)


async def with_backoff(
    operation: Callable[[], Awaitable[T]],
    stage: str,
    metrics: ProjectionMetrics,
    first_delay: float = 0.1,
    max_delay: float = 5.0,
) -> T:
    delay = first_delay
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_transient(exc):
                raise
            metrics.retries.labels(metrics.domain, stage).inc()
            log.warning("%s: %s failed (%s), retrying in %.1fs", metrics.domain, stage, type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
