"""The body-limit middleware against a fake ASGI app: a declared length over the limit is refused
before the app runs, a chunked body the moment it passes the limit, never collected (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from samtykke.adapters.limits import BodyLimit, BodyLimits, BodyTooLarge, KiB, MiB
from samtykke.consent.schemas import BODY_LIMITS as CONSENT
from samtykke.suppression.schemas import BODY_LIMITS as SUPPRESSION

LIMITS = BodyLimits(default=100, routes={"/small": 10, "/items/{item_id}/bulk": 1000})


class ReadingApp:
    """Reads the whole body chunk by chunk (as a route does), then answers 200 with its size."""

    def __init__(self) -> None:
        self.called = False
        self.largest_chunk = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            self.largest_chunk = max(self.largest_chunk, len(message.get("body", b"")))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


class Client:
    """Feeds `chunks` as the request body and records what was sent back and how much was read."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.read = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if not self.chunks:
            return {"type": "http.disconnect"}
        body = self.chunks.pop(0)
        self.read += len(body)
        return {"type": "http.request", "body": body, "more_body": bool(self.chunks)}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def body(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))
        return result

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])


def scope(path: str, length: int | None = None) -> dict[str, Any]:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return {"type": "http", "method": "POST", "path": path, "headers": headers}


async def run(path: str, chunks: list[bytes], declared: int | None = None) -> tuple[ReadingApp, Client]:
    app, client = ReadingApp(), Client(chunks)
    await BodyLimit(app, LIMITS)(scope(path, declared), client.receive, client.send)
    return app, client


def test_limits_are_found_by_route_template() -> None:
    assert LIMITS.for_path("/small") == 10
    assert LIMITS.for_path("/items/42/bulk") == 1000
    assert LIMITS.for_path("/items/42/bulk/more") == 100
    assert LIMITS.for_path("/elsewhere") == 100


async def test_a_declared_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    app, client = await run("/small", [b"x" * 11], declared=11)
    assert not app.called and client.read == 0
    assert client.status == 413
    assert client.body == {
        "error": "body_too_large",
        "problems": [{"field": "body", "rule": "must be at most 10 bytes on this route"}],
    }


async def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    chunks = [b"x" * 400] * 10
    app, client = await run("/items/7/bulk", chunks)
    assert app.called and client.status == 413
    assert client.read == 1200  # the third chunk passed 1000; the other seven were never asked for
    assert app.largest_chunk == 400
    assert client.body["problems"] == [{"field": "body", "rule": "must be at most 1000 bytes on this route"}]


async def test_a_body_within_the_limit_passes_whole() -> None:
    _, client = await run("/items/7/bulk", [b"x" * 500, b"y" * 500], declared=1000)
    assert client.status == 200 and b"".join(m.get("body", b"") for m in client.sent[1:]) == b"1000"
    _, client = await run("/elsewhere", [b"z" * 100])
    assert client.status == 200


async def test_a_lying_declared_length_is_still_counted() -> None:
    _, client = await run("/small", [b"x" * 5, b"x" * 6], declared=5)
    assert client.status == 413


async def test_the_app_may_answer_the_refusal_itself() -> None:
    async def handling(scope: Any, receive: Any, send: Any) -> None:
        try:
            await receive()
        except BodyTooLarge as exc:
            await send({"type": "http.response.start", "status": 413, "headers": [(b"x-handled", b"1")]})
            await send({"type": "http.response.body", "body": json.dumps({"rule": exc.detail}).encode()})

    client = Client([b"x" * 11])
    await BodyLimit(handling, LIMITS)(scope("/small"), client.receive, client.send)
    assert client.status == 413 and client.headers == {b"x-handled": b"1"}


async def test_other_scopes_pass_untouched() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await BodyLimit(app, LIMITS)({"type": "lifespan"}, Client([]).receive, Client([]).send)
    assert seen == ["lifespan"]


@pytest.mark.parametrize(
    ("limits", "path", "limit"),
    [
        (CONSENT, "/v1/subjects", 16 * KiB),
        (CONSENT, "/v1/subjects/lookup", 16 * KiB),
        (CONSENT, "/v1/subjects/6f1c0c4e-0000-4000-8000-000000000000/consents", 256 * KiB),
        (SUPPRESSION, "/v1/check", 8 * KiB),
        (SUPPRESSION, "/v1/check/bulk", 4 * MiB),
        (SUPPRESSION, "/v1/check/stream", 128 * MiB),
        (SUPPRESSION, "/v1/registers/NIX/imports", 128 * MiB),
    ],
)
def test_the_services_limits(limits: BodyLimits, path: str, limit: int) -> None:
    assert limits.for_path(path) == limit
