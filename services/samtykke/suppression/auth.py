"""The suppression service's credentials: the shared rules of `adapters.auth` (scopes, budgets), and who
may ask about the past."""

from __future__ import annotations

import time
from datetime import datetime

from fastapi import Request

from samtykke.adapters.auth import Principal, RateLimitHeaders, ScopeRequired, require

AUDIT_SCOPE = "suppression:audit"


def decision_instant(request: Request, who: Principal, at: datetime | None, field: str = "at") -> float | None:
    """The epoch a decision is for. An `at` in the past steps around lapses and register freshness, so
    beyond a small clock skew it is for auditors only (403 naming the field otherwise)."""
    if at is None:
        return None
    skew: float = request.app.state.audit_skew_seconds
    if at.timestamp() < time.time() - skew and not who.has(AUDIT_SCOPE):
        raise ScopeRequired([(field, f"more than {skew:g} s in the past needs the {AUDIT_SCOPE} scope")])
    return at.timestamp()


__all__ = ["RateLimitHeaders", "decision_instant", "require"]
