"""The shared error body: one field-path style, invalid JSON by line and column, one-of rules under
the fields' names, unparsable bodies as 400 naming `body` (a small app in memory, no sockets)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Query
from pydantic import BaseModel

from samtykke.adapters.problems import ClientProblem, field_name, install_problem_handlers
from samtykke.consent.schemas import DecisionBatchIn, LookupIn
from samtykke.suppression.schemas import CheckIn


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        (("body", "decisions", 0, "occurred_at"), "decisions[0].occurred_at"),
        (("body", "entries", 12), "entries[12]"),
        (("body",), "body"),
        (("query", "cursor"), "cursor"),
        (("header", "Idempotency-Key"), "Idempotency-Key"),
        (("body", "identifiers", "national_id"), "identifiers.national_id"),
        (("body", "body"), "body"),
    ],
)
def test_field_paths_have_one_style(loc: tuple[Any, ...], expected: str) -> None:
    assert field_name(loc) == expected


class Nested(BaseModel):
    values: list[int]


def _client() -> httpx.AsyncClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/batch")
    async def batch(body: DecisionBatchIn) -> dict[str, Any]:
        return {}

    @app.post("/lookup")
    async def lookup(body: LookupIn) -> dict[str, Any]:
        return {}

    @app.post("/check")
    async def check(body: CheckIn) -> dict[str, Any]:
        return {}

    @app.post("/nested")
    async def nested(body: Nested) -> dict[str, Any]:
        return {}

    @app.get("/cursor")
    async def cursor(cursor: str = Query(max_length=5)) -> dict[str, Any]:
        raise ClientProblem([("cursor", "is not a cursor")])

    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test")


def _problems(response: Any) -> list[tuple[str, str]]:
    return [(p["field"], p["rule"]) for p in response.json()["problems"]]


async def test_invalid_json_names_the_body_with_line_and_column() -> None:
    response = await _client().post(
        "/nested", content=b'{\n  "values": [1,\n  2\n  3]}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert _problems(response) == [("body", "invalid JSON at line 4, column 3: Expecting ',' delimiter")]


async def test_pydantic_errors_use_brackets_for_list_positions() -> None:
    body = {
        "decisions": [{"purpose": "direct_marketing", "channel": "fax", "action": "grant"}],
        "source": "self_service",
    }
    response = await _client().post("/batch", json=body | {"actor": {"kind": "subject"}})
    assert response.status_code == 422
    assert [f for f, _ in _problems(response)] == ["decisions[0].channel"]


async def test_one_of_rules_name_the_fields_of_the_one_of() -> None:
    client = _client()
    assert _problems(await client.post("/lookup", json={})) == [
        ("phone|email|national_id", "give exactly one of phone, email, national_id")
    ]
    assert _problems(await client.post("/lookup", json={"national_id": "0101901234"})) == [
        ("country", "is required with national_id")
    ]
    both = await client.post("/check", json={"phone": "+4512345678", "email": "a@b.dk", "purpose": "direct_marketing"})
    assert _problems(both) == [("subject_id|phone|email", "give exactly one of subject_id, phone, email")]


async def test_bodies_json_cannot_parse_are_400_naming_the_body() -> None:
    client = _client()
    deep = await client.post("/nested", content=b"[" * 100_000, headers={"content-type": "application/json"})
    assert deep.status_code == 400 and _problems(deep) == [("body", "JSON nested too deeply")]
    latin1 = await client.post(
        "/nested", content='{"values": "Ø"}'.encode("latin-1"), headers={"content-type": "application/json"}
    )
    assert latin1.status_code == 400 and _problems(latin1) == [("body", "is not UTF-8 text (byte 12)")]


async def test_a_problem_found_below_the_http_layer_is_answered_with_its_status() -> None:
    client = _client()
    assert _problems(await client.get("/cursor", params={"cursor": "x"})) == [("cursor", "is not a cursor")]
    too_long = await client.get("/cursor", params={"cursor": "x" * 10})
    assert too_long.status_code == 422 and _problems(too_long)[0][0] == "cursor"
