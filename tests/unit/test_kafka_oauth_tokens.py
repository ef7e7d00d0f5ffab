"""OAUTHBEARER tokens of the Kafka clients: the provider's cache and refresh (on a fake clock), the
client-credentials request (on a fake transport), the local issuer's tokens, the settings that
choose between them and the start-up checks that name what is missing. No sockets."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from urllib.parse import parse_qs

import faust
import httpx
import jwt
import pytest
from pydantic import ValidationError

from samtykke.adapters.kafka import KafkaSecurityError, client_options, faust_credentials, kafka_token_provider
from samtykke.adapters.kafka_oauth import (
    LOCAL_KAFKA_AUDIENCE,
    IssuedToken,
    OAuthTokenError,
    OAuthTokenProvider,
    client_credentials_grant,
    local_issuer_grant,
    refresh_after,
)
from samtykke.adapters.settings import Settings
from samtykke.devstack.issuer import LOCAL_ISSUER, LocalIssuer
from tests.unit.test_kafka_client_options import write_ca


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingFetch:
    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.calls = 0

    def __call__(self) -> IssuedToken:
        self.calls += 1
        return IssuedToken(f"token-{self.calls}", self.lifetime)


def test_a_token_is_refreshed_at_80_percent_of_its_life_and_30_s_before_it_ends() -> None:
    assert refresh_after(600) == 480
    assert refresh_after(100) == 70
    assert refresh_after(10) == 0  # about to expire: every login fetches


async def test_the_provider_reuses_a_fresh_token_and_fetches_a_new_one_before_expiry() -> None:
    clock, fetch = FakeClock(), CountingFetch(lifetime=600)
    provider = OAuthTokenProvider(fetch, clock)
    assert [await provider.token() for _ in range(3)] == ["token-1"] * 3
    clock.now += 479
    assert await provider.token() == "token-1"
    clock.now += 1
    assert await provider.token() == "token-2"
    assert fetch.calls == 2


async def test_concurrent_logins_cost_one_request() -> None:
    fetch = CountingFetch(lifetime=600)
    provider = OAuthTokenProvider(fetch, FakeClock())
    assert set(await asyncio.gather(*(provider.token() for _ in range(10)))) == {"token-1"}
    assert fetch.calls == 1


async def test_a_failed_fetch_is_raised_and_the_next_login_tries_again() -> None:
    answers: list[IssuedToken | Exception] = [OAuthTokenError("down"), IssuedToken("t", 600)]

    def fetch() -> IssuedToken:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    provider = OAuthTokenProvider(fetch, FakeClock())
    with pytest.raises(OAuthTokenError):
        await provider.token()
    assert await provider.token() == "t"


def token_endpoint(seen: list[httpx.Request], answer: dict[str, object], status: int = 200) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=answer)

    return httpx.MockTransport(handle)


def test_the_client_credentials_grant_authenticates_with_http_basic_and_reads_expires_in() -> None:
    seen: list[httpx.Request] = []
    transport = token_endpoint(seen, {"access_token": "abc", "token_type": "Bearer", "expires_in": 300})
    fetch = client_credentials_grant("https://idp/token", "consent", "s3cr:t", "kafka", transport=transport)
    assert fetch() == IssuedToken("abc", 300.0)
    request = seen[0]
    assert request.method == "POST"
    # RFC 6749 §2.3.1: the id and secret are form-encoded, then joined by a colon
    assert base64.b64decode(request.headers["authorization"].removeprefix("Basic ")) == b"consent:s3cr%3At"
    assert parse_qs(request.content.decode()) == {"grant_type": ["client_credentials"], "scope": ["kafka"]}


def test_without_expires_in_the_token_s_own_exp_sets_its_lifetime(tmp_path: Path) -> None:
    token = LocalIssuer(tmp_path).token("consent", ["kafka"], LOCAL_KAFKA_AUDIENCE, ttl_seconds=120)
    fetch = client_credentials_grant(
        "https://idp/token", "consent", "s", transport=token_endpoint([], {"access_token": token})
    )
    assert 110 < fetch().lifetime_seconds <= 120


def test_a_refusal_names_the_endpoint_and_client_but_not_the_secret() -> None:
    transport = token_endpoint([], {"error": "invalid_client"}, status=401)
    fetch = client_credentials_grant("https://idp/token", "consent", "hunter2", transport=transport)
    with pytest.raises(OAuthTokenError, match="https://idp/token refused client 'consent': 401 invalid_client") as e:
        fetch()
    assert "hunter2" not in str(e.value)


def test_the_local_issuer_mints_tokens_the_broker_can_verify(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path)
    issued = local_issuer_grant(tmp_path, "projector-marketing")()
    keys = jwt.PyJWKSet.from_dict(json.loads(issuer.jwks_path.read_text()))
    key = keys[jwt.get_unverified_header(issued.value)["kid"]].key
    claims = jwt.decode(issued.value, key, algorithms=["RS256"], audience=LOCAL_KAFKA_AUDIENCE, issuer=LOCAL_ISSUER)
    assert claims["sub"] == "projector-marketing"


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    return write_ca(tmp_path)


def oauth(tmp_path: Path, ca: Path, **given: object) -> Settings:
    return Settings(state_dir=tmp_path, kafka_ca_file=ca, kafka_sasl_mechanism="OAUTHBEARER", **given)


async def test_without_a_token_endpoint_the_local_stack_s_issuer_mints_for_the_username(
    tmp_path: Path, ca: Path
) -> None:
    LocalIssuer(tmp_path / "issuer")
    settings = oauth(tmp_path, ca, kafka_username="consent")
    options = client_options(settings)
    assert options["sasl_mechanism"] == "OAUTHBEARER" and "sasl_plain_password" not in options
    token = await options["sasl_oauth_token_provider"].token()
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "consent"
    # one provider per identity: every client of the process shares the cached token
    assert kafka_token_provider(settings) is options["sasl_oauth_token_provider"]
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.OAuthCredentials)
    assert credentials.oauth_cb is options["sasl_oauth_token_provider"] and credentials.ssl_context is not None


def test_a_token_endpoint_is_used_with_the_secret_from_a_file(tmp_path: Path, ca: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    settings = oauth(
        tmp_path,
        ca,
        kafka_oauth_token_url="https://idp/token",
        kafka_oauth_client_id="consent",
        kafka_oauth_client_secret_file=secret,
    )
    assert isinstance(client_options(settings)["sasl_oauth_token_provider"], OAuthTokenProvider)
    secret.unlink()
    with pytest.raises(KafkaSecurityError, match="SAMTYKKE_KAFKA_OAUTH_CLIENT_SECRET_FILE cannot be read"):
        client_options(settings)


def test_oauthbearer_without_any_token_source_names_the_settings(tmp_path: Path, ca: Path) -> None:
    with pytest.raises(KafkaSecurityError, match="SAMTYKKE_KAFKA_OAUTH_TOKEN_URL"):
        client_options(oauth(tmp_path, ca))
    assert not (tmp_path / "issuer").exists()  # no key is made behind the operator's back


def test_inconsistent_oauth_settings_are_refused_at_start_up(tmp_path: Path) -> None:
    url = {"kafka_oauth_token_url": "https://idp/token"}
    with pytest.raises(ValidationError, match="needs kafka_sasl_mechanism=OAUTHBEARER"):
        Settings(**url, kafka_oauth_client_id="c", kafka_oauth_client_secret="s")
    with pytest.raises(ValidationError, match="needs kafka_oauth_client_id"):
        Settings(**url, kafka_sasl_mechanism="OAUTHBEARER", kafka_oauth_client_secret="s")
    with pytest.raises(ValidationError, match="kafka_oauth_client_secret or kafka_oauth_client_secret_file"):
        Settings(**url, kafka_sasl_mechanism="OAUTHBEARER", kafka_oauth_client_id="c")
    with pytest.raises(ValidationError, match="not both"):
        Settings(
            **url,
            kafka_sasl_mechanism="OAUTHBEARER",
            kafka_oauth_client_id="c",
            kafka_oauth_client_secret="s",
            kafka_password="static",
        )
    with pytest.raises(ValidationError, match="need kafka_oauth_token_url"):
        Settings(kafka_sasl_mechanism="OAUTHBEARER", kafka_oauth_client_id="c")
    with pytest.raises(ValidationError, match="kafka_oauth_token_url"):
        Settings(kafka_oauth_token_url="ftp://idp/token")
