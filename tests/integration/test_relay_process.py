"""The relay as a process of its own: an API told not to relay leaves the outbox to it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from samtykke.adapters.kafka import client_options
from samtykke.adapters.settings import Settings
from samtykke.consent.app import create_app
from samtykke.devstack.process import ServiceProcess, settings_environment
from tests.ports import free_port

from .conftest import RunningConsent, ServerThread, consent_settings
from .test_consent_service import batch
from .topic_reader import decode_all, read_raw

CARRIED = (
    "kafka_bootstrap",
    "registry_url",
    "database_url",
    "topic_changes",
    "topic_subjects",
    "topic_watermarks",
    "topic_partitions",
    "relay_idle_poll_seconds",
    "relay_port",
    "http_host",
)


@pytest.fixture
def consent_server(stack: Any, fresh_database: str, topic_names: Any) -> Iterator[Settings]:
    settings = consent_settings(stack, fresh_database, topic_names, consent_relay=False, relay_port=free_port())
    with ServerThread(create_app(settings), settings.consent_port):
        yield settings


async def test_api_without_relay_leaves_the_outbox_to_the_relay_process(consent: RunningConsent, tmp_path: Any) -> None:
    settings = consent.settings
    subjects = []
    for _ in range(3):
        created = await consent.client.post("/v1/subjects", json={"kind": "consumer", "country": "NO"})
        assert created.status_code == 201, created.text
        subject = created.json()["subject_id"]
        granted = await consent.client.post(
            f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "sms", "grant"))
        )
        assert granted.status_code == 201, granted.text
        subjects.append(subject)
    await asyncio.sleep(3 * settings.relay_idle_poll_seconds + 1)  # an API that relayed would have drained it
    assert (await consent.client.get("/v1/outbox")).json()["backlog"] == 6  # 3 SubjectChanged, 3 ConsentChanged

    url = f"http://127.0.0.1:{settings.relay_port}"
    env = settings_environment(settings, CARRIED)
    async with ServiceProcess("relay", ("consent", "relay"), url, env, tmp_path / "relay.log", ready_timeout=60):
        await consent.wait_outbox_empty()
        async with httpx.AsyncClient(base_url=url, timeout=10) as relay:
            ready = (await relay.get("/ready")).json()
            assert ready["leader_epoch"] >= 1 and ready["outbox"]["backlog"] == 0, ready
            assert (await relay.get("/healthz")).json() == {"status": "ok"}
            metrics = (await relay.get("/metrics")).text
        api_metrics = (await consent.client.get("/metrics")).text

    raw = await read_raw(client_options(settings), settings.topic_changes, 3)
    changes = await decode_all(settings.registry_url, raw)
    assert sorted(r["subject_id"] for r in changes) == sorted(subjects)
    assert f'samtykke_relay_published_total{{topic="{settings.topic_changes}"}} 3.0' in metrics
    assert "samtykke_relay_leader_epoch 0.0" in api_metrics  # the API never led
