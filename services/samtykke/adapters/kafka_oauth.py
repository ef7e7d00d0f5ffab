"""OAUTHBEARER tokens for every Kafka client: fetched with the OAuth2 client-credentials grant
(RFC 6749 §4.4) from a token endpoint, or minted from the local stack's issuer; cached, and fetched
again well before they expire.

aiokafka asks its provider for a token at every connection's login, and Faust's consumer runs in a
thread with an event loop of its own. So the cache is guarded by a thread lock, and a fetch runs in
a worker thread with a synchronous HTTP client: one provider serves every loop, and a burst of
connections costs one request.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import jwt
from aiokafka.abc import AbstractTokenProvider

# the audience the local broker expects (`devstack.kafka`); a deployment's broker names its own
LOCAL_KAFKA_AUDIENCE = "samtykke-kafka"
LOCAL_TOKEN_SECONDS = 600
# without `expires_in` or a readable `exp`, a token is kept this long
FALLBACK_LIFETIME_SECONDS = 60.0
# refresh at this share of a token's lifetime, and at least REFRESH_MARGIN_SECONDS before it expires
REFRESH_SHARE = 0.8
REFRESH_MARGIN_SECONDS = 30.0


class OAuthTokenError(RuntimeError):
    """No token could be had: the endpoint did not answer, refused the client or sent no token.
    Transient from the client's side (the login is tried again); the message never holds a secret."""


@dataclass(frozen=True)
class IssuedToken:
    value: str
    lifetime_seconds: float


# one request for a new token (blocking; called in a worker thread)
FetchToken = Callable[[], IssuedToken]


def refresh_after(lifetime_seconds: float) -> float:
    """Seconds after a fetch at which its token is replaced: 80 % of its lifetime, and at least
    30 s before it expires when the lifetime allows; at once for a token about to expire."""
    return max(0.0, min(lifetime_seconds * REFRESH_SHARE, lifetime_seconds - REFRESH_MARGIN_SECONDS))


class OAuthTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka ships no types
    """aiokafka's `sasl_oauth_token_provider` (and Faust's `oauth_cb`): the cached token while it
    is fresh, else a new one from `fetch`. `clock` is monotonic seconds (a test passes its own)."""

    def __init__(self, fetch: FetchToken, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()  # one fetch at a time, from any thread
        # (token, refresh at): replaced as a whole, so a reader needs no lock and never waits for a fetch
        self._state: tuple[str, float] | None = None

    def _cached(self) -> str | None:
        state = self._state
        if state is not None and self._clock() < state[1]:
            return state[0]
        return None

    async def token(self) -> str:
        cached = self._cached()
        return cached if cached is not None else await asyncio.to_thread(self.fresh_token)

    def fresh_token(self) -> str:
        """The cached token if still fresh (another thread may just have fetched), else a new one."""
        with self._lock:
            cached = self._cached()
            if cached is not None:
                return cached
            asked_at = self._clock()  # the lifetime counts from the request, not the answer
            issued = self._fetch()
            self._state = (issued.value, asked_at + refresh_after(issued.lifetime_seconds))
            return issued.value


def _lifetime(token: str, expires_in: object) -> float:
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        return float(expires_in)
    try:  # only to learn when to refresh: the broker verifies the token
        claims = jwt.decode(token, options={"verify_signature": False})
        return max(0.0, float(claims["exp"]) - time.time())
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return FALLBACK_LIFETIME_SECONDS


def client_credentials_grant(
    token_url: str,
    client_id: str,
    client_secret: str,
    scope: str | None = None,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> FetchToken:
    """Asks `token_url` for a token with the client-credentials grant, the client authenticated by
    HTTP Basic (RFC 6749 §2.3.1: id and secret form-encoded first). `transport`: a test's own."""
    auth = httpx.BasicAuth(quote_plus(client_id), quote_plus(client_secret))
    form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}

    def fetch() -> IssuedToken:
        try:
            with httpx.Client(transport=transport, timeout=timeout) as client:
                response = client.post(token_url, data=form, auth=auth)
        except httpx.HTTPError as error:
            raise OAuthTokenError(f"the token endpoint {token_url} did not answer: {error}") from error
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise OAuthTokenError(f"the token endpoint {token_url} answered {response.status_code} without JSON")
        if response.status_code != 200 or not isinstance(body.get("access_token"), str):
            reason = body.get("error", "no access_token")
            raise OAuthTokenError(
                f"the token endpoint {token_url} refused client {client_id!r}: {response.status_code} {reason}"
            )
        token = body["access_token"]
        return IssuedToken(token, _lifetime(token, body.get("expires_in")))

    return fetch


def local_issuer_folder(state_dir: Path) -> Path:
    """Where the local stack's issuer keeps its keys and JWKS (`devstack.issuer`)."""
    return state_dir / "issuer"


def local_issuer_grant(folder: Path, principal: str, scopes: tuple[str, ...] = ("kafka",)) -> FetchToken:
    """Mints tokens for `principal` with the local stack's signing key: the local stack only, where
    no token endpoint runs; the local broker trusts that issuer's JWKS."""
    # imported here: only a process against the local stack needs the issuer
    from samtykke.devstack.issuer import LocalIssuer

    def fetch() -> IssuedToken:
        token = LocalIssuer(folder).token(principal, scopes, LOCAL_KAFKA_AUDIENCE, ttl_seconds=LOCAL_TOKEN_SECONDS)
        return IssuedToken(token, float(LOCAL_TOKEN_SECONDS))

    return fetch


class StaticToken(AbstractTokenProvider):  # type: ignore[misc]
    """A token given in the settings (the password setting); a deployment that rotates such
    tokens mounts the file `kafka_password_file` names and restarts."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token
