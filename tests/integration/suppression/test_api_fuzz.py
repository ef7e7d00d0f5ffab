"""Schema-based fuzzing of the suppression API with both kinds of credential: never a 5xx."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from samtykke.devstack.issuer import LocalIssuer

from ..conftest import RunningConsent
from ..fuzzing import CREDENTIAL_KINDS, authorization, credential_settings, fuzz_openapi
from .conftest import RunningSuppression
from .helpers import decide, register


@pytest.mark.parametrize("kind", CREDENTIAL_KINDS)
async def test_no_input_makes_the_suppression_api_fail(
    consent: RunningConsent,
    start_suppression: Callable[..., Awaitable[RunningSuppression]],
    tmp_path: Path,
    kind: str,
) -> None:
    issuer = LocalIssuer(tmp_path / "issuer")
    suppression = await start_suppression(**credential_settings(issuer))
    await suppression.wait_ready()
    subject = await register(consent, "SE", "+46 70 555 66 77")
    await decide(consent, subject, ("direct_marketing", "sms", "withdraw"))
    code, text = await fuzz_openapi(suppression.url, 25, tmp_path / "fuzz.txt", authorization(kind, issuer))
    assert code == 0, text[-4000:]
    assert "Tested: 9" in text, text[-2000:]  # every operation was reached
    assert (await suppression.client.get("/ready")).status_code == 200
