"""Typed settings from `SAMTYKKE_*` environment variables, validated at start-up.

This is the only module that reads the environment. Defaults match the local
stack started by `samtykke stack up`; docker-compose and Kubernetes set them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
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

    # where the local stack keeps downloads, data and logs (ignored by git)
    state_dir: Path = Field(default_factory=default_state_dir)
    # the .avsc sources (packaged with samtykke; schemas/avro in a checkout points at them)
    schema_dir: Path = PACKAGED_SCHEMAS

    kafka_bootstrap: str = "127.0.0.1:19092"
    registry_url: str = "http://127.0.0.1:18081/apis/ccompat/v7"
    database_url: str = "postgresql://samtykke:samtykke@127.0.0.1:15432/samtykke"

    topic_changes: str = "consent.changes"
    topic_subjects: str = "consent.subjects"
    topic_partitions: int = Field(default=6, ge=1)

    # keyed hash of normalised identifiers (matching without storing them in clear)
    identifier_hash_key: str = Field(default="dev-only-identifier-key", min_length=16)
    # Fernet key (32 url-safe base64 bytes) for identifiers kept for the subject's own access
    identifier_encryption_key: str = "ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM="

    api_keys: dict[str, list[str]] = Field(default_factory=lambda: dict(DEV_API_KEYS))

    http_host: str = "127.0.0.1"
    consent_port: int = 18000

    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_idle_poll_seconds: float = Field(default=2.0, gt=0)
    sweeper_interval_seconds: float = Field(default=60.0, gt=0)

    # --- projections (marketing, analytics, customer service) ---
    # each projector logs in with its own role, which may write only its own schema
    projection_role_password: str = "dev-only-projector-password"
    # keyed hash of subject ids for the analytics domain (only the analytics projector holds it)
    analytics_pseudonym_key: str = Field(default="dev-only-analytics-pseudonym-key", min_length=16)
    projection_batch_size: int = Field(default=500, ge=1, le=10_000)
    projection_batch_seconds: float = Field(default=0.05, gt=0)
    # a rebuild reads a backlog, never waits for events: bigger batches, fewer round trips
    projection_rebuild_batch_size: int = Field(default=5000, ge=1, le=50_000)
    # each projector serves /metrics, /healthz, /ready on web_port_base + its index (1, 2, 3)
    projection_web_port_base: int = 18100
    # consumer groups are `<prefix>.<domain>`, dead letters `<prefix>.<domain>.dlq`; a second
    # platform on the same Kafka (a test, a staging copy) sets its own prefix
    projection_group_prefix: str = Field(default="samtykke", pattern=r"^[A-Za-z0-9._-]+$")

    # --- suppression service ---
    suppression_port: int = 18200
    # fail closed: when the index is older than this, decisions are blocked with reason `stale`
    suppression_max_lag_seconds: float = Field(default=5.0, gt=0)
    suppression_stale_response: Literal["block", "503"] = "block"
    # days a national register file stays fresh after its publication date
    register_freshness_days: dict[str, int] = Field(
        default_factory=lambda: {"NIX": 60, "ROBINSON": 92, "RESERVASJON": 31}
    )
    suppression_rate_limit_per_minute: int = Field(default=60_000, ge=1)
    # messages the suppression feed cannot decode go here, with the reason in headers
    suppression_dlq_topic: str = "samtykke.suppression.dlq"

    @field_validator("api_keys")
    @classmethod
    def _known_scopes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for key, scopes in value.items():
            unknown = set(scopes) - SCOPES
            if unknown:
                raise ValueError(f"api key {key[:4]}…: unknown scopes {sorted(unknown)}")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
