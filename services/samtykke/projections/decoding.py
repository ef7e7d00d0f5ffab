"""Turns raw records of the two contract topics into domain events, or says why it cannot.

A record without value on the changes topic is a tombstone: the consent its key names was purged
or its subject erased, so it becomes that `ConsentKey` (to remove), never a dead letter.

Avro through the registry (Confluent wire format), resolved to the reader schemas this build
ships, then the domain's rule check. Failures no retry can fix raise `PoisonMessage`; a
registry that cannot be reached raises `RegistryError(retriable=True)` for the caller to retry.
"""

from __future__ import annotations

from samtykke.adapters.avro import AvroDecoder, SchemaRegistry, UndecodableMessage, load_schema
from samtykke.adapters.dead_letters import undecodable_kind
from samtykke.adapters.settings import Settings
from samtykke.domain.catalog import PurposeCatalog
from samtykke.domain.consent_keys import ConsentKey, parse_consent_key
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.projection import check_change, check_subject

from .messages import PoisonKind, PoisonMessage, RawMessage


class EventDecoder:
    def __init__(self, registry: SchemaRegistry, settings: Settings, catalog: PurposeCatalog) -> None:
        self.changes_topic = settings.topic_changes
        self._subjects_topic = settings.topic_subjects
        self._changes = AvroDecoder(registry, load_schema(settings.schema_dir, "ConsentChanged"), logical_types=False)
        self._subjects = AvroDecoder(registry, load_schema(settings.schema_dir, "SubjectChanged"), logical_types=False)
        self._catalog = catalog

    async def decode(self, message: RawMessage) -> ConsentChanged | SubjectChanged | ConsentKey:
        if message.topic == self.changes_topic and message.value is None:
            return tombstone(message)
        if message.topic == self.changes_topic:
            change = ConsentChanged.from_record(await self._record(self._changes, message))
            broken = check_change(self._catalog, change)
        elif message.topic == self._subjects_topic:
            subject = SubjectChanged.from_record(await self._record(self._subjects, message))
            broken = check_subject(subject)
            if broken is None:
                return subject
        else:
            raise PoisonMessage(PoisonKind.UNEXPECTED_TOPIC, f"not a contract topic: {message.topic}")
        if broken is not None:
            raise PoisonMessage(PoisonKind.RULE_VIOLATION, broken)
        return change

    @staticmethod
    async def _record(decoder: AvroDecoder, message: RawMessage) -> dict[str, object]:
        try:
            record: dict[str, object] = await decoder.decode(message.value)
            return record
        except UndecodableMessage as exc:
            raise PoisonMessage(undecodable_kind(exc), str(exc)) from exc


def tombstone(message: RawMessage) -> ConsentKey:
    """The consent a tombstone removes; a key that names none is poison."""
    try:
        return parse_consent_key((message.key or b"").decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PoisonMessage(PoisonKind.UNDECODABLE, f"a tombstone whose key names no consent: {exc}") from exc
