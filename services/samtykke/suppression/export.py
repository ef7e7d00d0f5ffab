"""The suppression list: a full export and a change feed (additions and removals) with a cursor.

An entry is an explicit suppression — a marketing (purpose, channel) a subject blocks for a
reason other than a mere absence of consent (withdrawn, expired, objected, a register, erased,
stale). The export answers a `Suppression-Cursor` header: reading the change feed from it
gives every change made after the export began (an entry may show up in both; apply as upsert).
Both refuse with 503 while the index is stale or not caught up: a list cannot fail closed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, StreamingResponse

from samtykke.adapters.auth import Principal

from .api import Gate, iso
from .auth import require
from .changes import SuppressionChanges
from .gate import IndexStale, SuppressionGate
from .schemas import ERROR_RESPONSES, ChangesOut

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES, tags=["suppression list"])


def _feed(g: SuppressionGate) -> SuppressionChanges:
    changes = g.index.changes
    if changes is None or g.is_stale():
        raise IndexStale(float("nan") if changes is None else g.index_age())
    return changes


@router.get(
    "/suppressions",
    summary="Full suppression list (NDJSON), with a cursor for the change feed",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
async def export(g: Gate, _: Principal = Depends(require("suppression:export"))) -> StreamingResponse:
    changes = _feed(g)
    cursor = changes.cursor
    now = time.time()

    async def lines() -> AsyncIterator[bytes]:
        states = list(g.index.subjects.values())
        for start in range(0, len(states), 2000):
            out = []
            for state in states[start : start + 2000]:
                for (purpose, channel), reasons in g.index.entries(state, now).items():
                    out.append(
                        json.dumps(
                            {
                                "subject_id": state.subject_id,
                                "purpose": purpose,
                                "channel": channel,
                                "reasons": [r.value for r in reasons],
                            },
                            separators=(",", ":"),
                        )
                    )
            if out:
                yield ("\n".join(out) + "\n").encode()
            await asyncio.sleep(0)  # let checks run between slices of a long export

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Suppression-Cursor": cursor, "Suppression-Evaluated-At": iso(now) or ""},
    )


@router.get(
    "/suppressions/changes",
    response_model=ChangesOut,
    summary="Changes to the suppression list after a cursor (additions and removals)",
    responses={410: {"description": "Cursor from another replica or start-up, or trimmed: re-export"}},
)
async def changes(
    g: Gate,
    cursor: Annotated[str | None, Query(max_length=100, description="From the export or the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    _: Principal = Depends(require("suppression:export")),
) -> JSONResponse:
    page, next_cursor = _feed(g).since(cursor, limit)
    body: list[dict[str, Any]] = [
        {
            "seq": c.seq,
            "at": iso(c.at),
            "action": c.action,
            "subject_id": c.subject_id,
            "purpose": c.purpose,
            "channel": c.channel,
            "reasons": [r.value for r in c.reasons],
        }
        for c in page
    ]
    return JSONResponse({"changes": body, "next_cursor": next_cursor})
