"""The consent service's own exceptions; the HTTP layer maps each to one status code."""

from __future__ import annotations

from samtykke.domain.consent import RuleViolation


class SubjectNotFound(LookupError):
    pass


class RulesBroken(ValueError):
    """One or more domain rules reject the request (HTTP 422)."""

    def __init__(self, violations: list[RuleViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.rule}" for v in violations))
        self.violations = violations


class Conflict(RuntimeError):
    """The request contradicts stored state (HTTP 409), e.g. a national id already registered."""

    def __init__(self, message: str, subject_id: str | None = None) -> None:
        super().__init__(message)
        self.subject_id = subject_id
