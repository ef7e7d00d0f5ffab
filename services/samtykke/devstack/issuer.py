"""The local OAuth2 issuer: the signing key, its JWKS and client-credentials tokens for the tests and demo.

An operator's identity provider plays this part in production; the services only need its JWKS
URL (`SAMTYKKE_OAUTH_JWKS_URL`), issuer and audience. Locally, the key pair lives in
`<state_dir>/issuer/` (made at first use, mode 0600), the JWKS is written beside it as a file so that
both the HTTP services (`file://` URL) and the broker's OAUTHBEARER validator can read it without a
server, and `issuer_app` serves the standard endpoints (`/token`, `/.well-known/jwks.json`) for a
client that wants to fetch a token the way it would from a real provider.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# at module level: FastAPI resolves the endpoints' (postponed) annotations in this module's globals,
# and would take a `Request` it cannot resolve for a query parameter (every call a 422)
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

LOCAL_ISSUER = "https://issuer.samtykke.invalid"
DEFAULT_TTL_SECONDS = 600


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.touch(mode=0o600)
    tmp.write_bytes(data)
    tmp.replace(path)


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class IssuerClient:
    """A registered client: its secret is kept as a SHA-256 digest, its scopes are what tokens may carry."""

    client_id: str
    secret_sha256: str
    scopes: tuple[str, ...]

    def accepts(self, secret: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(secret.encode()).hexdigest(), self.secret_sha256)


class LocalIssuer:
    """Signs RS256 tokens with one key kept in `folder`; `rotate()` adds a new key and keeps the old one
    in the JWKS, so tokens already handed out stay valid until they expire."""

    def __init__(self, folder: Path, issuer: str = LOCAL_ISSUER) -> None:
        self.folder = folder
        self.issuer = issuer
        self._keys = self._load_or_create()

    @property
    def jwks_path(self) -> Path:
        return self.folder / "jwks.json"

    @property
    def jwks_url(self) -> str:
        return self.jwks_path.resolve().as_uri()

    @property
    def kid(self) -> str:
        return self._keys[-1][0]

    def _load_or_create(self) -> list[tuple[str, rsa.RSAPrivateKey]]:
        keys: list[tuple[str, rsa.RSAPrivateKey]] = []
        for pem in sorted(self.folder.glob("key-*.pem")):
            key = serialization.load_pem_private_key(pem.read_bytes(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            keys.append((pem.stem.removeprefix("key-").split("_", 1)[1], key))
        if not keys:
            keys.append(self._new_key())
        self._write_jwks(keys)
        return keys

    def _new_key(self) -> tuple[str, rsa.RSAPrivateKey]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = uuid.uuid4().hex[:16]
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # the file name sorts by creation, so the newest key signs
        _write_private(self.folder / f"key-{time.time_ns():020d}_{kid}.pem", pem)
        return kid, key

    def _write_jwks(self, keys: list[tuple[str, rsa.RSAPrivateKey]]) -> None:
        self.jwks_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.jwks_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.jwks(keys), indent=2))
        tmp.replace(self.jwks_path)

    def jwks(self, keys: list[tuple[str, rsa.RSAPrivateKey]] | None = None) -> dict[str, Any]:
        entries = []
        for kid, key in keys if keys is not None else self._keys:
            public = key.public_key().public_numbers()
            entries.append(
                {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": _b64(public.n), "e": _b64(public.e)}
            )
        return {"keys": entries}

    def rotate(self) -> str:
        self._keys.append(self._new_key())
        self._write_jwks(self._keys)
        return self.kid

    def token(
        self,
        client_id: str,
        scopes: list[str] | tuple[str, ...],
        audience: str | list[str],
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client_id,
            "client_id": client_id,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
            "scope": " ".join(scopes),
        }
        payload |= claims
        kid, key = self._keys[-1]
        return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})

    # --- registered clients (client-credentials grant) ---

    @property
    def clients_path(self) -> Path:
        return self.folder / "clients.json"

    def clients(self) -> dict[str, IssuerClient]:
        if not self.clients_path.exists():
            return {}
        raw = json.loads(self.clients_path.read_text())
        return {k: IssuerClient(k, v["secret_sha256"], tuple(v["scopes"])) for k, v in raw.items()}

    def register(self, client_id: str, scopes: list[str] | tuple[str, ...]) -> str:
        """Adds (or replaces) a client and returns its new secret; only the digest is kept."""
        secret = secrets.token_urlsafe(32)
        raw = {
            c.client_id: {"secret_sha256": c.secret_sha256, "scopes": list(c.scopes)} for c in self.clients().values()
        }
        raw[client_id] = {"secret_sha256": hashlib.sha256(secret.encode()).hexdigest(), "scopes": list(scopes)}
        _write_private(self.clients_path, json.dumps(raw, indent=2).encode())
        return secret

    def grant(self, client_id: str, secret: str, audience: str, scope: str | None = None) -> str | None:
        """The client-credentials grant: a token for a known client with the right secret, else None.
        `scope` narrows the token to some of the client's scopes (never widens it)."""
        client = self.clients().get(client_id)
        if client is None or not client.accepts(secret):
            return None
        wanted = tuple(scope.split()) if scope else client.scopes
        return self.token(client_id, [s for s in wanted if s in client.scopes], audience)


def issuer_app(issuer: LocalIssuer, audience: str) -> Any:
    """The standard endpoints over HTTP (client secret in the form or HTTP Basic, RFC 6749 §2.3.1)."""
    app = FastAPI(title="samtykke local OAuth2 issuer", docs_url=None, redoc_url=None)

    @app.get("/.well-known/jwks.json")
    async def jwks() -> dict[str, Any]:
        return issuer.jwks()

    @app.post("/token")
    async def token(request: Request) -> JSONResponse:
        form = await request.form()
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        scope = form.get("scope")
        granted = issuer.grant(client_id, secret, audience, str(scope) if scope else None)
        if granted is None:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        return JSONResponse({"access_token": granted, "token_type": "Bearer", "expires_in": DEFAULT_TTL_SECONDS})

    return app
