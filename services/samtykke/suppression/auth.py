"""Scoped bearer credentials (shared rules in adapters.auth) plus a request budget per credential.

The budget is a token bucket (capacity: the per-minute limit; refilled continuously), so a
burst up to the limit passes and the steady rate is the limit. It counts requests, not entries:
a bulk request costs one. Every answer carries `RateLimit-*` headers; an empty bucket is a 429.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from samtykke.adapters.auth import Principal, authorise, bearer


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
    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, credential: str) -> TokenBucket:
        # keyed by a digest, so the credential itself is not kept as a dictionary key
        name = hashlib.sha256(credential.encode()).hexdigest()[:16]
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = TokenBucket(self._per_minute)
        return bucket


def require(scope: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
    ) -> Principal:
        principal = authorise(request, credentials, scope)
        assert credentials is not None  # authorise refused a request without one
        limiter: RateLimiter = request.app.state.rate_limiter
        bucket = limiter.bucket(credentials.credentials)
        allowed = bucket.take()
        request.state.ratelimit = bucket.headers()
        if not allowed:
            retry = str(math.ceil((1 - bucket.tokens) / bucket.rate))
            raise HTTPException(429, "rate limit exceeded", {"Retry-After": retry, **bucket.headers()})
        return principal

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
