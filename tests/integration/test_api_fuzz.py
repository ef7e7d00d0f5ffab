"""Schema-based fuzzing of the consent API: whatever schemathesis sends, never a 5xx."""

from __future__ import annotations

from pathlib import Path

from .conftest import RunningConsent
from .fuzzing import fuzz_openapi


async def test_no_input_makes_the_consent_api_fail(consent: RunningConsent, tmp_path: Path) -> None:
    subject = (await consent.client.post("/v1/subjects", json={"kind": "consumer", "country": "SE"})).json()
    code, text = await fuzz_openapi(consent.url, 40, tmp_path / "fuzz.txt")
    assert code == 0, text[-4000:]
    assert "not_a_server_error" in text or "passed" in text.lower(), text[-2000:]
    assert subject["subject_id"]
