"""National registers are shared, durable state on the register topic: an import through one replica
is applied by every replica, by one started later and by one restarted; a suspicious file is
refused with its rule and the list in use stays, unless forced."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..conftest import REGISTERS, RunningConsent
from .conftest import RunningSuppression
from .helpers import register

CALL: dict[str, Any] = {"purpose": "existing_customer_offers", "channel": "phone"}
TEXT = REGISTERS | {"Content-Type": "text/plain"}


async def upload(replica: RunningSuppression, content: bytes | str, published: str, **params: str) -> Any:
    return await replica.client.post(
        "/v1/registers/NIX/imports", params={"published": published, **params}, content=content, headers=TEXT
    )


async def finished(replica: RunningSuppression, response: Any) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    while job["state"] == "running":
        await asyncio.sleep(0.05)
        job = (await replica.client.get(f"/v1/registers/imports/{job['job_id']}", headers=REGISTERS)).json()
    assert job["state"] == "done", job
    return job


async def test_a_register_import_reaches_every_replica_survives_a_restart_and_refuses_a_suspicious_file(
    consent: RunningConsent, start_suppression: Callable[..., Awaitable[RunningSuppression]]
) -> None:
    listed = await register(consent, "SE", "070-111 22 33")
    other = await register(consent, "SE", "+46 70 999 88 77")
    a = await start_suppression()
    await a.wait_ready()
    await a.wait_for(lambda d: d["subject_ids"] == [other], subject_id=other, **CALL)
    published = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()

    job = await finished(a, await upload(a, "\ufeff# NIX extract\n+46701112233\n0709998877\n".encode(), published))
    assert (job["read"], job["listed"], job["matched"], job["invalid"], job["forced"]) == (2, 2, 2, 0, False)
    assert (await a.check(subject_id=listed, **CALL))["reasons"] == ["register:NIX"]

    b = await start_suppression()  # a replica started later, and one restarted, rebuild it from the topic
    restarted = await start_suppression()
    for replica in (b, restarted):
        await replica.wait_ready()
        await replica.wait_for(lambda d: d["subject_ids"] == [listed], subject_id=listed, **CALL)
        decision = await replica.check(subject_id=listed, **CALL)
        assert decision["reasons"] == ["register:NIX"] and decision["registers"][0]["published"] == published
        listing = (await replica.client.get("/v1/registers")).json()["NIX"]
        assert listing["listed"] == 2 and listing["snapshot_id"] == job["snapshot_id"]

    refusals: dict[bytes | str, str] = {
        "": "register:NIX: empty: no valid phone number in the file",
        "+46701112233\nnope\n": "register:NIX: mostly invalid: 1 of 2 lines are not phone numbers (more than 10%)",
        "+46709998877\n": "register:NIX: drops 1 of the 2 numbers listed now (more than 20%)",
        "+46701112233\n".encode("utf-16"): "register:NIX: undecodable: UTF-16 text (save the file as UTF-8)",
    }
    for content, rule in refusals.items():
        refused = await upload(b, content, published)
        assert refused.status_code == 422, refused.text
        body = refused.json()  # every rule broken is named; the one this file is about among them
        assert body["error"] == "register_refused" and {"field": "body", "rule": rule} in body["problems"]
    await asyncio.sleep(0.5)
    for replica in (a, b, restarted):
        assert (await replica.check(subject_id=listed, **CALL))["reasons"] == ["register:NIX"]

    forced = await finished(b, await upload(b, "", published, force="true"))
    assert (forced["listed"], forced["forced"]) == (0, True)
    for replica in (a, b, restarted):
        decision = await replica.wait_for(lambda d: d["result"] == "allowed", subject_id=listed, **CALL)
        assert decision["registers"][0]["standing"] == "clear"
