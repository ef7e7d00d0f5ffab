"""Schema-based fuzzing of the consent API: whatever schemathesis sends, never a 5xx.

Runs the schemathesis CLI against the live service's generated OpenAPI document, with an
admin credential so requests get past authentication into validation and the rules.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from .conftest import RunningConsent


async def test_no_input_makes_the_consent_api_fail(consent: RunningConsent, tmp_path: Path) -> None:
    subject = (await consent.client.post("/v1/subjects", json={"kind": "consumer", "country": "SE"})).json()
    report = tmp_path / "fuzz.txt"
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "st"), "run", f"{consent.url}/openapi.json",
        "--checks", "not_a_server_error",
        "--header", "Authorization: Bearer dev-admin",
        "--max-examples", "40", "--seed", "20261121", "--request-timeout", "20",
        "--phases", "examples,coverage,fuzzing",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    report.write_bytes(output)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-4000:]
    assert "not_a_server_error" in text or "passed" in text.lower(), text[-2000:]
    assert subject["subject_id"]
