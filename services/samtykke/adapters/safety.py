"""Start-up refusal of development secrets where they would matter.

The settings' defaults are the local stack's secrets: published in this repository, so anyone can
reverse the phone hashes with the known HMAC key or call the API with `dev-admin`. A service started
with any of them on a non-loopback address, or with `SAMTYKKE_ENVIRONMENT=production`, stops before it
serves anything and names every such setting. `SAMTYKKE_ALLOW_DEVELOPMENT_SECRETS=true` lets a
development container bind 0.0.0.0 (its port published on the host's loopback only); production
ignores it.
"""

from __future__ import annotations

import ipaddress
import sys
from urllib.parse import unquote, urlsplit

from samtykke.adapters.settings import DEV_API_KEYS, Settings

# values an example manifest ships with: they are placeholders, never secrets
PLACEHOLDER_MARKERS = ("dev-only", "change-me", "changeme", "replace-me")
# the local stack's database password (deploy/postgres and `samtykke stack up`)
DEVELOPMENT_DATABASE_PASSWORDS = frozenset({"samtykke"})
SECRET_SETTINGS = (
    "identifier_hash_key",
    "identifier_encryption_key",
    "projection_role_password",
    "analytics_pseudonym_key",
    "unsubscribe_token_key",
    "sms_webhook_secret",
    "selfservice_key",
)


def _env(name: str) -> str:
    return f"SAMTYKKE_{name.upper()}"


def development_secrets(settings: Settings) -> list[str]:
    """The environment variables of every setting that holds a development or placeholder secret."""
    found: list[str] = []
    if any(key in DEV_API_KEYS or _placeholder(key) for key in settings.api_keys):
        found.append(_env("api_keys"))
    for name in SECRET_SETTINGS:
        value = str(getattr(settings, name))
        if value == Settings.model_fields[name].default or _placeholder(value):
            found.append(_env(name))
    if any(_placeholder(v) for v in settings.projection_role_passwords.values()):
        found.append(_env("projection_role_passwords"))
    password = unquote(urlsplit(settings.database_url).password or "")
    if password in DEVELOPMENT_DATABASE_PASSWORDS or _placeholder(password):
        found.append(_env("database_url"))
    return found


def _placeholder(value: str) -> bool:
    lowered = value.lower()
    return any(marker in lowered for marker in PLACEHOLDER_MARKERS)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def refusal(settings: Settings) -> str | None:
    """Why this process must not start with these settings, or None."""
    found = development_secrets(settings)
    if not found:
        return None
    if settings.environment == "production":
        where = "SAMTYKKE_ENVIRONMENT=production"
    elif not is_loopback(settings.http_host) and not settings.allow_development_secrets:
        where = f"SAMTYKKE_HTTP_HOST={settings.http_host} is not a loopback address"
    else:
        return None
    return (
        f"refusing to start: {where}, and these settings hold development secrets published with samtykke: "
        + ", ".join(found)
        + ". Set them to secrets of your own."
    )


def refuse_development_secrets(settings: Settings) -> None:
    """Exit with status 78 (EX_CONFIG) and the reason on stderr when `refusal` says so."""
    reason = refusal(settings)
    if reason is not None:
        print(reason, file=sys.stderr)
        raise SystemExit(78)
