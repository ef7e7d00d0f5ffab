"""A toggle on a page becomes a decision, recorded through `ConsentService.record` like the API's.

The batch names the door (source `self_service`, credential `self-service`), who decided (the
subject, or a company admin for a business), and the evidence: the notice version and language of
the page the click came from (`page:<lang>:<notice>`). A toggle already in the wanted state records
nothing; a double submit of the same form meets the first one at an idempotency key made of the
state it saw, and replays it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from samtykke.consent.changes import DecisionBatch
from samtykke.consent.service import ConsentService
from samtykke.domain.consent import ConsentRecord, Decision
from samtykke.domain.model import Channel, ConsentAction, Source

from .access import Grant
from .view import Key, is_on, toggle_keys

CLIENT_ID = "self-service"


class UnknownToggle(Exception):
    """The form named a toggle this page does not offer."""


@dataclass(frozen=True, slots=True)
class Flip:
    purpose: str
    channel: Channel | None
    on: bool

    @classmethod
    def parse(cls, value: str) -> Flip:
        try:
            purpose, channel, state = value.split("|")
            if state not in ("on", "off"):
                raise ValueError(state)
            return cls(purpose, None if channel == "-" else Channel(channel), state == "on")
        except ValueError as exc:
            raise UnknownToggle(value) from exc


async def flip(
    svc: ConsentService, session: Grant, wanted: Flip, language: str, notice: str, correlation_id: str
) -> int:
    """Record one toggle; the number of changes recorded (0 when it was already so)."""
    purpose = toggle_keys(svc, session.page).get((wanted.purpose, wanted.channel))
    if purpose is None:
        raise UnknownToggle(wanted.purpose)
    key = (wanted.purpose, wanted.channel)
    current: dict[Key, ConsentRecord] = {
        (c.record.purpose, c.record.channel): c.record for c in await svc.current(session.subject_id)
    }
    record = current.get(key)
    if is_on(purpose, record.status if record else None) is wanted.on:
        return 0
    seen = f"{session.subject_id}|{wanted.purpose}|{wanted.channel}|{wanted.on}|{record.version if record else 0}"
    idempotency_key = f"{Source.SELF_SERVICE.value}:{hashlib.sha256(seen.encode()).hexdigest()}"
    batch = DecisionBatch(
        decisions=[
            Decision(wanted.purpose, wanted.channel, ConsentAction.GRANT if wanted.on else ConsentAction.WITHDRAW, None)
        ],
        source=Source.SELF_SERVICE,
        actor_kind=session.page.actor_kind,
        actor_ref=session.actor_ref,
        notice_version=notice,
        evidence_ref=f"page:{language}:{notice}",
        correlation_id=correlation_id,
        client_id=CLIENT_ID,
    )
    response = await svc.record(session.subject_id, batch, idempotency_key, fingerprint=idempotency_key)
    return 0 if response["replayed"] else len(response["changes"])
