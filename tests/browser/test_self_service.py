"""The self-service pages in a real browser: one-click withdrawal reaching the gate, a company admin's
traffic-data choices, an employee's channels, expired links, the language switch, and an axe audit."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, expect

from samtykke.domain.projection import pseudonym
from samtykke.selfservice.access import Grant, SelfServiceAccess
from samtykke.selfservice.access import Page as SelfServicePage
from samtykke.selfservice.texts import NOTICE_VERSION
from tests.integration.conftest import RunningConsent
from tests.integration.projections.conftest import ProjectionPlatform
from tests.integration.suppression.conftest import RunningSuppression
from tests.integration.test_consent_service import batch, register

from .conftest import Screenshots, mint

DANE = {"kind": "consumer", "country": "DK", "identifiers": {"email": "karen.holm@example.dk"}}
ACCOUNT = "acme-se-556677"
BUSINESS = {"kind": "business", "country": "SE", "account_id": ACCOUNT, "identifiers": {}}


def employee(email: str) -> dict[str, Any]:
    return {"kind": "employee", "country": "SE", "account_id": ACCOUNT, "identifiers": {"email": email}}


async def new_page(browser: Browser, locale: str) -> Page:
    context = await browser.new_context(locale=locale, extra_http_headers={"Accept-Language": locale})
    return await context.new_page()


def switch(page: Page, group: str, name: str) -> Any:
    return page.get_by_role("group", name=group).get_by_role("switch", name=re.compile(f"^{name}"))


async def state(consent: RunningConsent, subject: str) -> dict[tuple[str, str | None], str]:
    rows = (await consent.client.get(f"/v1/subjects/{subject}/consents")).json()
    return {(r["purpose"], r["channel"]): r["status"] for r in rows}


async def ledger(consent: RunningConsent, subject: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (await consent.client.get(f"/v1/subjects/{subject}/history")).json()
    return rows


async def serious_violations(page: Page) -> list[str]:
    results = await Axe().run(page)
    violations = results.response["violations"]
    return [f"{v['id']}: {v['help']}" for v in violations if v["impact"] in ("serious", "critical")]


async def test_a_consumer_withdraws_email_marketing_with_one_click(
    consent: RunningConsent,
    suppression: RunningSuppression,
    browser: Browser,
    screenshots: Screenshots,
) -> None:
    subject = await register(consent, DANE)
    granted = await consent.client.post(
        f"/v1/subjects/{subject}/consents", json=batch(("direct_marketing", "email", "grant"))
    )
    assert granted.status_code == 201, granted.text
    check = {"email": DANE["identifiers"]["email"], "purpose": "direct_marketing", "channel": "email"}
    await suppression.wait_for(lambda d: d["result"] == "allowed", **check)

    page = await new_page(browser, "da-DK")
    await page.goto(await mint(consent, subject, "consumer"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dine samtykker")
    email = switch(page, "Markedsføring fra os", "E-mail")
    await expect(email).to_have_attribute("aria-checked", "true")
    await screenshots.take(page, "consumer-before")

    started = time.perf_counter()
    await email.click()  # the one click
    decision = await suppression.wait_for(lambda d: d["result"] == "blocked", **check)
    took = time.perf_counter() - started
    print(f"\ntoggle click to blocked at the gate: {took * 1000:.0f} ms (page -> ledger -> outbox -> Kafka -> index)")
    assert decision["reasons"] == ["withdrawn"]
    assert took < 10, f"{took:.2f} s"

    await expect(page.get_by_role("status")).to_have_text("Gemt.")
    await expect(switch(page, "Markedsføring fra os", "E-mail")).to_have_attribute("aria-checked", "false")
    await screenshots.take(page, "consumer-after")
    last = (await ledger(consent, subject))[-1]
    assert (last["source"], last["actor_kind"], last["client_id"], last["status"]) == (
        "self_service",
        "subject",
        "self-service",
        "withdrawn",
    )
    assert (last["notice_version"], last["evidence_ref"]) == (NOTICE_VERSION, f"page:da:{NOTICE_VERSION}")
    # service messages and the other bases stay, shown read-only
    await expect(page.get_by_text("Beskeder om dit abonnement får du stadig.")).to_be_visible()
    await expect(page.get_by_role("switch", name=re.compile("Levering"))).to_have_count(0)


async def test_a_company_admin_turns_on_product_development_and_fault_prevention(
    consent: RunningConsent, browser: Browser, screenshots: Screenshots, platform: ProjectionPlatform
) -> None:
    business = await register(consent, BUSINESS)
    first = await register(consent, employee("ola@acme.se"))
    second = await register(consent, employee("eva@acme.se"))
    texting = batch(("direct_marketing", "sms", "grant"))
    assert (await consent.client.post(f"/v1/subjects/{first}/consents", json=texting)).status_code == 201

    page = await new_page(browser, "sv-SE")
    await page.goto(await mint(consent, business, "company", actor_ref="portal-admin-42"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Mitt Företag: företagets samtycken")
    await screenshots.take(page, "company-before")
    for purpose in ("Produktutveckling", "Förebyggande av fel"):
        await switch(page, purpose, purpose).click()
        await expect(switch(page, purpose, purpose)).to_have_attribute("aria-checked", "true")
    await screenshots.take(page, "company-after")

    now = await state(consent, business)
    assert now[("product_development", None)] == now[("fault_prevention", None)] == "granted"
    assert ("personalised_offers", None) not in now and ("customer_service_improvement", None) not in now
    rows = [r for r in await ledger(consent, business) if r["source"] == "self_service"]
    assert {(r["purpose"], r["actor_kind"], r["actor_ref"]) for r in rows} == {
        ("product_development", "company_admin", "portal-admin-42"),
        ("fault_prevention", "company_admin", "portal-admin-42"),
    }
    # the employees' own choices are shown, never offered as toggles to the admin
    staff = page.get_by_role("region", name="De anställdas kontaktval")
    await expect(staff.get_by_role("row", name=re.compile("ola@acme.se"))).to_contain_text("SMS: På")
    await expect(staff.get_by_role("row", name=re.compile("eva@acme.se"))).to_contain_text("SMS: Av")
    await expect(staff.get_by_role("switch")).to_have_count(0)
    # the existing-customer rule: allowed unless the company objects, per channel
    await expect(switch(page, "Erbjudanden om produkter ni redan har", "E-post")).to_have_attribute(
        "aria-checked", "true"
    )

    # the analytics domain shows both purposes for both employees, decided by their company
    await platform.start("analytics")
    await platform.caught_up("analytics")
    key = platform.settings.analytics_pseudonym_key.encode()
    conn = await platform.owner()
    try:
        rows = await conn.fetch("SELECT pseudonym, purpose, decided_by FROM analytics.traffic_data_use")
    finally:
        await conn.close()
    employees = {pseudonym(key, first): "ola", pseudonym(key, second): "eva"}
    shown = {(employees[r["pseudonym"]], r["purpose"], r["decided_by"]) for r in rows if r["pseudonym"] in employees}
    assert shown == {
        (who, purpose, "company") for who in ("ola", "eva") for purpose in ("product_development", "fault_prevention")
    }


async def test_an_employee_switches_to_sms_only_by_keyboard(
    consent: RunningConsent, browser: Browser, screenshots: Screenshots
) -> None:
    worker = await register(consent, employee("nils@acme.se"))
    mail = batch(("direct_marketing", "email", "grant"))
    assert (await consent.client.post(f"/v1/subjects/{worker}/consents", json=mail)).status_code == 201

    page = await new_page(browser, "en-GB")
    await page.goto(await mint(consent, worker, "employee"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your contact choices")
    await screenshots.take(page, "employee-before")
    await switch(page, "Marketing from us", "SMS").focus()
    await page.keyboard.press("Space")
    await expect(switch(page, "Marketing from us", "SMS")).to_have_attribute("aria-checked", "true")
    await switch(page, "Marketing from us", "E-mail").focus()
    await page.keyboard.press("Enter")
    await expect(switch(page, "Marketing from us", "E-mail")).to_have_attribute("aria-checked", "false")
    await screenshots.take(page, "employee-after")
    assert await state(consent, worker) == {
        ("direct_marketing", "sms"): "granted",
        ("direct_marketing", "email"): "withdrawn",
    }


async def test_an_expired_or_forged_link_is_refused(
    consent: RunningConsent, browser: Browser, screenshots: Screenshots
) -> None:
    subject = await register(consent, DANE)
    wrong_page = await consent.client.post("/v1/self-service/links", json={"subject_id": subject, "page": "company"})
    assert wrong_page.status_code == 422, wrong_page.text
    body = {"subject_id": subject, "page": "consumer"}
    unscoped = await consent.client.post(
        "/v1/self-service/links", json=body, headers={"Authorization": "Bearer dev-reader"}
    )
    assert unscoped.status_code == 403, unscoped.text
    access = SelfServiceAccess(consent.settings.selfservice_key)
    expired = access.mint_link(Grant(subject, SelfServicePage.CONSUMER, datetime.now(UTC) - timedelta(seconds=1)))
    page = await new_page(browser, "en-GB")
    response = await page.goto(f"{consent.url}/s/{expired}")
    assert response is not None and response.status == 410
    await expect(page.get_by_role("heading", level=1)).to_contain_text("expired")
    await screenshots.take(page, "expired-link")
    response = await page.goto(f"{consent.url}/s/{expired[:-3]}xyz")
    assert response is not None and response.status == 404
    # without the session cookie the page shows nothing, and a forged post records nothing
    response = await page.goto(f"{consent.url}/my-consents")
    assert response is not None and response.status == 401
    posted = await page.request.post(
        f"{consent.url}/my-consents", form={"csrf": "x", "notice": NOTICE_VERSION, "lang": "en", "toggle": "x|-|on"}
    )
    assert posted.status == 401
    assert await ledger(consent, subject) == []


async def test_a_wrong_csrf_token_changes_nothing(consent: RunningConsent, browser: Browser) -> None:
    subject = await register(consent, DANE)
    page = await new_page(browser, "en-GB")
    await page.goto(await mint(consent, subject, "consumer"))
    form = {"csrf": "0" * 64, "notice": NOTICE_VERSION, "lang": "en", "toggle": "direct_marketing|email|on"}
    posted = await page.request.post(f"{consent.url}/my-consents", form=form)
    assert posted.status == 403
    assert await ledger(consent, subject) == []


async def test_the_language_switch(consent: RunningConsent, browser: Browser, screenshots: Screenshots) -> None:
    subject = await register(consent, DANE)
    page = await new_page(browser, "sv-SE")
    await page.goto(await mint(consent, subject, "consumer"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dina samtycken")
    await screenshots.take(page, "language-sv")
    await page.get_by_role("link", name="Norsk").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dine samtykker")
    assert await page.get_attribute("html", "lang") == "nb"
    await screenshots.take(page, "language-nb")
    await page.reload()  # the choice is kept (a cookie), over the browser's Accept-Language
    await expect(page.locator("html")).to_have_attribute("lang", "nb")
    await page.get_by_role("link", name="English").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your consents")
    await switch(page, "Marketing from us", "SMS").click()
    last = (await ledger(consent, subject))[-1]
    assert last["evidence_ref"] == f"page:en:{NOTICE_VERSION}"  # the language shown is what is recorded
    await screenshots.take(page, "language-en")


async def test_the_pages_pass_an_accessibility_audit(
    consent: RunningConsent, browser: Browser, screenshots: Screenshots
) -> None:
    consumer = await register(consent, DANE)
    business = await register(consent, BUSINESS)
    worker = await register(consent, employee("liv@acme.se"))
    await consent.client.post(f"/v1/subjects/{consumer}/consents", json=batch(("direct_marketing", "email", "grant")))
    for subject, kind, locale in (
        (consumer, "consumer", "da-DK"),
        (business, "company", "sv-SE"),
        (worker, "employee", "nb-NO"),
    ):
        page = await new_page(browser, locale)
        await page.goto(await mint(consent, subject, kind))
        await screenshots.take(page, f"audit-{kind}")
        assert await serious_violations(page) == [], kind
