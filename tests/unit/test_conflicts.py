"""Conflicts of the consent API: the holder of a national id is named only to a credential that may
read identifiers, and a unique fact stored by a concurrent request is a 409 (a small app in memory)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from samtykke.adapters.auth import Principal
from samtykke.consent.api import install_error_handlers
from samtykke.consent.errors import Conflict, RulesBroken
from samtykke.consent.ports import AlreadyStored
from samtykke.domain.consent import RuleViolation

HOLDER = "6f1c0c4e-1b2a-4c3d-8e4f-0123456789ab"


def principal_with(*scopes: str) -> Principal:
    return Principal("crm", frozenset(scopes))


def _client(principal: Any) -> httpx.AsyncClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/register")
    async def register(request: Request) -> None:
        if principal is not None:
            request.state.principal = principal
        raise Conflict("a subject with this national id is already registered", HOLDER)

    @app.post("/record")
    async def record() -> None:
        reused = RulesBroken([RuleViolation("Idempotency-Key", "was already used for a different request")])
        raise reused from AlreadyStored("this idempotency key was already used")

    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test")


@pytest.mark.parametrize(
    ("principal", "revealed"),
    [
        (None, False),
        (principal_with("consent:write", "consent:read"), False),
        (principal_with("consent:write", "identifiers:read"), True),
        (principal_with(), False),
    ],
)
async def test_the_holder_is_named_only_to_who_may_read_identifiers(principal: Any, revealed: bool) -> None:
    response = await _client(principal).post("/register")
    assert response.status_code == 409
    assert response.json().get("subject_id") == (HOLDER if revealed else None)
    assert response.json()["problems"][0]["field"] == "subject"


async def test_an_idempotency_key_taken_by_a_concurrent_request_is_a_conflict() -> None:
    response = await _client(None).post("/record")
    assert response.status_code == 409
    assert response.json()["problems"] == [
        {"field": "Idempotency-Key", "rule": "was already used for a different request (by a concurrent request)"}
    ]
