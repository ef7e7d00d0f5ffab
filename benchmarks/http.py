"""A minimal HTTP/1.1 keep-alive JSON client for load generation.

httpx's connection pool costs milliseconds of CPU per request once dozens of connections are
open (it walks every connection on each request), which made the load generator, not the
platform, the bottleneck at a few hundred requests/s. This keeps a fixed set of connections
and speaks just enough HTTP/1.1 for JSON requests to our own services.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit


class HttpError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status = status


class KeepAliveClient:
    def __init__(self, url: str, headers: dict[str, str], connections: int = 32) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._size = connections
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self._opened = 0

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._idle.empty() and self._opened < self._size:
            self._opened += 1
            try:
                return await asyncio.open_connection(self._host, self._port)
            except OSError:
                self._opened -= 1
                raise
        return await self._idle.get()

    async def post(self, path: str, body: Any) -> Any:
        """POST a JSON body; the decoded JSON response, or HttpError for a non-2xx status."""
        payload = json.dumps(body).encode()
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\n{self._head}"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        reader, writer = await self._connection()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:"
            )
            data = await reader.readexactly(length)
        except BaseException:
            writer.close()  # the connection's state is unknown: never reuse it
            self._opened -= 1
            raise
        self._idle.put_nowait((reader, writer))
        status = int(head[9:12])
        if not 200 <= status < 300:
            raise HttpError(status, data)
        return json.loads(data)

    async def aclose(self) -> None:
        while not self._idle.empty():
            _, writer = self._idle.get_nowait()
            writer.close()
