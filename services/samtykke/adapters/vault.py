"""Encryption of identifiers kept for the subject's own access (Fernet: AES-128-CBC + HMAC), with key rotation.

The first key encrypts; it and every retired key decrypt (`MultiFernet`), so a new key can be put in
front at once and the stored values re-encrypted afterwards (`samtykke consent rekey`), after which the
retired keys can go.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derived_fernet(secret: str, label: bytes) -> Fernet:
    """A Fernet key derived from a configured secret with HKDF-SHA256; `label` keeps the keys of different
    uses (and payload layouts) apart, so one secret never opens another use's tokens."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


class IdentifierVault:
    def __init__(self, key: str, retired: Sequence[str] = ()) -> None:
        self._fernet = MultiFernet([Fernet(k.encode()) for k in (key, *retired)])

    def seal(self, value: str | None) -> bytes | None:
        return None if value is None else self._fernet.encrypt(value.encode())

    def open(self, token: bytes | None) -> str | None:
        if token is None:
            return None
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:  # a rotated key without re-encryption is an operator bug
            raise RuntimeError("identifier cannot be decrypted with the configured keys") from exc

    def reseal(self, token: bytes | None) -> bytes | None:
        """The same value under the current key (raises like `open` when no configured key fits)."""
        if token is None:
            return None
        try:
            return self._fernet.rotate(token)
        except InvalidToken as exc:
            raise RuntimeError("identifier cannot be decrypted with the configured keys") from exc
