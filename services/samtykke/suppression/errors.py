"""The suppression service's errors and their HTTP mapping: every client mistake is a 4xx naming
the field and the rule; a stale index under the 503 policy is a 503 with Retry-After."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from samtykke.adapters.auth import install_scope_handler
from samtykke.adapters.problems import install_problem_handlers, problem

from .changes import CursorGone
from .gate import IndexStale


class RequestProblems(ValueError):
    """The request breaks one or more rules (HTTP 422)."""

    def __init__(self, problems: list[tuple[str, str]], error: str = "validation_failed") -> None:
        super().__init__("; ".join(f"{f}: {r}" for f, r in problems))
        self.problems = problems
        self.error = error


def install_error_handlers(app: FastAPI) -> None:
    install_problem_handlers(app)
    install_scope_handler(app)

    @app.exception_handler(RequestProblems)
    async def _problems(_: Request, exc: RequestProblems) -> JSONResponse:
        return problem(422, exc.error, exc.problems)

    @app.exception_handler(IndexStale)
    async def _stale(_: Request, exc: IndexStale) -> JSONResponse:
        return problem(
            503,
            "stale_index",
            [("index", f"{exc}: older than the freshness bound; never allowed on doubt")],
            {"Retry-After": "1"},
        )

    @app.exception_handler(CursorGone)
    async def _gone(_: Request, exc: CursorGone) -> JSONResponse:
        return problem(410, "cursor_gone", [("cursor", f"{exc}; re-read GET /v1/suppressions")])
