"""The local OAuth2 issuer: tokens verify against the JWKS it writes, a rotation keeps old tokens valid,
and the client-credentials grant gives a token only for the right secret and never widens scopes."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest

from samtykke.devstack.issuer import LocalIssuer


def verify(issuer: LocalIssuer, token: str, audience: str = "samtykke") -> dict[str, object]:
    keys = jwt.PyJWKSet.from_dict(json.loads(issuer.jwks_path.read_text()))
    key = keys[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, object] = jwt.decode(token, key.key, algorithms=["RS256"], audience=audience)
    return claims


def test_a_token_verifies_against_the_written_jwks(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path)
    claims = verify(issuer, issuer.token("crm", ["consent:write"], "samtykke"))
    assert claims["client_id"] == "crm" and claims["scope"] == "consent:write"
    assert (tmp_path / "jwks.json").stat().st_mode & 0o777 != 0 and all(
        p.stat().st_mode & 0o077 == 0 for p in tmp_path.glob("key-*.pem")
    )


def test_rotation_keeps_tokens_signed_with_the_old_key_valid(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path)
    old = issuer.token("crm", [], "samtykke")
    issuer.rotate()
    new = issuer.token("crm", [], "samtykke")
    reloaded = LocalIssuer(tmp_path)
    assert jwt.get_unverified_header(new)["kid"] == reloaded.kid != jwt.get_unverified_header(old)["kid"]
    assert verify(reloaded, old)["client_id"] == verify(reloaded, new)["client_id"] == "crm"


def test_a_token_for_another_audience_is_refused(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path)
    with pytest.raises(jwt.InvalidAudienceError):
        verify(issuer, issuer.token("crm", [], "someone-else"))


def test_the_grant_needs_the_secret_and_never_widens_scopes(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path)
    secret = issuer.register("crm", ["consent:read", "consent:write"])
    assert issuer.grant("crm", "wrong", "samtykke") is None
    assert issuer.grant("nobody", secret, "samtykke") is None
    token = issuer.grant("crm", secret, "samtykke", scope="consent:read admin")
    assert token is not None and verify(issuer, token)["scope"] == "consent:read"
    assert secret not in issuer.clients_path.read_text()
