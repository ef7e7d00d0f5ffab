"""The subjects' own doors into the ledger: one-click unsubscribe and SMS keywords.

Both go through `ConsentService.record`, like the API, and both are idempotent: the current state is
read first and only what is not yet withdrawn is recorded, so a second click or a repeated STOP adds no
ledger row. Two requests racing past that read meet at an idempotency key made of the state they saw
(each consent's version), so the second one replays the first's answer instead of recording again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from samtykke.domain.consent import Decision
from samtykke.domain.keywords import LastChange
from samtykke.domain.model import ActorKind, Channel, ConsentAction, ConsentStatus, Source

from .changes import DecisionBatch
from .service import ConsentService

Target = tuple[str, Channel | None]


@dataclass(frozen=True, slots=True)
class Door:
    """How a door records: its source, the credential named in the ledger, and the evidence it keeps."""

    source: Source
    client_id: str
    evidence_ref: str | None = None
    correlation_id: str | None = None
    notice_version: str | None = None


async def last_changes(svc: ConsentService, subject_id: str) -> tuple[dict[Target, LastChange], dict[Target, int]]:
    """Each consent's current status (lapse applied), how it was last recorded, and its version."""
    last: dict[Target, LastChange] = {}
    versions: dict[Target, int] = {}
    for current in await svc.current(subject_id):
        key: Target = (current.record.purpose, current.record.channel)
        last[key] = LastChange(current.record.status, current.source, current.recorded_at)
        versions[key] = current.record.version
    return last, versions


async def decide(
    svc: ConsentService, subject_id: str, action: ConsentAction, targets: Sequence[Target], door: Door
) -> int:
    """Record `action` for each target whose status it would change; the number of changes recorded."""
    wanted = ConsentStatus.GRANTED if action is ConsentAction.GRANT else ConsentStatus.WITHDRAWN
    last, versions = await last_changes(svc, subject_id)
    todo = [t for t in targets if t not in last or last[t].status is not wanted]
    if not todo:
        return 0
    seen = ",".join(f"{p}/{c.value if c else '-'}@{versions.get((p, c), 0)}" for p, c in todo)
    key = f"{door.source.value}:{action.value}:{hashlib.sha256(f'{subject_id}|{seen}'.encode()).hexdigest()}"
    batch = DecisionBatch(
        decisions=[Decision(purpose, channel, action, None) for purpose, channel in todo],
        source=door.source,
        actor_kind=ActorKind.SUBJECT,
        actor_ref=None,
        notice_version=door.notice_version,
        evidence_ref=door.evidence_ref,
        correlation_id=door.correlation_id,
        client_id=door.client_id,
    )
    response = await svc.record(subject_id, batch, key, fingerprint=key)
    return 0 if response["replayed"] else len(response["changes"])
