"""Fixtures for integration tests: a real consent service (uvicorn in a thread) on the real stack."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from samtykke.adapters.settings import Settings
from samtykke.consent.app import create_app
from tests.ports import free_port

ADMIN = {"Authorization": "Bearer dev-admin"}
REGISTERS = {"Authorization": "Bearer dev-registers"}


class ServerThread:
    """Runs an ASGI app under uvicorn in its own thread and event loop, like a separate process."""

    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("consent service did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class RunningConsent:
    url: str
    settings: Settings
    client: httpx.AsyncClient

    async def wait_outbox_empty(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status = (await self.client.get("/v1/outbox")).json()
            if status["backlog"] == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"outbox not drained: {status}")
            await asyncio.sleep(0.1)


def consent_settings(stack: Any, database_url: str, topics: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": stack.kafka_bootstrap,
        "registry_url": stack.registry_url,
        "database_url": database_url,
        "topic_changes": topics.changes,
        "topic_subjects": topics.subjects,
        # the test's own watermark topic: never the shared one other tests' gates read
        "topic_watermarks": topics.changes.removesuffix("changes") + "watermarks",
        "topic_partitions": 3,
        "consent_port": free_port(),
        "relay_idle_poll_seconds": 0.5,
        "sweeper_interval_seconds": 3600,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def consent_server(stack: Any, fresh_database: str, topic_names: Any) -> Iterator[Settings]:
    settings = consent_settings(stack, fresh_database, topic_names)
    with ServerThread(create_app(settings), settings.consent_port):
        yield settings


@pytest.fixture
async def consent(consent_server: Settings) -> AsyncIterator[RunningConsent]:
    url = f"http://127.0.0.1:{consent_server.consent_port}"
    async with httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=30) as client:
        yield RunningConsent(url, consent_server, client)
