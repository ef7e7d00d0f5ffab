"""Fixtures: a real suppression service (uvicorn in a thread) on the same topics as the consent fixture
(watermarks included: the consent service's relay makes it fresh), and a stand-in watermark publisher
on a topic of its own, for tests that control the watermarks (`topic_watermarks=watermarks.topic`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from samtykke.adapters.settings import Settings
from samtykke.suppression.app import create_app
from samtykke.suppression.feed import TopicFeed
from tests.ports import free_port

from ..conftest import RunningConsent, ServerThread
from .watermarks import WatermarkPublisher

MARKETING = {"Authorization": "Bearer dev-marketing"}


@dataclass
class RunningSuppression:
    url: str
    settings: Settings
    client: httpx.AsyncClient
    feed: TopicFeed

    async def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (await self.client.get("/ready")).status_code != 200:
            if time.monotonic() > deadline:
                raise AssertionError(f"not ready: {(await self.client.get('/ready')).text}")
            await asyncio.sleep(0.05)

    async def check(self, **body: Any) -> dict[str, Any]:
        response = await self.client.post("/v1/check", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30, **body: Any
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            decision = await self.check(**body)
            if predicate(decision):
                return decision
            if time.monotonic() > deadline:
                raise AssertionError(f"decision never matched: {decision}")
            await asyncio.sleep(0.02)


def suppression_settings(consent: Settings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "suppression_port": free_port(),
        "suppression_dlq_topic": f"{consent.topic_changes}.suppression.dlq",
        "topic_registers": f"{consent.topic_changes}.registers",
    }
    values.update(overrides)
    return consent.model_copy(update=values)


@pytest.fixture
async def watermarks(consent: RunningConsent) -> AsyncIterator[WatermarkPublisher]:
    """Publishes watermarks of the test's topics every 0.2 s on its own topic, as the relay does on its."""
    publisher = await WatermarkPublisher(suppression_settings(consent.settings)).start()
    try:
        yield publisher
    finally:
        await publisher.stop()


@pytest.fixture
async def start_suppression(consent: RunningConsent) -> AsyncIterator[Callable[..., Awaitable[RunningSuppression]]]:
    """Starts suppression services on the consent fixture's topics; settings overrides as keywords."""
    started: list[RunningSuppression] = []
    with contextlib.ExitStack() as servers:

        async def start(paused: bool = False, **overrides: Any) -> RunningSuppression:
            settings = suppression_settings(consent.settings, **overrides)
            app = create_app(settings)
            if paused:  # the feed will assign and look up end offsets, then apply nothing until resumed
                app.state.feed.pause()
            servers.enter_context(ServerThread(app, settings.suppression_port))
            url = f"http://127.0.0.1:{settings.suppression_port}"
            client = httpx.AsyncClient(base_url=url, headers=MARKETING, timeout=30)
            started.append(RunningSuppression(url, settings, client, app.state.feed))
            return started[-1]

        try:
            yield start
        finally:
            for running in started:
                await running.client.aclose()


@pytest.fixture
async def suppression(start_suppression: Callable[..., Awaitable[RunningSuppression]]) -> RunningSuppression:
    running = await start_suppression()
    await running.wait_ready()
    return running
