"""Request body limits per route, enforced before a body is parsed or a credential is checked.

Without them an unauthenticated client could make a replica read and parse a body of any size on
the event loop; in the suppression service that loop also applies the topic feed, so one 1 GB POST
would let the index go stale for every sender. Each service names a limit per route template
(small for one-entry JSON routes, large for streamed campaign lists and register files) and this
middleware, the first thing a request meets, enforces it:

- a declared `Content-Length` over the limit is answered 413 at once, before a byte is read;
- a chunked body is counted as it arrives and answered 413 the moment it passes the limit; what
  was read is never collected here, the route reads its body as it would without a limit.

The 413 names the field `body` and the limit. The connection is not closed at once: the server
drops the rest of the body as it arrives, unparsed and uncollected, so the client (which may still
be sending) reads the 413 instead of a reset connection.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import problem

KiB = 1024
MiB = 1024 * KiB


def _size(limit: int) -> str:
    for unit, name in ((MiB, "MiB"), (KiB, "KiB")):
        if limit >= unit and limit % unit == 0:
            return f"{limit // unit} {name}"
    return f"{limit} bytes"


class BodyTooLarge(HTTPException):
    """A body over its route's limit (HTTP 413); raised from `receive` while a route reads it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"must be at most {_size(limit)} on this route")
        self.limit = limit


class BodyLimits:
    """The largest body (bytes) each route template accepts; `default` for every other path."""

    def __init__(self, default: int, routes: Mapping[str, int]) -> None:
        self.default = default
        self.routes = dict(routes)
        self._patterns = [(compile_path(template)[0], limit) for template, limit in routes.items()]

    def for_path(self, path: str) -> int:
        for pattern, limit in self._patterns:
            if pattern.match(path):
                return limit
        return self.default


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            # the server refuses a malformed length itself; here it only has to be read
            return int(value) if value.isdigit() else None
    return None


class BodyLimit:
    """ASGI middleware enforcing `BodyLimits`; install it outside everything that reads a body."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_path(scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _refuse(BodyTooLarge(limit), scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, noting_start)
        except BodyTooLarge as exc:
            # the app's own handlers answer it as a problem; this covers a route without them
            if started:
                raise
            await _refuse(exc, scope, receive, send)


async def _refuse(exc: BodyTooLarge, scope: Scope, receive: Receive, send: Send) -> None:
    response = problem(413, "body_too_large", [("body", str(exc.detail))])
    await response(scope, receive, send)
