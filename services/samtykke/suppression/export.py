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
from .schemas import ERROR_RESPONSES, ChangesOut

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES, tags=["suppression list"])
SLICE = 2000  # subjects between two yields to the event loop: checks keep being answered


@router.get(
    "/suppressions",
    summary="Full suppression list (NDJSON), with a cursor for the change feed",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
async def export(g: Gate, _: Principal = Depends(require("suppression:export"))) -> StreamingResponse:
    cursor = g.suppression_changes().cursor
    now = time.time()

    async def lines() -> AsyncIterator[bytes]:
        out: list[str] = []
        for n, (subject_id, entries) in enumerate(g.suppression_list(now), start=1):
            for (purpose, channel), reasons in entries.items():
                out.append(
                    json.dumps(
                        {
                            "subject_id": subject_id,
                            "purpose": purpose,
                            "channel": channel,
                            "reasons": [r.value for r in reasons],
                        },
                        separators=(",", ":"),
                    )
                )
            if n % SLICE == 0:
                if out:
                    yield ("\n".join(out) + "\n").encode()
                    out = []
                await asyncio.sleep(0)
        if out:
            yield ("\n".join(out) + "\n").encode()

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
    page, next_cursor = g.suppression_changes().since(cursor, limit)
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
