"""The suppression service's errors and their HTTP mapping: every client mistake is a 4xx naming
the field and the rule; a stale index under the 503 policy is a 503 with Retry-After."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .changes import CursorGone
from .gate import IndexStale


class RequestProblems(ValueError):
    """The request breaks one or more rules (HTTP 422)."""

    def __init__(self, problems: list[tuple[str, str]], error: str = "validation_failed") -> None:
        super().__init__("; ".join(f"{f}: {r}" for f, r in problems))
        self.problems = problems
        self.error = error


def problem(status: int, error: str, problems: list[tuple[str, str]], headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error, "problems": [{"field": f, "rule": r} for f, r in problems]}
    return JSONResponse(body, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, "validation_failed", [(_field(tuple(e["loc"])), e["msg"]) for e in exc.errors()])

    @app.exception_handler(RequestProblems)
    async def _problems(_: Request, exc: RequestProblems) -> JSONResponse:
        return problem(422, exc.error, exc.problems)

    @app.exception_handler(IndexStale)
    async def _stale(_: Request, exc: IndexStale) -> JSONResponse:
        return problem(503, "stale_index", [("index", f"{exc}: older than the freshness bound; never allowed on doubt")],
                       {"Retry-After": "1"})

    @app.exception_handler(CursorGone)
    async def _gone(_: Request, exc: CursorGone) -> JSONResponse:
        return problem(410, "cursor_gone", [("cursor", f"{exc}; re-read GET /v1/suppressions")])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        field = "Authorization" if exc.status_code in (401, 403, 429) else "request"
        return JSONResponse(
            {"error": "http_error", "problems": [{"field": field, "rule": str(exc.detail)}]},
            status_code=exc.status_code, headers=getattr(exc, "headers", None),
        )
