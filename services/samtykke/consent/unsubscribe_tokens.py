"""Opaque tokens of one-click unsubscribe links: what to withdraw, sealed so nobody can read or forge it.

A token is a Fernet token (AES-128-CBC + HMAC-SHA256) of `{subject, purpose, channel, expiry}`, under a
key derived with HKDF from `unsubscribe_token_key`. Stateless on purpose: a campaign mints a link per
recipient, millions of them, and a table of tokens would grow with every mailing for links most people
never click. The subject id cannot be read from the URL, and changing one character breaks the MAC.
Retired keys still open (MultiFernet), so a key rotation does not break the links already in inboxes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.fernet import InvalidToken, MultiFernet

from samtykke.adapters.vault import derived_fernet
from samtykke.domain.model import Channel

# a new layout of the payload gets a new label, so an old key can never open it as the old one
_KDF_INFO = b"samtykke unsubscribe link v1"
MAX_TOKEN_CHARS = 512


class ForgedToken(Exception):
    """Not a token any configured key made (tampered, truncated, invented)."""


class ExpiredToken(Exception):
    """A genuine token past its expiry."""


@dataclass(frozen=True, slots=True)
class UnsubscribeTarget:
    subject_id: str
    purpose: str
    channel: Channel | None
    expires_at: datetime


class UnsubscribeTokens:
    def __init__(self, key: str, retired: Sequence[str] = ()) -> None:
        self._fernet = MultiFernet([derived_fernet(k, _KDF_INFO) for k in (key, *retired)])

    def mint(self, target: UnsubscribeTarget) -> str:
        payload = {
            "s": target.subject_id,
            "p": target.purpose,
            "c": target.channel.value if target.channel else None,
            "e": int(target.expires_at.timestamp()),
        }
        token = self._fernet.encrypt(json.dumps(payload, separators=(",", ":")).encode())
        return token.decode().rstrip("=")  # padding is noise in a URL; `open` puts it back

    def open(self, token: str, now: datetime) -> UnsubscribeTarget:
        if not 0 < len(token) <= MAX_TOKEN_CHARS or not token.isascii():
            raise ForgedToken
        try:
            payload = json.loads(self._fernet.decrypt(token + "=" * (-len(token) % 4)))
            target = UnsubscribeTarget(
                subject_id=str(payload["s"]),
                purpose=str(payload["p"]),
                channel=Channel(payload["c"]) if payload["c"] is not None else None,
                expires_at=datetime.fromtimestamp(int(payload["e"]), UTC),
            )
        except (InvalidToken, ValueError, KeyError, TypeError) as exc:
            raise ForgedToken from exc
        if now >= target.expires_at:
            raise ExpiredToken
        return target
