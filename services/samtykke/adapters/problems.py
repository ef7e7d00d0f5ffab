"""The error body both HTTP services answer with, and the handlers they share: every failure a
client can fix is a 4xx naming the field and the rule (`{"error", "problems": [{field, rule}]}`).

Field paths have one style whoever finds the problem (pydantic, a domain rule, an entry parser):
`decisions[0].occurred_at`, `identifiers.national_id`, `entries[3].phone`; a query, path or header
parameter by its own name (`cursor`, `Idempotency-Key`); the request body as a whole, or a body
that is not valid JSON, is `body`. A rule about several fields at once names them joined by `|`
(`phone|email|national_id` for "give exactly one of").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

# where a parameter was found: its name alone identifies it
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})
_FIELD_RULE = "field_rule"


class Problem(BaseModel):
    field: str
    rule: str


class ErrorOut(BaseModel):
    error: str
    problems: list[Problem] = []


def problem(
    status: int,
    error: str,
    problems: list[tuple[str, str]],
    headers: dict[str, str] | None = None,
    **extra: str | None,
) -> JSONResponse:
    """The error body; `extra` adds fields such as the subject a conflict concerns (None: left out)."""
    body: dict[str, Any] = {"error": error, "problems": [{"field": f, "rule": r} for f, r in problems]}
    body |= {k: v for k, v in extra.items() if v is not None}
    return JSONResponse(body, status_code=status, headers=headers)


class ClientProblem(ValueError):
    """A mistake the client can fix, found below the HTTP layer (a malformed cursor, say); the shared
    handlers answer it with `status` and its problems."""

    def __init__(self, problems: list[tuple[str, str]], status: int = 422, error: str = "validation_failed") -> None:
        super().__init__("; ".join(f"{f}: {r}" for f, r in problems))
        self.problems = problems
        self.status = status
        self.error = error


def field_rule(field: str, rule: str) -> PydanticCustomError:
    """An error for a model validator to raise that names `field` (relative to the model, e.g.
    `phone|email` for a one-of), where a plain ValueError would name the whole model."""
    return PydanticCustomError(_FIELD_RULE, rule, {"field": field})


def field_name(loc: Sequence[Any]) -> str:
    """A validation error's location as a field path (`decisions[0].purpose`)."""
    parts = list(loc[1:] if loc and loc[0] in _LOCATIONS else loc)
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def _invalid_json(doc: Any, pos: int, message: str) -> str:
    text = doc.decode("utf-8", "replace") if isinstance(doc, bytes) else str(doc)
    line = text.count("\n", 0, pos) + 1
    column = pos - text.rfind("\n", 0, pos)
    return f"invalid JSON at line {line}, column {column}: {message}"


def _validation_problem(error: Any, body: Any) -> tuple[str, str]:
    loc, ctx = tuple(error["loc"]), error.get("ctx") or {}
    if error["type"] == "json_invalid" and len(loc) == 2 and isinstance(loc[1], int):
        # FastAPI reports the decode error's byte offset as if it were a field
        return "body", _invalid_json(body, loc[1], str(ctx.get("error", "not valid JSON")))
    if error["type"] == _FIELD_RULE:
        loc = (*loc, ctx["field"])
    return field_name(loc), str(error["msg"])


def _unparsable_body(exc: StarletteHTTPException) -> str:
    """The rule a body broke when FastAPI could not parse it (it keeps the cause, not a message)."""
    cause = exc.__cause__
    if isinstance(cause, RecursionError):
        return "JSON nested too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return f"is not UTF-8 text (byte {cause.start})"
    if isinstance(cause, json.JSONDecodeError):
        return _invalid_json(cause.doc, cause.pos, cause.msg)
    return str(exc.detail)


def install_problem_handlers(app: FastAPI) -> None:
    """Request validation (422), the client's own problems and HTTP errors (credentials, rate limits,
    unknown routes, unparsable or too large bodies) as problems."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, "validation_failed", [_validation_problem(e, exc.body) for e in exc.errors()])

    @app.exception_handler(ClientProblem)
    async def _client(_: Request, exc: ClientProblem) -> JSONResponse:
        return problem(exc.status, exc.error, exc.problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code in (401, 403, 429):
            return problem(exc.status_code, "http_error", [("Authorization", str(exc.detail))], headers)
        if exc.status_code == 400:
            return problem(400, "unparsable_body", [("body", _unparsable_body(exc))], headers)
        if exc.status_code == 413:
            return problem(413, "body_too_large", [("body", str(exc.detail))], headers)
        return problem(exc.status_code, "http_error", [("request", str(exc.detail))], headers)
