"""Which settings hold development secrets, and when a service must refuse to start with them."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from samtykke.adapters.safety import development_secrets, refusal
from samtykke.adapters.settings import Settings

EVERY_SECRET = [
    "SAMTYKKE_API_KEYS",
    "SAMTYKKE_IDENTIFIER_HASH_KEY",
    "SAMTYKKE_IDENTIFIER_ENCRYPTION_KEY",
    "SAMTYKKE_PROJECTION_ROLE_PASSWORD",
    "SAMTYKKE_ANALYTICS_PSEUDONYM_KEY",
    "SAMTYKKE_UNSUBSCRIBE_TOKEN_KEY",
    "SAMTYKKE_SMS_WEBHOOK_SECRET",
    "SAMTYKKE_SELFSERVICE_KEY",
    "SAMTYKKE_DATABASE_URL",
]


def own_secrets(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "api_keys": {"sha256:" + "ab" * 32: ["consent:read"]},
        "identifier_hash_key": "k" * 32,
        "identifier_encryption_key": Fernet.generate_key().decode(),
        "projection_role_password": "p" * 24,
        "analytics_pseudonym_key": "a" * 32,
        "unsubscribe_token_key": "u" * 32,
        "sms_webhook_secret": "s" * 32,
        "selfservice_key": "f" * 32,
        "database_url": "postgresql://samtykke:s3cret-of-ours@db:5432/samtykke",
    }
    return Settings(**(values | overrides))


def test_the_defaults_are_development_secrets_every_one_named() -> None:
    assert development_secrets(Settings()) == EVERY_SECRET


def test_the_defaults_are_fine_on_loopback_in_development() -> None:
    assert refusal(Settings(http_host="127.0.0.1")) is None
    assert refusal(Settings(http_host="::1")) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.7", "consent.internal"])
def test_a_public_bind_with_development_secrets_is_refused(host: str) -> None:
    reason = refusal(Settings(http_host=host))
    assert reason is not None and f"SAMTYKKE_HTTP_HOST={host}" in reason
    assert all(name in reason for name in EVERY_SECRET)


def test_production_refuses_them_even_on_loopback_and_even_when_allowed() -> None:
    reason = refusal(Settings(environment="production", allow_development_secrets=True))
    assert reason is not None and "SAMTYKKE_ENVIRONMENT=production" in reason


def test_a_container_may_bind_everywhere_in_development_when_told_so() -> None:
    assert refusal(Settings(http_host="0.0.0.0", allow_development_secrets=True)) is None


def test_one_left_over_secret_is_named_alone() -> None:
    settings = own_secrets(analytics_pseudonym_key="dev-only-analytics-pseudonym-key", environment="production")
    assert development_secrets(settings) == ["SAMTYKKE_ANALYTICS_PSEUDONYM_KEY"]
    placeholder = own_secrets(api_keys={"change-me-crm": ["consent:write"]})
    assert development_secrets(placeholder) == ["SAMTYKKE_API_KEYS"]


def test_own_secrets_start_anywhere() -> None:
    assert refusal(own_secrets(http_host="0.0.0.0", environment="production")) is None


def test_the_retired_admin_scope_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="catch-all `admin` scope is gone"):
        Settings(api_keys={"k": ["admin"]})
    with pytest.raises(ValueError, match="unknown scopes"):
        Settings(oauth_scope_map={"crm.all": ["everything"]})
