"""RFC 8058 one-click unsubscribe links against the running consent service and its PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from samtykke.consent.unsubscribe_tokens import UnsubscribeTarget, UnsubscribeTokens
from samtykke.domain.model import Channel

from .conftest import RunningConsent
from .test_consent_service import batch, register

SWEDE = {"kind": "consumer", "country": "SE", "identifiers": {"email": "astrid.lind@example.se"}}
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


async def granted_subject(consent: RunningConsent) -> str:
    subject = await register(consent, SWEDE)
    response = await consent.client.post(
        f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "email", "grant"))
    )
    assert response.status_code == 201, response.text
    return subject


async def mint(consent: RunningConsent, subject: str, channel: str = "email") -> dict[str, Any]:
    response = await consent.client.post(
        "/v1/unsubscribe-links", json={"subject_id": subject, "purpose": "direct_marketing", "channel": channel}
    )
    assert response.status_code == 200, response.text
    link: dict[str, Any] = response.json()
    return link


def public(consent: RunningConsent) -> httpx.AsyncClient:
    """Whoever clicks: no credential at all."""
    return httpx.AsyncClient(base_url=consent.url, timeout=30)


def path(link: dict[str, Any]) -> str:
    return "/u/" + link["url"].rsplit("/u/", 1)[1]


async def test_a_link_and_its_headers_name_nobody(consent: RunningConsent) -> None:
    subject = await granted_subject(consent)
    link = await mint(consent, subject)
    assert link["url"].startswith(consent.settings.public_base_url + "/u/")
    assert subject not in link["url"]
    assert link["headers"] == {
        "List-Unsubscribe": f"<{link['url']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    expires = datetime.fromisoformat(link["expires_at"])
    assert timedelta(days=89) < expires - datetime.now(UTC) <= timedelta(days=90)


async def test_minting_checks_the_purpose_and_the_credential(consent: RunningConsent) -> None:
    subject = await granted_subject(consent)
    bad = await consent.client.post(
        "/v1/unsubscribe-links", json={"subject_id": subject, "purpose": "direct_marketing", "channel": None}
    )
    assert bad.status_code == 422
    async with public(consent) as anyone:
        unauthorised = await anyone.post("/v1/unsubscribe-links", json={"subject_id": subject, "purpose": "x"})
    assert unauthorised.status_code == 401


async def test_one_click_withdraws_once(consent: RunningConsent) -> None:
    subject = await granted_subject(consent)
    link = await mint(consent, subject)
    async with public(consent) as mail_client:
        first = await mail_client.post(path(link), data=ONE_CLICK)
        assert first.status_code == 200, first.text
        history = (await consent.client.get(f"/v1/subjects/{subject}/history")).json()
        withdrawal = history[-1]
        assert (withdrawal["purpose"], withdrawal["channel"], withdrawal["status"]) == (
            "direct_marketing",
            "email",
            "withdrawn",
        )
        assert withdrawal["source"] == "unsubscribe_link" and withdrawal["actor_kind"] == "subject"
        assert withdrawal["client_id"] == "unsubscribe-link"

        second = await mail_client.post(path(link), data=ONE_CLICK)
        assert second.status_code == 200
    assert (await consent.client.get(f"/v1/subjects/{subject}/history")).json() == history


async def test_a_tampered_token_changes_nothing(consent: RunningConsent) -> None:
    subject = await granted_subject(consent)
    token = path(await mint(consent, subject)).removeprefix("/u/")
    middle = len(token) // 2
    tampered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    async with public(consent) as anyone:
        for forged in (tampered, "not-a-token", token[:-4]):
            response = await anyone.post(f"/u/{forged}", data=ONE_CLICK)
            assert 400 <= response.status_code < 500, response.status_code
    consents = (await consent.client.get(f"/v1/subjects/{subject}/consents")).json()
    assert [(c["purpose"], c["status"]) for c in consents] == [("direct_marketing", "granted")]


async def test_an_expired_link_answers_410(consent: RunningConsent) -> None:
    subject = await granted_subject(consent)
    tokens = UnsubscribeTokens(consent.settings.unsubscribe_token_key)
    expired = UnsubscribeTarget(subject, "direct_marketing", Channel.EMAIL, datetime.now(UTC) - timedelta(seconds=1))
    async with public(consent) as anyone:
        response = await anyone.post(f"/u/{tokens.mint(expired)}", data=ONE_CLICK, headers={"Accept-Language": "da"})
    assert response.status_code == 410
    assert "udløbet" in response.text
    consents = (await consent.client.get(f"/v1/subjects/{subject}/consents")).json()
    assert consents[0]["status"] == "granted"


async def test_get_asks_in_the_readers_language_and_changes_nothing(consent: RunningConsent) -> None:
    subject = await granted_subject(consent)
    link = await mint(consent, subject)
    async with public(consent) as scanner:
        page = await scanner.get(path(link), headers={"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.5"})
        english = await scanner.get(path(link), headers={"Accept-Language": "en"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<html lang="sv">' in page.text and "avregistrera" in page.text.lower()
    assert '<form method="post">' in page.text and 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert '<html lang="en">' in english.text
    consents = (await consent.client.get(f"/v1/subjects/{subject}/consents")).json()
    assert consents[0]["status"] == "granted"
