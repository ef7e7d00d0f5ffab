"""Bearer credentials with scopes, shared by every HTTP service. `admin` implies every scope."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False, description="API key issued with scopes")


class Principal:
    def __init__(self, scopes: frozenset[str]) -> None:
        self.scopes = scopes

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes


def authorise(request: Request, credentials: HTTPAuthorizationCredentials | None, scope: str) -> Principal:
    """401 for a missing or unknown key, 403 for a key without `scope`."""
    keys: dict[str, list[str]] = request.app.state.api_keys
    if credentials is None or credentials.credentials not in keys:
        raise HTTPException(401, "missing or unknown credential", {"WWW-Authenticate": "Bearer"})
    principal = Principal(frozenset(keys[credentials.credentials]))
    if scope not in principal.scopes and not principal.is_admin:
        raise HTTPException(403, f"credential lacks scope '{scope}'")
    return principal


def require(scope: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
    ) -> Principal:
        return authorise(request, credentials, scope)

    return dependency
