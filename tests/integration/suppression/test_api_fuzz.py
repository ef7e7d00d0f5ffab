"""Schema-based fuzzing of the suppression API: whatever schemathesis sends, never a 5xx."""

from __future__ import annotations

from pathlib import Path

from ..conftest import RunningConsent
from ..fuzzing import fuzz_openapi
from .conftest import RunningSuppression
from .helpers import decide, register


async def test_no_input_makes_the_suppression_api_fail(
    consent: RunningConsent, suppression: RunningSuppression, tmp_path: Path
) -> None:
    subject = await register(consent, "SE", "+46 70 555 66 77")
    await decide(consent, subject, ("direct_marketing", "sms", "withdraw"))
    code, text = await fuzz_openapi(suppression.url, 30, tmp_path / "fuzz.txt")
    assert code == 0, text[-4000:]
    assert "Tested: 9" in text, text[-2000:]  # every operation was reached
    assert (await suppression.client.get("/ready")).status_code == 200
