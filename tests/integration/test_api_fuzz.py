"""Schema-based fuzzing of the consent API with both kinds of credential: never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from samtykke.adapters.settings import Settings
from samtykke.consent.app import create_app
from samtykke.devstack.issuer import LocalIssuer

from .conftest import RunningConsent, ServerThread, consent_settings
from .fuzzing import CREDENTIAL_KINDS, authorization, credential_settings, fuzz_openapi


@pytest.fixture
def issuer(tmp_path: Path) -> LocalIssuer:
    return LocalIssuer(tmp_path / "issuer")


@pytest.fixture
def consent_server(stack: Any, fresh_database: str, topic_names: Any, issuer: LocalIssuer) -> Iterator[Settings]:
    settings = consent_settings(stack, fresh_database, topic_names, **credential_settings(issuer))
    with ServerThread(create_app(settings), settings.consent_port):
        yield settings


@pytest.mark.parametrize("kind", CREDENTIAL_KINDS)
async def test_no_input_makes_the_consent_api_fail(
    consent: RunningConsent, issuer: LocalIssuer, tmp_path: Path, kind: str
) -> None:
    subject = (await consent.client.post("/v1/subjects", json={"kind": "consumer", "country": "SE"})).json()
    code, text = await fuzz_openapi(consent.url, 30, tmp_path / "fuzz.txt", authorization(kind, issuer))
    assert code == 0, text[-4000:]
    assert "not_a_server_error" in text or "passed" in text.lower(), text[-2000:]
    assert subject["subject_id"]
