"""Hostile input against the real consent and suppression services: every case is a 4xx naming the
field or the rule (413 for a body too large), never a 500, and the services keep answering — the
suppression index stays fresh while a large unauthenticated body is refused."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import httpx

from .conftest import RunningConsent
from .suppression import conftest as suppression_fixtures
from .suppression.conftest import RunningSuppression
from .suppression.helpers import decide, register

# the suppression fixtures live one folder down; this file tests both services
start_suppression = suppression_fixtures.start_suppression
suppression = suppression_fixtures.suppression

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
WRITER = {"Authorization": "Bearer dev-writer"}
ANONYMOUS = {"Authorization": ""}
DM_SMS = {"purpose": "direct_marketing", "channel": "sms"}
MB = 1_000_000


def person(national_id: str, country: str = "DK") -> dict[str, Any]:
    return {"kind": "consumer", "country": country, "identifiers": {"national_id": national_id}}


def problems(response: httpx.Response) -> list[tuple[str, str]]:
    assert 400 <= response.status_code < 500, response.text
    return [(p["field"], p["rule"]) for p in response.json()["problems"]]


async def raw_post(
    url: str, path: str, length: int, send: bool = False, chunked: bool = False, pause: float = 0.0
) -> tuple[int, Any]:
    """POSTs a body of `length` bytes over a plain socket: declared and not sent (the answer must come
    at once), or sent whole, with Content-Length or chunked, whatever the server answered meanwhile
    (`pause` seconds after each 256 KiB: a client that keeps the server reading for a while)."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\n{framing}\r\n\r\n".encode())
        piece, sent = b" " * (256 * 1024), 0
        while send and sent < length:
            data = piece[: length - sent]
            writer.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            await writer.drain()
            sent += len(data)
            await asyncio.sleep(pause)
        writer.write(b"0\r\n\r\n" if send and chunked else b"")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        headers = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
        body = await asyncio.wait_for(reader.readexactly(int(headers[b"content-length"])), timeout=5)
        return int(head.split()[1]), json.loads(body)
    finally:
        writer.close()


# -- consent service -------------------------------------------------------------------------------


async def test_digit_like_national_ids_and_phones_are_refused_naming_the_field(consent: RunningConsent) -> None:
    superscript = await consent.client.post("/v1/subjects", json=person("²²²²²²²²²²"))
    assert problems(superscript) == [
        ("identifiers.national_id", "must contain decimal digits only (a '-' separator is allowed)")
    ]
    lookup = await consent.client.post("/v1/subjects/lookup", json={"national_id": "²²²²²²²²²²", "country": "DK"})
    assert problems(lookup)[0][0] == "national_id"
    phone = await consent.client.post(
        "/v1/subjects", json={"kind": "consumer", "country": "DK", "identifiers": {"phone": "+45²²²²²²²²"}}
    )
    assert problems(phone)[0][0] == "identifiers.phone"
    circled = await consent.client.post("/v1/subjects/lookup", json={"phone": "+45 ①2345678"})
    assert problems(circled)[0][0] == "phone"


async def test_a_national_id_is_unique_whatever_digits_it_is_typed_in(consent: RunningConsent) -> None:
    ascii_id = "010190-1234"
    responses = await asyncio.gather(
        *(
            consent.client.post("/v1/subjects", json=person(raw), headers=WRITER)
            for raw in (ascii_id, ascii_id.translate(ARABIC_INDIC), "０１０１９０１２３４", ascii_id)
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409], [r.text for r in responses]
    [created] = [r.json()["subject_id"] for r in responses if r.status_code == 201]
    assert all("subject_id" not in r.json() for r in responses if r.status_code == 409)
    found = await consent.client.post(
        "/v1/subjects/lookup", json={"national_id": ascii_id.translate(ARABIC_INDIC), "country": "DK"}
    )
    assert found.json() == {"subject_ids": [created]}


async def test_one_idempotency_key_for_two_subjects_at_once_is_never_a_500(consent: RunningConsent) -> None:
    for round_ in range(5):
        a, b = await register(consent, "SE"), await register(consent, "SE")
        body = {
            "decisions": [{"purpose": "direct_marketing", "channel": "sms", "action": "grant"}],
            "source": "self_service",
            "actor": {"kind": "subject"},
        }
        key = {"Idempotency-Key": f"raced-key-{round_:04d}"}
        responses = await asyncio.gather(
            *(consent.client.post(f"/v1/subjects/{s}/consents", json=body, headers=key) for s in (a, b))
        )
        statuses = sorted(r.status_code for r in responses)
        # 409 when both ran at once, 422 when one had committed before the other looked
        assert statuses in ([201, 409], [201, 422]), [r.text for r in responses]
        [refused] = [r for r in responses if r.status_code != 201]
        assert problems(refused)[0][0] == "Idempotency-Key"


async def test_invalid_json_names_the_body_line_and_column(consent: RunningConsent) -> None:
    broken = b'{\n  "kind": "consumer",\n  "country": "DK"\n  "identifiers": {}\n}'
    response = await consent.client.post("/v1/subjects", content=broken, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert problems(response) == [("body", "invalid JSON at line 4, column 3: Expecting ',' delimiter")]
    deep = await consent.client.post("/v1/subjects", content=b"[" * 5000, headers={"Content-Type": "application/json"})
    assert problems(deep) == [("body", "JSON nested too deeply")]


async def test_field_paths_have_one_style_and_one_of_rules_name_their_fields(consent: RunningConsent) -> None:
    subject = await register(consent, "DK")
    batch = {
        "decisions": [{"purpose": "direct_marketing", "channel": "fax", "action": "grant"}],
        "source": "self_service",
        "actor": {"kind": "subject"},
    }
    wrong_channel = await consent.client.post(f"/v1/subjects/{subject}/consents", json=batch)
    assert problems(wrong_channel)[0][0] == "decisions[0].channel"
    none_given = await consent.client.post("/v1/subjects/lookup", json={})
    assert problems(none_given) == [("phone|email|national_id", "give exactly one of phone, email, national_id")]


async def test_large_bodies_are_413_before_credentials(consent: RunningConsent) -> None:
    status, body = await raw_post(consent.url, "/v1/subjects", 1 << 30)  # 1 GB, none of it sent
    assert status == 413 and body["problems"][0]["field"] == "body"
    big = b'{"kind": "consumer", "pad": "' + b"x" * (20 * MB) + b'"}'
    response = await consent.client.post(
        "/v1/subjects", content=big, headers=ANONYMOUS | {"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert problems(response) == [("body", "must be at most 16 KiB on this route")]
    assert (await consent.client.get("/v1/purposes")).status_code == 200


# -- suppression service ---------------------------------------------------------------------------


async def test_the_suppression_api_refuses_hostile_input_naming_field_or_line(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    client = suppression.client
    both = await client.post("/v1/check", json={"phone": "+4512345678", "email": "a@b.dk", **DM_SMS})
    assert problems(both) == [("subject_id|phone|email", "give exactly one of subject_id, phone, email")]
    superscript = await client.post("/v1/check", json={"phone": "+46²²²²²²²²²", **DM_SMS})
    assert problems(superscript)[0][0] == "phone"
    ndjson = {"Content-Type": "application/x-ndjson"}
    nested = await client.post("/v1/check/stream", params=DM_SMS, content=b"[" * 10_000 + b"\n", headers=ndjson)
    assert problems(nested) == [("entries[0]", "line 1: JSON nested too deeply")]
    endless = await client.post("/v1/check/stream", params=DM_SMS, content=b"[" * 100_000 + b"\n", headers=ndjson)
    assert problems(endless) == [("body", "line 1 is longer than 65536 bytes")]
    broken = await client.post(
        "/v1/check/stream", params=DM_SMS, content=b'{"phone": "+4512345678"}\n{"phone"\n', headers=ndjson
    )
    assert problems(broken) == [("entries[1]", "line 2: invalid JSON at column 9: Expecting ':' delimiter")]
    export = await client.get("/v1/suppressions")
    epoch = export.headers["Suppression-Cursor"].split(".")[0]
    malformed = await client.get("/v1/suppressions/changes", params={"cursor": f"{epoch}.²"})
    assert malformed.status_code == 422 and problems(malformed)[0][0] == "cursor"


async def test_a_spreadsheet_csv_is_read(consent: RunningConsent, suppression: RunningSuppression) -> None:
    withdrawn = await register(consent, "DK", phone="+45 31 32 33 34")
    await decide(consent, withdrawn, ("direct_marketing", "sms", "withdraw"))
    await suppression.wait_for(lambda d: d["reasons"] == ["withdrawn"], subject_id=withdrawn, **DM_SMS)
    sheet = '\ufeff"phone"\r\n"+45 31 32 33 34"\r\n"+45 99 88 77 66"\r\n'.encode()
    response = await suppression.client.post(
        "/v1/check/stream", params=DM_SMS | {"mode": "full"}, content=sheet, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    results = [json.loads(line) for line in response.text.splitlines()]
    assert [(r["index"], r["reasons"]) for r in results] == [(0, ["withdrawn"]), (1, ["unknown_subject"])]


async def test_bulk_and_stream_bodies_over_their_limits_are_413(suppression: RunningSuppression) -> None:
    bulk = {"purpose": "direct_marketing", "entries": [{"phone": "+4512345678"}] * (20 * MB // 26)}
    response = await suppression.client.post("/v1/check/bulk", json=bulk)
    assert response.status_code == 413 and problems(response) == [("body", "must be at most 4 MiB on this route")]
    status, body = await raw_post(suppression.url, "/v1/check/stream?purpose=direct_marketing", 200 * MB)
    assert status == 413 and body["problems"] == [{"field": "body", "rule": "must be at most 128 MiB on this route"}]


async def test_the_index_stays_fresh_while_a_large_unauthenticated_body_is_refused(
    consent: RunningConsent, suppression: RunningSuppression
) -> None:
    """Both the feed's own freshness (`kafka_age_seconds`: since Kafka last confirmed every partition
    applied), which a busy event loop would let grow, and the end-to-end index age (which also counts
    the consent service's watermark cadence, every 0.5 s when idle) stay under 1 s."""
    subject = await register(consent, "SE")
    await decide(consent, subject, ("direct_marketing", "sms", "grant"))
    await suppression.wait_for(lambda d: d["result"] == "allowed", subject_id=subject, **DM_SMS)
    samples: list[dict[str, Any]] = []
    watching = True

    async def watch() -> None:
        async with httpx.AsyncClient(base_url=suppression.url, timeout=10) as probe:
            while watching:
                samples.append((await probe.get("/ready")).json())
                await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.sleep(2.5)
        quiet = list(samples)
        samples.clear()
        refused = [
            # about 2 s each: the feed must keep the index fresh all the while
            await raw_post(suppression.url, "/v1/check", 50 * MB, send=True, chunked=chunked, pause=0.01)
            for chunked in (False, True)
        ]
    finally:
        watching = False
        await watcher
    for status, body in refused:
        assert status == 413 and body["problems"] == [{"field": "body", "rule": "must be at most 8 KiB on this route"}]
    assert len(samples) > 50 and all(s["ready"] and not s["stale"] for s in samples)
    assert max(s["kafka_age_seconds"] for s in samples) < 1.0
    assert max(s["index_age_seconds"] for s in quiet) < 1.0
    assert max(s["index_age_seconds"] for s in samples) < 1.0
    after = await suppression.check(subject_id=subject, **DM_SMS)
    assert after["result"] == "allowed"
