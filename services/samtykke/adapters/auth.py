"""Who is calling, and may they: the credentials both HTTP services accept, their scopes and request budgets.

Two kinds of bearer credential:
- **OAuth2 access tokens** (client credentials): JWTs verified against the issuer's JWKS (cached; an
  unknown `kid` refetches it, so a rotated key is picked up), with issuer, audience and expiry checked
  and the token's scopes mapped to ours. The token's client id is the principal.
- **API keys**, kept only as SHA-256 digests (configured in clear or as `sha256:<hex>`); the principal
  is `apikey:<first 12 hex of the digest>`, which names the key without revealing it.

No scope implies another: a credential has exactly the scopes it lists. A missing or bad credential
is a 401, a missing scope a 403, an empty request budget a 429 (token bucket per principal; a bulk
request costs one). Every answer carries `RateLimit-*` headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import httpx
import jwt
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from samtykke.adapters.problems import problem
from samtykke.adapters.settings import Settings

bearer = HTTPBearer(auto_error=False, description="OAuth2 access token (JWT) or API key")

# a refetch for an unknown key id at most this often, so forged kids cannot hammer the issuer
JWKS_MIN_REFETCH_SECONDS = 2.0
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]


@dataclass(frozen=True)
class Principal:
    client_id: str
    scopes: frozenset[str]
    kind: Literal["api_key", "oauth2"] = "api_key"

    def has(self, scope: str) -> bool:
        return scope in self.scopes


class ScopeRequired(Exception):
    """A field's value needs a scope the credential lacks (a 403 naming the field and the rule)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {r}" for f, r in problems))
        self.problems = problems


def install_scope_handler(app: FastAPI) -> None:
    @app.exception_handler(ScopeRequired)
    async def _forbidden(_: Request, exc: ScopeRequired) -> JSONResponse:
        return problem(403, "forbidden", exc.problems)


class Unauthenticated(Exception):
    """The credential is missing, unknown, expired, wrongly signed or for someone else."""


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """The configured keys by digest; a presented key is hashed and looked up, never kept."""

    def __init__(self, configured: Mapping[str, list[str]]) -> None:
        self._by_digest: dict[str, frozenset[str]] = {}
        for key, scopes in configured.items():
            digest = key.removeprefix("sha256:").lower() if key.startswith("sha256:") else key_digest(key)
            self._by_digest[digest] = frozenset(scopes)

    def principal(self, presented: str) -> Principal | None:
        digest = key_digest(presented)
        scopes = self._by_digest.get(digest)
        return None if scopes is None else Principal(f"apikey:{digest[:12]}", scopes)


class Jwks:
    """The issuer's signing keys by `kid`: fetched on first use, again after `ttl` and on an unknown kid."""

    def __init__(self, url: str, ttl_seconds: float, ca_file: Path | None = None) -> None:
        self._url, self._ttl, self._ca_file = url, ttl_seconds, ca_file
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched = -math.inf
        self._lock = asyncio.Lock()

    async def _fetch(self) -> None:
        parts = urlsplit(self._url)
        if parts.scheme == "file":
            raw = await asyncio.to_thread(Path(unquote(parts.path)).read_text)
        else:
            verify: Any = str(self._ca_file) if self._ca_file else True
            async with httpx.AsyncClient(timeout=5.0, verify=verify) as client:
                response = await client.get(self._url)
                response.raise_for_status()
                raw = response.text
        keys = jwt.PyJWKSet.from_dict(json.loads(raw)).keys
        self._keys = {k.key_id: k for k in keys if k.key_id}
        self._fetched = time.monotonic()

    async def key(self, kid: str) -> jwt.PyJWK:
        now = time.monotonic()
        if kid not in self._keys or now - self._fetched > self._ttl:
            async with self._lock:
                stale = time.monotonic() - self._fetched
                if stale > self._ttl or (kid not in self._keys and stale > JWKS_MIN_REFETCH_SECONDS):
                    try:
                        await self._fetch()
                    except (OSError, httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                        if not self._keys:
                            raise Unauthenticated("the issuer's keys cannot be fetched") from exc
        key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("token signed by an unknown key")
        return key


class TokenVerifier:
    """An OAuth2 access token → a principal: signature, issuer, audience, expiry, then scopes mapped."""

    def __init__(
        self,
        jwks: Jwks,
        issuer: str,
        audience: str,
        scope_map: Mapping[str, list[str]],
        client_claims: tuple[str, ...] = ("client_id", "azp", "sub"),
        leeway_seconds: float = 30.0,
    ) -> None:
        self._jwks, self._issuer, self._audience = jwks, issuer, audience
        self._scope_map, self._client_claims, self._leeway = scope_map, client_claims, leeway_seconds

    async def principal(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            key = await self._jwks.key(str(header.get("kid", "")))
            claims = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("token from another issuer") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("token not valid") from exc
        client = next((str(claims[c]) for c in self._client_claims if claims.get(c)), None)
        if client is None:
            raise Unauthenticated("token names no client")
        return Principal(client, self._scopes(claims), "oauth2")

    def _scopes(self, claims: Mapping[str, Any]) -> frozenset[str]:
        raw = claims.get("scope", claims.get("scp", ""))
        granted = raw.split() if isinstance(raw, str) else [str(s) for s in raw]
        mapped: set[str] = set()
        for scope in granted:
            mapped.update(self._scope_map.get(scope, [scope]))
        return frozenset(mapped)


class TokenBucket:
    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def headers(self) -> dict[str, str]:
        reset = (self.capacity - self.tokens) / self.rate
        return {
            "RateLimit-Limit": str(int(self.capacity)),
            "RateLimit-Remaining": str(int(self.tokens)),
            "RateLimit-Reset": str(math.ceil(reset)),
            "RateLimit-Policy": f"{int(self.capacity)};w=60",
        }


class RateLimiter:
    """A token bucket per principal (capacity: the per-minute limit, refilled continuously)."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, principal: str) -> TokenBucket:
        bucket = self._buckets.get(principal)
        if bucket is None:
            bucket = self._buckets[principal] = TokenBucket(self._per_minute)
        return bucket


class Authenticator:
    def __init__(self, keys: ApiKeys, tokens: TokenVerifier | None, limiter: RateLimiter) -> None:
        self.keys, self.tokens, self.limiter = keys, tokens, limiter

    @classmethod
    def from_settings(cls, settings: Settings, per_minute: int) -> Authenticator:
        tokens = None
        if settings.oauth_jwks_url:
            jwks = Jwks(settings.oauth_jwks_url, settings.oauth_jwks_cache_seconds, settings.oauth_ca_file)
            tokens = TokenVerifier(jwks, settings.oauth_issuer, settings.oauth_audience, settings.oauth_scope_map)
        return cls(ApiKeys(settings.api_keys), tokens, RateLimiter(per_minute))

    async def principal(self, credential: str) -> Principal:
        if self.tokens is not None and credential.count(".") == 2 and credential.startswith("eyJ"):
            return await self.tokens.principal(credential)
        principal = self.keys.principal(credential)
        if principal is None:
            raise Unauthenticated("missing or unknown credential")
        return principal


async def authorise(request: Request, credentials: HTTPAuthorizationCredentials | None, scope: str) -> Principal:
    """401 for a missing or bad credential, 403 without `scope`, 429 when the principal's budget is spent."""
    auth: Authenticator = request.app.state.authenticator
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise HTTPException(401, "missing or unknown credential", challenge)
    try:
        principal = await auth.principal(credentials.credentials)
    except Unauthenticated as exc:
        raise HTTPException(
            401, str(exc), {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{exc}"'}
        ) from exc
    request.state.principal = principal
    bucket = auth.limiter.bucket(principal.client_id)
    allowed = bucket.take()
    request.state.ratelimit = bucket.headers()
    if not allowed:
        retry = str(math.ceil((1 - bucket.tokens) / bucket.rate))
        raise HTTPException(429, "rate limit exceeded", {"Retry-After": retry, **bucket.headers()})
    if not principal.has(scope):
        raise HTTPException(403, f"credential lacks scope '{scope}'")
    return principal


def require(scope: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
    ) -> Principal:
        return await authorise(request, credentials, scope)

    return dependency


class RateLimitHeaders:
    """ASGI middleware: copies the bucket state a request's credential check left into its response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                values = scope.get("state", {}).get("ratelimit")
                if values:
                    present = {k.lower() for k, _ in message.get("headers", [])}
                    extra = [
                        (k.lower().encode(), v.encode()) for k, v in values.items() if k.lower().encode() not in present
                    ]
                    message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
