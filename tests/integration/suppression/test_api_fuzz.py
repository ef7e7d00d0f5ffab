"""Schema-based fuzzing of the suppression API: whatever schemathesis sends, never a 5xx."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ..conftest import RunningConsent
from .conftest import RunningSuppression
from .helpers import decide, register


async def test_no_input_makes_the_suppression_api_fail(
    consent: RunningConsent, suppression: RunningSuppression, tmp_path: Path
) -> None:
    subject = await register(consent, "SE", "+46 70 555 66 77")
    await decide(consent, subject, ("direct_marketing", "sms", "withdraw"))
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "st"), "run", f"{suppression.url}/openapi.json",
        "--checks", "not_a_server_error",
        "--header", "Authorization: Bearer dev-admin",
        "--max-examples", "30", "--seed", "20261121", "--request-timeout", "20",
        "--phases", "examples,coverage,fuzzing",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    (tmp_path / "fuzz.txt").write_bytes(output)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-4000:]
    assert "Tested: 9" in text, text[-2000:]  # every operation was reached
    assert (await suppression.client.get("/ready")).status_code == 200
