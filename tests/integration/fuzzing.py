"""Runs the schemathesis CLI against a live service's OpenAPI document: any 5xx fails."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


async def fuzz_openapi(base_url: str, max_examples: int, report: Path) -> tuple[int, str]:
    """Return schemathesis's exit code and output (also written to `report`)."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--header",
        "Authorization: Bearer dev-admin",  # past authentication, into validation and rules
        "--max-examples",
        str(max_examples),
        "--seed",
        "20261121",
        "--request-timeout",
        "20",
        "--phases",
        "examples,coverage,fuzzing",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    report.write_bytes(output)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")
