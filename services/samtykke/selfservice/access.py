"""Access without a password store: a signed link the operator's portal mints, then a session cookie.

The portal has already identified the person (MitID, BankID); it asks for a link for one subject and
one page, valid for minutes. Opening the link sets a session cookie (sealed, short-lived) and sends
the browser on to the page, so the link's token is not left in the address bar or history; after its
expiry the link opens nothing. Every form carries a CSRF token that is a MAC of the session's random
id, so a form from another session (or another site) is refused.

Links and sessions are Fernet tokens (AES + HMAC) under keys derived with HKDF from one secret, each
with its own label, so a link can never be presented as a session or the other way round. Stateless
on purpose: any replica can open them, and nothing grows with the number of visits.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from samtykke.adapters.vault import derived_fernet
from samtykke.domain.model import ActorKind, SubjectKind

MAX_TOKEN_CHARS = 1024


class Page(StrEnum):
    """Which page a link opens; each belongs to one kind of subject and one kind of actor."""

    CONSUMER = "consumer"
    EMPLOYEE = "employee"
    COMPANY = "company"

    @property
    def subject_kind(self) -> SubjectKind:
        return {Page.CONSUMER: SubjectKind.CONSUMER, Page.EMPLOYEE: SubjectKind.EMPLOYEE}.get(
            self, SubjectKind.BUSINESS
        )

    @property
    def actor_kind(self) -> ActorKind:
        return ActorKind.COMPANY_ADMIN if self is Page.COMPANY else ActorKind.SUBJECT


class ForgedAccess(Exception):
    """Not a link or session any configured key made."""


class ExpiredAccess(Exception):
    """A genuine link or session past its expiry."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a link or a session lets its holder do: one page of one subject, until `expires_at`.
    `actor_ref` is the portal's reference of the person (a company admin's user id), kept in the ledger."""

    subject_id: str
    page: Page
    expires_at: datetime
    actor_ref: str | None = None
    session_id: str = ""  # set on sessions only


class SelfServiceAccess:
    def __init__(self, key: str) -> None:
        self._links = derived_fernet(key, b"samtykke self-service link v1")
        self._sessions = derived_fernet(key, b"samtykke self-service session v1")
        self._csrf_key = hashlib.sha256(b"samtykke self-service csrf v1|" + key.encode()).digest()

    def mint_link(self, grant: Grant) -> str:
        return self._seal(self._links, grant)

    def open_link(self, token: str, now: datetime) -> Grant:
        return self._open(self._links, token, now)

    def start_session(self, link: Grant, expires_at: datetime) -> tuple[Grant, str]:
        """A session for what the link grants (never longer than asked), and its cookie value."""
        session = Grant(link.subject_id, link.page, expires_at, link.actor_ref, secrets.token_urlsafe(16))
        return session, self._seal(self._sessions, session)

    def open_session(self, cookie: str, now: datetime) -> Grant:
        session = self._open(self._sessions, cookie, now)
        if not session.session_id:
            raise ForgedAccess
        return session

    def csrf_token(self, session: Grant) -> str:
        return hmac.new(self._csrf_key, session.session_id.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Grant, token: str) -> bool:
        return hmac.compare_digest(self.csrf_token(session), token)

    @staticmethod
    def _seal(fernet: Fernet, grant: Grant) -> str:
        payload: dict[str, Any] = {
            "s": grant.subject_id,
            "p": grant.page.value,
            "e": int(grant.expires_at.timestamp()),
            "a": grant.actor_ref,
            "i": grant.session_id,
        }
        return fernet.encrypt(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")

    @staticmethod
    def _open(fernet: Fernet, token: str, now: datetime) -> Grant:
        if not 0 < len(token) <= MAX_TOKEN_CHARS or not token.isascii():
            raise ForgedAccess
        try:
            payload = json.loads(fernet.decrypt(token + "=" * (-len(token) % 4)))
            grant = Grant(
                subject_id=str(payload["s"]),
                page=Page(payload["p"]),
                expires_at=datetime.fromtimestamp(int(payload["e"]), UTC),
                actor_ref=None if payload["a"] is None else str(payload["a"]),
                session_id=str(payload["i"]),
            )
        except (InvalidToken, ValueError, KeyError, TypeError) as exc:
            raise ForgedAccess from exc
        if now >= grant.expires_at:
            raise ExpiredAccess
        return grant
