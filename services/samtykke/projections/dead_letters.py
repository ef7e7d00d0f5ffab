"""The dead-letter queue `<group>.dlq`: the raw message as consumed, the reason in headers.

Headers: `reason` (kind: detail), `reason_kind`, `source_topic`, `source_partition`,
`source_offset`, then the original headers. The send is awaited until Kafka acknowledged it,
before the batch's offsets are committed, so a poison message is never dropped silently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .messages import PoisonMessage, RawMessage

Headers = list[tuple[str, bytes]]
SendAndWait = Callable[[str, bytes | None, bytes | None, Headers], Awaitable[None]]


def dead_letter_topic(group: str) -> str:
    return f"{group}.dlq"


class DeadLetterQueue:
    def __init__(self, topic: str, send_and_wait: SendAndWait) -> None:
        self.topic = topic
        self._send = send_and_wait

    async def put(self, message: RawMessage, poison: PoisonMessage) -> None:
        headers: Headers = [
            ("reason", str(poison).encode()),
            ("reason_kind", poison.kind.value.encode()),
            ("source_topic", message.topic.encode()),
            ("source_partition", str(message.partition).encode()),
            ("source_offset", str(message.offset).encode()),
            *message.headers,
        ]
        await self._send(self.topic, message.key, message.value, headers)
