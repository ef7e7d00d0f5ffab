"""Fault matrix, the national registers: shared through their topic across restarts and a new replica,
and a suspicious (empty) file refused while the list in use stays."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from .harness import BOUND_SECONDS, REGISTERS, FaultPlatform
from .row import Row, phone_number
from .watch import check, wait_decision

pytestmark = pytest.mark.stack
CALL: dict[str, Any] = {"purpose": "existing_customer_offers", "channel": "phone"}


def published() -> str:
    return (datetime.now(UTC) - timedelta(days=2)).date().isoformat()


async def upload(platform: FaultPlatform, content: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=platform.suppression_urls["suppression"], timeout=30) as client:
        return await client.post(
            "/v1/registers/NIX/imports",
            params={"published": published(), **params},
            content=content.encode(),
            headers=REGISTERS | {"Content-Type": "text/plain"},
        )


async def imported(platform: FaultPlatform, numbers: list[str], **params: str) -> dict[str, Any]:
    response = await upload(platform, "".join(f"{n}\n" for n in numbers), **params)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    async with httpx.AsyncClient(base_url=platform.suppression_urls["suppression"], timeout=30) as client:
        while job["state"] == "running":
            await asyncio.sleep(0.1)
            job = (await client.get(f"/v1/registers/imports/{job['job_id']}", headers=REGISTERS)).json()
    assert job["state"] == "done", job
    return job


async def decisions(platform: FaultPlatform, phone: str) -> dict[str, tuple[Any, ...]]:
    """Each replica's decision on a call to `phone`: result, reasons and the register snapshot used."""
    found = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for name, url in platform.suppression_urls.items():
            d = await check(client, url, phone=phone, **CALL)
            registers = tuple((r["register"], r["standing"], r["published"]) for r in d["registers"])
            found[name] = (d["result"], tuple(d["reasons"]), registers)
    return found


def listed(decision: dict[str, Any]) -> bool:
    return bool(decision["reasons"] == ["register:NIX"])


async def test_register_import_then_restart_and_a_new_replica(fault_platform: FaultPlatform, row: Row) -> None:
    """10. register import, then suppression restart + new replica"""
    [subject] = await row.granted()
    [holder] = await row.granted(country="SE", phones=True)
    phone = row.phones[holder]
    job = await imported(fault_platform, [phone, *(phone_number("SE") for _ in range(4))])
    await wait_decision(fault_platform, listed, timeout=BOUND_SECONDS, phone=phone, **CALL)
    before = await decisions(fault_platform, phone)

    await fault_platform.terminate("suppression")
    await fault_platform.terminate("suppression-2")  # and in its place, a replica started afresh
    await row.withdraw(subject)
    await fault_platform.start("suppression")
    await fault_platform.start("suppression-2")
    recovered = time.monotonic()
    await wait_decision(fault_platform, listed, phone=phone, **CALL)
    after = await decisions(fault_platform, phone)
    assert set(after.values()) == set(before.values()) and len(set(after.values())) == 1, (before, after)
    row.record.note = f"snapshot {job['snapshot_id']}: same decision on both replicas"
    await row.verify(recovered)


async def test_empty_register_file(fault_platform: FaultPlatform, row: Row) -> None:
    """11. empty register file: refused, the number stays blocked"""
    [subject] = await row.granted()
    [holder] = await row.granted(country="SE", phones=True)
    phone = row.phones[holder]
    # a new list in place of the one in use (forced: it drops every number listed now)
    await imported(fault_platform, [phone, *(phone_number("SE") for _ in range(4))], force="true")
    await wait_decision(fault_platform, listed, timeout=BOUND_SECONDS, phone=phone, **CALL)

    refused = await upload(fault_platform, "")
    await row.withdraw(subject)
    assert refused.status_code == 422, refused.text
    rules = [p["rule"] for p in refused.json()["problems"]]
    assert any("empty" in rule for rule in rules), rules
    deadline = time.monotonic() + BOUND_SECONDS + 1
    while time.monotonic() < deadline:  # the list in use stays, on every replica
        assert all(d[1] == ("register:NIX",) for d in (await decisions(fault_platform, phone)).values())
        await asyncio.sleep(0.2)
    await row.verify(time.monotonic())
