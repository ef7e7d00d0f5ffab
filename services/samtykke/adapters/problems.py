"""The error body both HTTP services answer with, and the handlers they share: every failure a
client can fix is a 4xx naming the field and the rule (`{"error", "problems": [{field, rule}]}`)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException


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


def field_name(loc: tuple[Any, ...]) -> str:
    """A validation error's location as a dotted field name (`decisions.0.purpose`)."""
    return ".".join(str(p) for p in loc if p != "body") or "body"


def install_problem_handlers(app: FastAPI) -> None:
    """Request validation (422) and HTTP errors (credentials, rate limits, unknown routes) as problems."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, "validation_failed", [(field_name(tuple(e["loc"])), e["msg"]) for e in exc.errors()])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        field = "Authorization" if exc.status_code in (401, 403, 429) else "request"
        return problem(exc.status_code, "http_error", [(field, str(exc.detail))], getattr(exc, "headers", None))
