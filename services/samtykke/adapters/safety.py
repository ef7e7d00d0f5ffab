"""Start-up refusal of development secrets where they would matter.

The settings' defaults are the local stack's secrets: published in this repository, so anyone can
reverse the phone hashes with the known HMAC key or call the API with `dev-admin`. A service started
with any of them on a non-loopback address, or with `SAMTYKKE_ENVIRONMENT=production`, stops before it
serves anything and names every such setting. `SAMTYKKE_ALLOW_DEVELOPMENT_SECRETS=true` lets a
development container bind 0.0.0.0 (its port published on the host's loopback only); production
ignores it.

Each process is held only to the secrets it uses (`service_secrets`): a projector deployed with
its own role password and none of the API's keys starts; the consent service does not.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Collection, Sequence
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
# every setting `development_secrets` can name
CHECKED = ("api_keys", *SECRET_SETTINGS, "projection_role_passwords", "database_url")

# the secrets each serving command uses (a projector: its role's password, analytics its pseudonym key)
_USED: dict[tuple[str, ...], tuple[str, ...]] = {
    ("consent", "serve"): (
        "api_keys",
        "identifier_hash_key",
        "identifier_encryption_key",
        "unsubscribe_token_key",
        "sms_webhook_secret",
        "selfservice_key",
        "database_url",
    ),
    ("consent", "relay"): ("database_url",),
    ("suppression", "serve"): ("api_keys", "identifier_hash_key"),
}
_PROJECTOR = ("projection_role_password", "projection_role_passwords")


def service_secrets(args: Sequence[str]) -> tuple[str, ...]:
    """The secret settings `samtykke <args>` uses; every checked one for a command not listed."""
    if tuple(args[:2]) == ("projections", "run") and len(args) == 3:
        return (*_PROJECTOR, "analytics_pseudonym_key") if args[2] == "analytics" else _PROJECTOR
    return _USED.get(tuple(args), CHECKED)


def _env(name: str) -> str:
    return f"SAMTYKKE_{name.upper()}"


def development_secrets(settings: Settings, used: Collection[str] = CHECKED) -> list[str]:
    """The environment variables of every setting in `used` that holds a development or placeholder
    secret."""
    found: list[str] = []
    if "api_keys" in used and any(key in DEV_API_KEYS or _placeholder(key) for key in settings.api_keys):
        found.append(_env("api_keys"))
    for name in SECRET_SETTINGS:
        value = str(getattr(settings, name))
        if name in used and (value == Settings.model_fields[name].default or _placeholder(value)):
            found.append(_env(name))
    if "projection_role_passwords" in used and any(
        _placeholder(v) for v in settings.projection_role_passwords.values()
    ):
        found.append(_env("projection_role_passwords"))
    password = unquote(urlsplit(settings.database_url).password or "")
    if "database_url" in used and (password in DEVELOPMENT_DATABASE_PASSWORDS or _placeholder(password)):
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


def refusal(settings: Settings, used: Collection[str] = CHECKED) -> str | None:
    """Why a process using the secret settings `used` must not start with these settings, or None."""
    found = development_secrets(settings, used)
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


def refuse_development_secrets(settings: Settings, args: Sequence[str]) -> None:
    """Exit with status 78 (EX_CONFIG) and the reason on stderr when `refusal` says so for the
    secrets `samtykke <args>` uses."""
    reason = refusal(settings, service_secrets(args))
    if reason is not None:
        print(reason, file=sys.stderr)
        raise SystemExit(78)
