"""Encryption of identifiers kept for the subject's own access (Fernet: AES-128-CBC + HMAC)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken


class IdentifierVault:
    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def seal(self, value: str | None) -> bytes | None:
        return None if value is None else self._fernet.encrypt(value.encode())

    def open(self, token: bytes | None) -> str | None:
        if token is None:
            return None
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:  # a rotated key without re-encryption is an operator bug
            raise RuntimeError("identifier cannot be decrypted with the configured key") from exc
