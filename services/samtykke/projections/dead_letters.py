"""The projectors' dead-letter queue `<group>.dlq`, keeping the contract of `adapters.dead_letters`.

The send is awaited until Kafka acknowledged it, before the batch's offsets are committed, so a
poison message is never dropped silently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from samtykke.adapters.dead_letters import Headers, dead_letter
from samtykke.adapters.dead_letters import dead_letter_topic as dead_letter_topic  # where the projectors' is named

from .messages import PoisonMessage, RawMessage

SendAndWait = Callable[[str, bytes | None, bytes | None, Headers], Awaitable[None]]


class DeadLetterQueue:
    def __init__(self, group: str, send_and_wait: SendAndWait) -> None:
        self.group = group
        self.topic = dead_letter_topic(group)
        self._send = send_and_wait

    async def put(self, message: RawMessage, poison: PoisonMessage) -> None:
        letter = dead_letter(message, poison.kind, poison.detail, self.group, datetime.now(UTC))
        await self._send(self.topic, letter.key, letter.value, letter.headers)
