"""Who may do what, on a real consent service and gate: OAuth2 access tokens verified against the local
issuer's JWKS, API keys, separate scopes, the credential recorded in the ledger, back-dating and the past
`at` reserved to their scopes, and a request budget per credential on the consent API."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from samtykke.adapters.settings import Settings
from samtykke.consent.app import create_app
from samtykke.devstack.issuer import LOCAL_ISSUER, LocalIssuer

from .conftest import ADMIN, RunningConsent, ServerThread, consent_settings

SUBJECT = {"kind": "consumer", "country": "DK", "identifiers": {"phone": "+45 20 11 22 33"}}
EVERYTHING = ["consent:read", "consent:write", "identifiers:read"]


def decision(occurred_at: datetime | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "decisions": [{"purpose": "direct_marketing", "channel": "sms", "action": "grant"}],
        "source": "self_service",
        "actor": {"kind": "agent", "ref": "claimed-by-the-body"},
        "notice_version": "dm-2026-01",
    }
    if occurred_at is not None:
        body["decisions"][0]["occurred_at"] = occurred_at.isoformat()
    return body


@pytest.fixture
def issuer(tmp_path: Path) -> LocalIssuer:
    return LocalIssuer(tmp_path / "issuer")


@pytest.fixture
def consent_server(stack: Any, fresh_database: str, topic_names: Any, issuer: LocalIssuer) -> Iterator[Settings]:
    settings = consent_settings(
        stack,
        fresh_database,
        topic_names,
        oauth_jwks_url=issuer.jwks_url,
        oauth_issuer=LOCAL_ISSUER,
        oauth_audience="samtykke",
        oauth_scope_map={"crm.all": ["consent:read", "consent:write"]},
        consent_rate_limit_per_minute=40,
    )
    with ServerThread(create_app(settings), settings.consent_port):
        yield settings


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_an_access_token_works_end_to_end_and_its_client_is_in_the_ledger(
    consent: RunningConsent, issuer: LocalIssuer
) -> None:
    token = bearer(issuer.token("crm-nordics", EVERYTHING, "samtykke"))
    created = await consent.client.post("/v1/subjects", json=SUBJECT, headers=token)
    assert created.status_code == 201, created.text
    subject = created.json()["subject_id"]
    assert created.json()["identifiers"]["phone"] == "+4520112233"  # identifiers:read
    recorded = await consent.client.post(f"/v1/subjects/{subject}/consents", json=decision(), headers=token)
    assert recorded.status_code == 201, recorded.text

    history = (await consent.client.get(f"/v1/subjects/{subject}/history", headers=token)).json()
    assert [(e["client_id"], e["actor_kind"], e["actor_ref"]) for e in history] == [("crm-nordics", "agent", None)]
    agent = bearer(issuer.token("cs-desk", ["consent:read", "evidence:read"], "samtykke"))
    history = (await consent.client.get(f"/v1/subjects/{subject}/history", headers=agent)).json()
    assert [(e["client_id"], e["actor_kind"], e["actor_ref"]) for e in history] == [
        ("crm-nordics", "agent", "claimed-by-the-body")
    ]
    export = (await consent.client.get(f"/v1/subjects/{subject}/export", headers=token)).json()
    assert [e["client_id"] for e in export["history"]] == ["crm-nordics"]

    # an API key is recorded by its digest's prefix, never in clear
    by_key = await consent.client.post(f"/v1/subjects/{subject}/consents", json=decision(), headers=ADMIN)
    assert by_key.status_code == 201, by_key.text
    history = (await consent.client.get(f"/v1/subjects/{subject}/history", headers=token)).json()
    assert history[-1]["client_id"] == "apikey:" + hashlib.sha256(b"dev-admin").hexdigest()[:12]


async def test_issuer_scopes_are_mapped_and_a_rotated_key_is_picked_up(
    consent: RunningConsent, issuer: LocalIssuer
) -> None:
    mapped = bearer(issuer.token("crm-legacy", ["crm.all"], "samtykke"))
    created = await consent.client.post("/v1/subjects", json=SUBJECT, headers=mapped)
    assert created.status_code == 201, created.text
    assert created.json()["identifiers"] is None  # crm.all maps to read/write, not identifiers:read

    issuer.rotate()
    await asyncio.sleep(2.1)  # unknown key ids are looked up again at most this often
    rotated = bearer(issuer.token("crm-legacy", ["consent:read"], "samtykke"))
    assert (await consent.client.get("/v1/purposes", headers=rotated)).status_code == 200


@pytest.mark.parametrize(
    "case, expected",
    [
        ("expired", "token expired"),
        ("audience", "token is for another audience"),
        ("issuer", "token from another issuer"),
        ("foreign key", "token signed by an unknown key"),
        ("tampered", "token not valid"),
    ],
)
async def test_a_bad_token_is_a_401_naming_why(
    consent: RunningConsent, issuer: LocalIssuer, tmp_path: Path, case: str, expected: str
) -> None:
    if case == "expired":
        token = issuer.token("crm", ["consent:read"], "samtykke", ttl_seconds=-120)
    elif case == "audience":
        token = issuer.token("crm", ["consent:read"], "someone-else")
    elif case == "issuer":
        token = issuer.token("crm", ["consent:read"], "samtykke", iss="https://evil.invalid")
    elif case == "foreign key":
        token = LocalIssuer(tmp_path / "another").token("crm", ["consent:read"], "samtykke")
    else:
        head, payload, signature = issuer.token("crm", ["consent:read"], "samtykke").split(".")
        token = f"{head}.{payload}.{signature[:-4]}AAAA"
    response = await consent.client.get("/v1/purposes", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["problems"] == [{"field": "Authorization", "rule": expected}]
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


async def test_no_scope_implies_another(consent: RunningConsent, issuer: LocalIssuer) -> None:
    writer = bearer(issuer.token("crm", ["consent:write", "consent:read"], "samtykke"))
    subject = (await consent.client.post("/v1/subjects", json=SUBJECT, headers=writer)).json()["subject_id"]
    forbidden = {
        ("POST", f"/v1/subjects/{subject}/erasure"): "subjects:erase",
        ("GET", f"/v1/subjects/{subject}/export"): "identifiers:read",
        ("GET", "/v1/outbox"): "consent:admin",
    }
    for (method, path), scope in forbidden.items():
        response = await consent.client.request(method, path, headers=writer)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["problems"] == [{"field": "Authorization", "rule": f"credential lacks scope '{scope}'"}]
    registers = {"Authorization": "Bearer dev-registers"}
    assert (await consent.client.get(f"/v1/subjects/{subject}", headers=registers)).status_code == 403
    shown = (await consent.client.get(f"/v1/subjects/{subject}", headers=writer)).json()
    assert shown["identifiers"] is None and shown["has_identifiers"]["phone"] is True


async def test_back_dating_beyond_the_window_needs_the_import_scope(
    consent: RunningConsent, issuer: LocalIssuer
) -> None:
    writer = bearer(issuer.token("crm", ["consent:write", "consent:read"], "samtykke"))
    importer = bearer(issuer.token("migration", ["consent:write", "consent:import"], "samtykke"))
    subject = (await consent.client.post("/v1/subjects", json=SUBJECT, headers=writer)).json()["subject_id"]
    long_ago = datetime.now(UTC) - timedelta(days=1200)
    refused = await consent.client.post(f"/v1/subjects/{subject}/consents", json=decision(long_ago), headers=writer)
    assert refused.status_code == 403
    assert refused.json()["problems"] == [
        {"field": "decisions[0].occurred_at", "rule": "more than 30 days in the past needs the consent:import scope"}
    ]
    assert (await consent.client.get(f"/v1/subjects/{subject}/history", headers=writer)).json() == []
    imported = await consent.client.post(f"/v1/subjects/{subject}/consents", json=decision(long_ago), headers=importer)
    assert imported.status_code == 201, imported.text
    recent = datetime.now(UTC) - timedelta(days=2)
    ok = await consent.client.post(f"/v1/subjects/{subject}/consents", json=decision(recent), headers=writer)
    assert ok.status_code == 201, ok.text


async def test_the_consent_api_has_a_budget_per_credential(consent: RunningConsent, issuer: LocalIssuer) -> None:
    spender = bearer(issuer.token("noisy", ["consent:read"], "samtykke"))
    other = bearer(issuer.token("quiet", ["consent:read"], "samtykke"))
    async with httpx.AsyncClient(base_url=consent.url, timeout=30) as client:
        answers = [(await client.get("/v1/purposes", headers=spender)) for _ in range(45)]
        limited = [a for a in answers if a.status_code == 429]
        assert limited and all(a.status_code == 200 for a in answers[:40])
        assert int(limited[0].headers["Retry-After"]) >= 1 and limited[0].headers["RateLimit-Remaining"] == "0"
        assert answers[0].headers["RateLimit-Limit"] == "40"
        assert (await client.get("/v1/purposes", headers=other)).status_code == 200
