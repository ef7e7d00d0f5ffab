"""Typed settings from `SAMTYKKE_*` environment variables, validated at start-up.

This is the only module that reads the environment. Defaults match the local
stack started by `samtykke stack up`; docker-compose and Kubernetes set them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# the Avro schemas ship inside the package, so an installed copy needs no checkout
PACKAGED_SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "avro"


def checkout_root(start: Path | None = None) -> Path | None:
    """The samtykke checkout holding `start` (default: the working directory), if any."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "services" / "samtykke").is_dir():
            return folder
    return None


def default_state_dir() -> Path:
    """`.state/` of the checkout we run in, so a sub-folder shares it; else of the working directory."""
    return (checkout_root() or Path.cwd().resolve()) / ".state"


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER"]

SCOPES = frozenset({"consent:write", "consent:read", "suppression:check", "suppression:export", "admin"})

# Development credentials: usable only against the local stack. Deployments set
# SAMTYKKE_API_KEYS to their own secrets.
DEV_API_KEYS: dict[str, list[str]] = {
    "dev-admin": ["admin", "consent:write", "consent:read"],
    "dev-writer": ["consent:write", "consent:read"],
    "dev-reader": ["consent:read"],
    "dev-marketing": ["suppression:check", "suppression:export"],
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAMTYKKE_", extra="ignore")

    state_dir: Path = Field(
        default_factory=default_state_dir,
        description="Where the local stack keeps downloads, data, logs and pidfiles (ignored by git).",
    )
    schema_dir: Path = Field(
        default=PACKAGED_SCHEMAS,
        description="The `.avsc` sources (packaged with samtykke; `schemas/avro` in a checkout points at them).",
    )

    kafka_bootstrap: str = Field(default="127.0.0.1:19092", description="Kafka bootstrap servers.")
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        default="SASL_SSL",
        description="How every Kafka client connects: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL` "
        "(the local stack's client listener).",
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        default="SCRAM-SHA-512",
        description="SASL mechanism of a `SASL_*` protocol: `SCRAM-SHA-512`, `SCRAM-SHA-256`, `PLAIN` or "
        "`OAUTHBEARER` (the password is then the bearer token).",
    )
    kafka_username: str = Field(
        default="tools",
        description="SASL user (principal) of this process; the local stack has one per service "
        "(`consent`, `projector-<domain>`, `suppression`) and `tools` for the CLI and the tests.",
    )
    kafka_password: SecretStr | None = Field(
        default=None,
        description="SASL password (OAUTHBEARER: the token). Unset with `kafka_password_file` unset too: the "
        "user's password in the local stack's `<state_dir>/kafka/credentials.json`.",
    )
    kafka_password_file: Path | None = Field(
        default=None,
        description="A file holding the SASL password (a mounted secret); used when `kafka_password` is unset.",
    )
    kafka_ca_file: Path | None = Field(
        default=None,
        description="PEM bundle of the CA that signed the brokers' certificates (`SSL`, `SASL_SSL`); unset: "
        "the local stack's `<state_dir>/kafka/tls/ca.pem`.",
    )
    kafka_cert_file: Path | None = Field(
        default=None, description="PEM client certificate for mutual TLS (with `kafka_key_file`)."
    )
    kafka_key_file: Path | None = Field(default=None, description="PEM private key of `kafka_cert_file` (mutual TLS).")
    registry_url: str = Field(
        default="http://127.0.0.1:18081/apis/ccompat/v7",
        description="Schema registry speaking the Confluent REST API.",
    )
    registry_username: str | None = Field(
        default=None, description="Basic-auth user of the schema registry (with `registry_password`)."
    )
    registry_password: SecretStr | None = Field(default=None, description="Basic-auth password of the registry.")
    registry_token: SecretStr | None = Field(
        default=None, description="Bearer token for the schema registry (instead of basic auth)."
    )
    registry_ca_file: Path | None = Field(
        default=None, description="PEM bundle of the CA that signed an `https://` registry's certificate."
    )
    database_url: str = Field(
        default="postgresql://samtykke:samtykke@127.0.0.1:15432/samtykke",
        description="The consent service's database; its owner login also provisions the projectors' roles.",
    )

    topic_changes: str = Field(default="consent.changes", description="Topic of `ConsentChanged` events.")
    topic_subjects: str = Field(default="consent.subjects", description="Compacted topic of `SubjectChanged` events.")
    topic_partitions: int = Field(default=6, ge=1, description="Partitions when a service creates the topics.")
    topic_watermarks: str = Field(
        default="consent.watermarks",
        description="Compacted topic of `Watermark` records: every change committed before `through` is on the "
        "contract topics below the listed offsets (end-to-end freshness of every reader).",
    )
    kafka_metadata_refresh_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often readers look for partitions added to the topics at run time.",
    )

    identifier_hash_key: str = Field(
        default="dev-only-identifier-key",
        min_length=16,
        description="HMAC key of the normalised identifiers' keyed hashes (matching without storing them in "
        "clear); the consent and suppression services must share it.",
    )
    identifier_encryption_key: str = Field(
        default="ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM=",
        description="Fernet key (32 url-safe base64 bytes) for identifiers kept for the subject's own access.",
    )

    api_keys: dict[str, list[str]] = Field(
        default_factory=lambda: dict(DEV_API_KEYS),
        description='API keys and their scopes, as JSON `{"<key>": ["<scope>", ...]}`.',
    )

    http_host: str = Field(default="127.0.0.1", description="Address the HTTP services listen on.")
    consent_port: int = Field(default=18000, description="Port of the consent API.")

    relay_batch_size: int = Field(default=500, ge=1, le=10_000, description="Outbox rows per Kafka batch.")
    relay_idle_poll_seconds: float = Field(
        default=2.0, gt=0, description="Safety-net poll of the outbox when no NOTIFY arrives."
    )
    sweeper_interval_seconds: float = Field(default=60.0, gt=0, description="Interval of the lifecycle sweeper.")

    # --- projections (marketing, analytics, customer service) ---
    projection_role_password: str = Field(
        default="dev-only-projector-password",
        description="Password of the projectors' per-domain login roles (each may write only its own schema).",
    )
    analytics_pseudonym_key: str = Field(
        default="dev-only-analytics-pseudonym-key",
        min_length=16,
        description="HMAC key of the analytics pseudonyms of subject and account ids (only the analytics "
        "projector holds it).",
    )
    projection_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Events per projector batch (or the batch time, whichever first)."
    )
    projection_batch_seconds: float = Field(
        default=0.05, gt=0, description="Longest wait for a projector batch to fill."
    )
    # a rebuild reads a backlog, never waits for events: bigger batches, fewer round trips
    projection_rebuild_batch_size: int = Field(
        default=5000,
        ge=1,
        le=50_000,
        description="Events per transaction in `samtykke projections rebuild`.",
    )
    projection_web_port_base: int = Field(
        default=18100,
        description="Each projector serves `/metrics`, `/healthz` and `/ready` on this port + 1 (marketing), "
        "+ 2 (analytics), + 3 (customer service).",
    )
    # a second platform on the same Kafka (a test, a staging copy) sets its own prefix
    projection_group_prefix: str = Field(
        default="samtykke",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Consumer groups are `<prefix>.<domain>`, dead-letter topics `<prefix>.<domain>.dlq`.",
    )

    # --- suppression service ---
    suppression_port: int = Field(default=18200, description="Port of the suppression API.")
    suppression_max_lag_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Fail closed: past this index age every decision is blocked with reason `stale`.",
    )
    suppression_stale_response: Literal["block", "503"] = Field(
        default="block",
        description="A stale index answers with a blocked decision (`block`, reason `stale`) or HTTP 503 (`503`).",
    )
    register_freshness_days: dict[str, int] = Field(
        default_factory=lambda: {"NIX": 60, "ROBINSON": 92, "RESERVASJON": 31},
        description="Days a national register file stays fresh after its publication date, per register.",
    )
    topic_registers: str = Field(
        default="consent.registers",
        description="Compacted topic of the national registers' current snapshots (`RegisterSnapshot` records, "
        "keyed phone hashes only), written by the replica that takes an import and applied by every replica.",
    )
    register_max_drop_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="A register import that would drop more than this share of the numbers listed now is "
        "refused unless forced (`force=true`).",
    )
    suppression_rate_limit_per_minute: int = Field(
        default=60_000, ge=1, description="Requests per credential per minute (a bulk request costs one)."
    )
    suppression_dlq_topic: str = Field(
        default="samtykke.suppression.dlq",
        description="Where messages the suppression feed cannot decode go, with the reason in headers.",
    )

    # --- Kafka OAuth2 ---
    kafka_oauth_token_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="`OAUTHBEARER`: the identity provider's token endpoint; every Kafka client gets its tokens "
        "there with the client-credentials grant (HTTP Basic client authentication), cached and fetched again "
        "before they expire. Unset: the token is `kafka_password`/`kafka_password_file` if set, else the local "
        "stack mints one for `kafka_username` with its issuer's key in `<state_dir>/issuer` (local stack only).",
    )
    kafka_oauth_client_id: str | None = Field(
        default=None,
        description="OAuth2 client id of this process (with `kafka_oauth_token_url`); the broker takes the "
        "token's `sub` claim as the principal, so the ACLs of that name apply.",
    )
    kafka_oauth_client_secret: SecretStr | None = Field(
        default=None, description="OAuth2 client secret (or `kafka_oauth_client_secret_file`)."
    )
    kafka_oauth_client_secret_file: Path | None = Field(
        default=None, description="A file holding the OAuth2 client secret (a mounted secret)."
    )
    kafka_oauth_scope: str | None = Field(
        default=None, description="Space-separated scopes asked for in the token request (unset: the client's own)."
    )

    @field_validator("api_keys")
    @classmethod
    def _known_scopes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for key, scopes in value.items():
            unknown = set(scopes) - SCOPES
            if unknown:
                raise ValueError(f"api key {key[:4]}…: unknown scopes {sorted(unknown)}")
        return value

    @model_validator(mode="after")
    def _consistent_security(self) -> Settings:
        if (self.kafka_cert_file is None) != (self.kafka_key_file is None):
            raise ValueError("kafka_cert_file and kafka_key_file go together (mutual TLS)")
        if self.kafka_cert_file is not None and not self.kafka_security_protocol.endswith("SSL"):
            raise ValueError(f"kafka_cert_file needs an SSL protocol, not {self.kafka_security_protocol}")
        self._consistent_kafka_oauth()
        if (self.registry_username is None) != (self.registry_password is None):
            raise ValueError("registry_username and registry_password go together (basic auth)")
        if self.registry_username is not None and self.registry_token is not None:
            raise ValueError("give registry_username/registry_password or registry_token, not both")
        return self

    def _consistent_kafka_oauth(self) -> None:
        """OAUTHBEARER takes its token from a token endpoint (id + one secret), from the password
        settings, or, with neither, from the local stack's issuer; the OAuth2 settings need OAUTHBEARER."""
        given = [s for s in (self.kafka_oauth_client_secret, self.kafka_oauth_client_secret_file) if s is not None]
        if self.kafka_oauth_token_url is None:
            if self.kafka_oauth_client_id is not None or given:
                raise ValueError("kafka_oauth_client_id and its secret need kafka_oauth_token_url")
            return
        if self.kafka_sasl_mechanism != "OAUTHBEARER" or not self.kafka_security_protocol.startswith("SASL_"):
            raise ValueError("kafka_oauth_token_url needs kafka_sasl_mechanism=OAUTHBEARER and a SASL_ protocol")
        if not self.kafka_oauth_client_id:
            raise ValueError("kafka_oauth_token_url needs kafka_oauth_client_id")
        if len(given) != 1:
            raise ValueError("kafka_oauth_token_url needs kafka_oauth_client_secret or kafka_oauth_client_secret_file")
        if self.kafka_password is not None or self.kafka_password_file is not None:
            raise ValueError("give kafka_oauth_token_url or a static token in kafka_password(_file), not both")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
