"""Fixtures for the browser tier: headless Chromium (Debian's, driven by Playwright) against a real
consent service on the real stack, a real gate where a test needs one, and a screenshot folder."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.integration.conftest import RunningConsent, consent, consent_server  # noqa: F401
from tests.integration.projections.conftest import platform  # noqa: F401
from tests.integration.suppression.conftest import start_suppression, suppression  # noqa: F401

CHROMIUM = os.environ.get("SAMTYKKE_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / ".state" / "screenshots" / "browser"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser-tools` (Debian's chromium package)")
    async with async_playwright() as playwright:
        # root (CI containers) needs --no-sandbox; the pages are our own, served on loopback
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


class Screenshots:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def take(self, page: Page, name: str) -> Path:
        path = self.folder / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        print(f"\nscreenshot: {path}")
        return path


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Screenshots:
    return Screenshots(SHOTS / re.sub(r"[^\w.-]", "_", request.node.name))


async def mint(consent: RunningConsent, subject: str, page: str, **extra: Any) -> str:  # noqa: F811
    response = await consent.client.post("/v1/self-service/links", json={"subject_id": subject, "page": page} | extra)
    assert response.status_code == 200, response.text
    # the link names the public base URL; the test's consent service listens on a port of its own
    return consent.url + urlsplit(response.json()["url"]).path
