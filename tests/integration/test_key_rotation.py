"""Identifier encryption keys rotate: a new key in front still opens values sealed under the retired one,
`rekey` moves every stored value to the new key, and the retired key can then go."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet

from samtykke.consent.app import create_app
from samtykke.consent.rekey import run as rekey

from .conftest import ADMIN, ServerThread, consent_settings

SUBJECTS = [
    {"kind": "consumer", "country": "DK", "identifiers": {"phone": f"+45 20 30 40 5{i}", "email": f"p{i}@example.dk"}}
    for i in range(3)
]


async def identifiers(settings: Any, subject_ids: list[str]) -> list[dict[str, str | None]]:
    with ServerThread(create_app(settings), settings.consent_port):
        url = f"http://127.0.0.1:{settings.consent_port}"
        async with httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=30) as client:
            shown = [(await client.get(f"/v1/subjects/{s}")).json() for s in subject_ids]
    return [s["identifiers"] for s in shown]


async def test_a_rotated_key_opens_old_values_and_rekey_moves_them(
    stack: Any, fresh_database: str, topic_names: Any
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = consent_settings(stack, fresh_database, topic_names, identifier_encryption_key=old)
    with ServerThread(create_app(before), before.consent_port):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{before.consent_port}", headers=ADMIN) as client:
            created = [(await client.post("/v1/subjects", json=s)).json() for s in SUBJECTS]
    ids = [c["subject_id"] for c in created]
    expected = [c["identifiers"] for c in created]
    assert expected[0]["phone"] == "+4520304050"

    rotated = before.model_copy(update={"identifier_encryption_key": new, "identifier_encryption_retired_keys": [old]})
    assert await identifiers(rotated, ids) == expected

    report = await rekey(rotated)
    assert (report.subjects, report.values) == (3, 6)
    conn = await asyncpg.connect(fresh_database)
    try:
        stored = await conn.fetch("SELECT phone_enc, email_enc FROM consent.subjects")
    finally:
        await conn.close()
    only_new = Fernet(new.encode())
    assert sorted(only_new.decrypt(r["phone_enc"]).decode() for r in stored) == sorted(e["phone"] for e in expected)

    retired_gone = rotated.model_copy(update={"identifier_encryption_retired_keys": []})
    assert await identifiers(retired_gone, ids) == expected
