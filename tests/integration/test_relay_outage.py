"""Nothing is lost when Kafka is down: writes succeed, the outbox waits, the relay catches up."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from samtykke import devstack
from samtykke.adapters.kafka import client_options

from .conftest import RunningConsent
from .test_consent_service import batch
from .test_consent_service import consent_server as consent_server  # watermarks on the test's own topic
from .topic_reader import decode_all, read_raw

SUBJECTS = 5
CHANGES_EACH = 20


async def test_kafka_outage_delivers_all_changes_in_order(consent: RunningConsent, local_stack: Any) -> None:
    subjects = []
    for _ in range(SUBJECTS):
        response = await consent.client.post("/v1/subjects", json={"kind": "consumer", "country": "NO"})
        subjects.append(response.json()["subject_id"])
    await consent.wait_outbox_empty()

    await asyncio.to_thread(devstack.stop_part, "kafka")
    try:
        for i in range(CHANGES_EACH):
            action = "grant" if i % 2 == 0 else "withdraw"
            for subject in subjects:
                response = await consent.client.post(
                    f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "sms", action))
                )
                assert response.status_code == 201, response.text
        backlog = (await consent.client.get("/v1/outbox")).json()["backlog"]
        assert backlog == SUBJECTS * CHANGES_EACH
    finally:
        await asyncio.to_thread(devstack.start_part, "kafka")

    await consent.wait_outbox_empty(timeout=180)
    settings = consent.settings
    records = await decode_all(
        settings.registry_url,
        await read_raw(client_options(settings), settings.topic_changes, SUBJECTS * CHANGES_EACH),
    )
    first_seen: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for record in sorted(records, key=lambda r: (r["_partition"], r["_offset"])):
        if str(record["event_id"]) not in seen:  # the relay may redeliver after a failed batch
            seen.add(str(record["event_id"]))
            first_seen[record["subject_id"]].append(record["version"])
    assert len(seen) == SUBJECTS * CHANGES_EACH
    for subject in subjects:
        assert first_seen[subject] == list(range(1, CHANGES_EACH + 1))
