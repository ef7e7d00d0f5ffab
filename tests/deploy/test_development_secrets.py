"""A platform process started with a development secret on a public address exits non-zero before it
serves or connects to anything, and says which settings to change."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

COMMANDS = {
    "consent": ["consent", "serve"],
    "relay": ["consent", "relay"],
    "suppression": ["suppression", "serve"],
    "projector": ["projections", "run", "marketing"],
    "analytics": ["projections", "run", "analytics"],
}
# each process is held to the secrets it uses, and only to those
NAMED = {
    "consent": {"SAMTYKKE_API_KEYS", "SAMTYKKE_IDENTIFIER_HASH_KEY", "SAMTYKKE_IDENTIFIER_ENCRYPTION_KEY"},
    "relay": {"SAMTYKKE_DATABASE_URL"},
    "suppression": {"SAMTYKKE_API_KEYS", "SAMTYKKE_IDENTIFIER_HASH_KEY"},
    "projector": {"SAMTYKKE_PROJECTION_ROLE_PASSWORD"},
    "analytics": {"SAMTYKKE_PROJECTION_ROLE_PASSWORD", "SAMTYKKE_ANALYTICS_PSEUDONYM_KEY"},
}
NOT_NAMED = {
    "consent": {"SAMTYKKE_PROJECTION_ROLE_PASSWORD", "SAMTYKKE_ANALYTICS_PSEUDONYM_KEY"},
    "relay": {"SAMTYKKE_API_KEYS", "SAMTYKKE_IDENTIFIER_HASH_KEY"},
    "suppression": {"SAMTYKKE_DATABASE_URL", "SAMTYKKE_UNSUBSCRIBE_TOKEN_KEY"},
    "projector": {"SAMTYKKE_API_KEYS", "SAMTYKKE_IDENTIFIER_HASH_KEY", "SAMTYKKE_ANALYTICS_PSEUDONYM_KEY"},
    "analytics": {"SAMTYKKE_API_KEYS", "SAMTYKKE_IDENTIFIER_ENCRYPTION_KEY"},
}


@pytest.mark.parametrize("service", list(COMMANDS))
def test_a_public_bind_with_development_secrets_exits_naming_them(service: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMTYKKE_")} | {"SAMTYKKE_HTTP_HOST": "0.0.0.0"}
    done = subprocess.run(
        [sys.executable, "-m", "samtykke.cli", *COMMANDS[service]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 78, done.stderr
    assert "refusing to start: SAMTYKKE_HTTP_HOST=0.0.0.0 is not a loopback address" in done.stderr
    named = set(done.stderr.rsplit("published with samtykke: ", 1)[1].split(". Set them")[0].split(", "))
    assert NAMED[service] <= named, done.stderr
    assert not NOT_NAMED[service] & named, done.stderr
