"""Small helpers shared by the suppression integration tests: drive the real consent API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..conftest import RunningConsent


async def register(
    consent: RunningConsent,
    country: str = "DK",
    phone: str | None = None,
    email: str | None = None,
    kind: str = "consumer",
) -> str:
    body: dict[str, Any] = {"kind": kind, "country": country, "identifiers": {"phone": phone, "email": email}}
    response = await consent.client.post("/v1/subjects", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["subject_id"])


async def decide(
    consent: RunningConsent,
    subject_id: str,
    *decisions: tuple[str, str | None, str],
    occurred_at: datetime | None = None,
) -> None:
    items = [
        {"purpose": p, "channel": c, "action": a} | ({"occurred_at": occurred_at.isoformat()} if occurred_at else {})
        for p, c, a in decisions
    ]
    body = {"decisions": items, "source": "self_service", "actor": {"kind": "subject"}, "notice_version": "dm-2026-01"}
    response = await consent.client.post(f"/v1/subjects/{subject_id}/consents", json=body)
    assert response.status_code == 201, response.text
