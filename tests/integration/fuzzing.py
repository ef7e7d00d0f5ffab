"""Runs the schemathesis CLI against a live service's OpenAPI document: any 5xx fails.

Each API is fuzzed with both kinds of credential, an API key and an OAuth2 access token from the local
issuer, each holding every scope, so the requests get past authentication into validation and rules.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from samtykke.adapters.settings import DEV_API_KEYS, SCOPES
from samtykke.devstack.issuer import LOCAL_ISSUER, LocalIssuer

EVERY_SCOPE_KEY = "fuzz-every-scope"
CREDENTIAL_KINDS = ["api key", "oauth2"]


def credential_settings(issuer: LocalIssuer) -> dict[str, Any]:
    """Settings overrides: the fuzzing key beside the development ones, and the issuer's tokens accepted."""
    return {
        "api_keys": DEV_API_KEYS | {EVERY_SCOPE_KEY: sorted(SCOPES)},
        "oauth_jwks_url": issuer.jwks_url,
        "oauth_issuer": LOCAL_ISSUER,
        "oauth_audience": "samtykke",
    }


def authorization(kind: str, issuer: LocalIssuer) -> str:
    token = EVERY_SCOPE_KEY if kind == "api key" else issuer.token("fuzzer", sorted(SCOPES), "samtykke", 3600)
    return f"Authorization: Bearer {token}"


async def fuzz_openapi(base_url: str, max_examples: int, report: Path, header: str) -> tuple[int, str]:
    """Return schemathesis's exit code and output (also written to `report`)."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--header",
        header,
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
