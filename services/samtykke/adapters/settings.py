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

from samtykke.domain.holdings import DEFAULT_QUARANTINE_DAYS

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

# No scope implies another (there is no catch-all `admin`): a credential has what it lists.
SCOPES: dict[str, str] = {
    "consent:read": "read subjects (without clear identifiers), consents and history",
    "consent:write": "register subjects, record decisions and usage",
    "consent:import": "record decisions back-dated beyond `backdate_window_days` (migrations, paper archives); "
    "run bulk import jobs (`/v1/imports`)",
    "consent:admin": "operate the consent service: outbox, dead letters, sweeps",
    "identifiers:read": "see clear identifiers (a subject's own access export, a duplicate's subject id)",
    "subjects:erase": "erase a subject's identifiers (the suppression stays)",
    "evidence:read": "open the evidence and actor references of one change (they stay in the ledger)",
    "suppression:check": "ask the gate for decisions",
    "suppression:export": "read the suppression list and its change feed",
    "suppression:audit": "ask the gate about an instant in the past (`at`), for audits",
    "registers:import": "import national do-not-contact registers",
    "selfservice:mint": "mint short-lived links to a subject's self-service page (the operator's portal)",
}
RETIRED_SCOPES = {"admin": "the catch-all `admin` scope is gone; list the scopes the credential needs"}

# Development credentials: usable only against the local stack (the services refuse them on a public
# address or in production, see adapters/safety.py). Deployments set SAMTYKKE_API_KEYS to their own.
DEV_API_KEYS: dict[str, list[str]] = {
    "dev-admin": [
        "consent:read",
        "consent:write",
        "consent:import",
        "consent:admin",
        "identifiers:read",
        "subjects:erase",
        "selfservice:mint",
        "evidence:read",
    ],
    "dev-writer": ["consent:write", "consent:read"],
    "dev-reader": ["consent:read"],
    "dev-marketing": ["suppression:check", "suppression:export"],
    "dev-auditor": ["suppression:check", "suppression:audit", "consent:read"],
    "dev-registers": ["registers:import", "suppression:check"],
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
        "`OAUTHBEARER` (tokens from `kafka_oauth_token_url`, a static token in the password, or the local "
        "stack's issuer).",
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

    topic_changes: str = Field(
        default="consent.changes.v2",
        description="Compacted topic of `ConsentChanged` events, keyed by the consent and partitioned by subject "
        "(`consent.changes` before it was keyed by the consent; `samtykke consent migrate-topic` fills a new one).",
    )
    documentation_retention_ms: int = Field(
        default=2 * 365 * 24 * 3600 * 1000,
        ge=0,
        description="`min.compaction.lag.ms` of the changes topic when a service creates it: every change stays on "
        "the topic at least this long (the documentation retention, 2 years), the latest of each consent while valid.",
    )
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
    identifier_encryption_retired_keys: list[str] = Field(
        default_factory=list,
        description="Earlier Fernet keys, as a JSON list: they still decrypt, never encrypt. After a rotation, "
        "`samtykke consent rekey` re-encrypts everything under the current key; then they can go.",
    )

    environment: Literal["development", "production"] = Field(
        default="development",
        description="`production` refuses every development secret at start-up, whatever the bind address.",
    )
    allow_development_secrets: bool = Field(
        default=False,
        description="Let a development secret through on a non-loopback bind (a container whose port is "
        "published on the host's loopback only, as in docker-compose.yml). Never in `production`.",
    )
    api_keys: dict[str, list[str]] = Field(
        default_factory=lambda: dict(DEV_API_KEYS),
        description='API keys and their scopes, as JSON `{"<key>": ["<scope>", ...]}`; a key may be given as '
        "`sha256:<hex digest>` so the clear key is kept nowhere on the server.",
    )
    oauth_jwks_url: str | None = Field(
        default=None,
        description="JWKS of the OAuth2 issuer whose access tokens (client credentials) are accepted "
        "(`https://…` or `file://…`); unset: API keys only.",
    )
    oauth_issuer: str = Field(default="https://issuer.samtykke.invalid", description="Required `iss` of tokens.")
    oauth_audience: str = Field(default="samtykke", description="Required `aud` of tokens.")
    oauth_scope_map: dict[str, list[str]] = Field(
        default_factory=dict,
        description='The issuer\'s scope names mapped to ours, as JSON `{"crm.write": ["consent:write"]}`; '
        "a scope not listed is taken as named.",
    )
    oauth_jwks_cache_seconds: float = Field(
        default=300.0, gt=0, description="How long fetched signing keys are trusted before a refetch."
    )
    oauth_ca_file: Path | None = Field(default=None, description="PEM bundle of the CA of an `https://` JWKS URL.")
    consent_rate_limit_per_minute: int = Field(
        default=60_000, ge=1, description="Requests per credential per minute on the consent API."
    )
    backdate_window_days: int = Field(
        default=30,
        ge=0,
        description="A decision dated further back than this needs the `consent:import` scope.",
    )
    audit_skew_seconds: float = Field(
        default=60.0,
        ge=0,
        description="A check's `at` further in the past than this needs the `suppression:audit` scope.",
    )

    http_host: str = Field(default="127.0.0.1", description="Address the HTTP services listen on.")
    consent_port: int = Field(default=18000, description="Port of the consent API.")

    # --- unsubscribe links and SMS keywords ---
    public_base_url: str = Field(
        default="http://127.0.0.1:18000",
        pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$",
        description="Where the public reaches the consent service's `/u/{token}` pages: the base of every "
        "unsubscribe link (RFC 8058 wants `https://` in a real mail).",
    )
    unsubscribe_token_key: str = Field(
        default="dev-only-unsubscribe-token-key-change-me",
        min_length=32,
        description="Secret the unsubscribe links' encryption and MAC key is derived from (HKDF); whoever "
        "holds it can mint links for any subject.",
    )
    unsubscribe_token_retired_keys: list[str] = Field(
        default_factory=list,
        description="Earlier `unsubscribe_token_key`s, as a JSON list: links minted under them still work "
        "until they expire. Drop one after `unsubscribe_link_days`.",
    )
    unsubscribe_link_days: int = Field(
        default=90,
        ge=1,
        le=730,
        description="How long an unsubscribe link works (marketing mails are read late); then it answers 410.",
    )
    sms_webhook_secret: str = Field(
        default="dev-only-sms-webhook-secret-change-me",
        min_length=16,
        description="Shared secret of the SMS gateway: the HMAC-SHA256 key of `X-Samtykke-Signature`.",
    )
    sms_webhook_max_age_seconds: int = Field(
        default=300,
        ge=1,
        le=3600,
        description="An inbound SMS whose `X-Samtykke-Timestamp` is further from now than this is refused (a replay).",
    )
    sms_restart_days: int = Field(
        default=30,
        ge=0,
        description="START re-grants a consent only if the subject's last change to it was a STOP by text "
        "at most this many days ago (0: START never re-grants).",
    )
    sms_notice_version: str = Field(
        default="sms-keywords-1",
        min_length=1,
        max_length=200,
        description="Notice version recorded with a START re-grant: the keyword texts the subject was sent.",
    )

    # --- self-service pages: links from the operator's portal, session cookies, CSRF tokens ---
    selfservice_key: str = Field(
        default="dev-only-selfservice-key-change-me-0123456789",
        min_length=32,
        description="Secret the self-service links', session cookies' and CSRF tokens' keys are derived from "
        "(HKDF); whoever holds it can open any subject's page.",
    )
    selfservice_link_minutes: int = Field(
        default=10,
        ge=1,
        le=60,
        description="How long a self-service link from the portal can be opened; then it answers 410.",
    )
    selfservice_session_minutes: int = Field(
        default=20,
        ge=1,
        le=240,
        description="How long the session a self-service link starts lasts; then the portal must mint a new link.",
    )

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    consent_relay: bool = Field(
        default=True,
        description="Run the outbox relay inside the consent service. Off where the relay runs as its own "
        "process (`samtykke consent relay`), so the API's load never delays publication.",
    )
    relay_port: int = Field(
        default=18300, description="Port of the stand-alone relay's `/metrics`, `/healthz` and `/ready`."
    )
    relay_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Outbox rows per relay round while the relay keeps up."
    )
    relay_backlog_batch_size: int = Field(
        default=10_000,
        ge=1,
        le=100_000,
        description="Outbox rows per relay round at most during a backlog (after a bulk import or an outage): "
        "each round that leaves rows behind doubles the round from `relay_batch_size` up to this.",
    )
    relay_idle_poll_seconds: float = Field(
        default=2.0, gt=0, description="Safety-net poll of the outbox when no NOTIFY arrives."
    )
    sweeper_interval_seconds: float = Field(default=60.0, gt=0, description="Interval of the lifecycle sweeper.")

    # --- projections (marketing, analytics, customer service) ---
    projection_role_password: str = Field(
        default="dev-only-projector-password",
        description="Password of the projectors' per-domain login roles (each may write only its own schema); "
        "a projector uses it for its own role unless `projection_role_passwords` names one for its domain.",
    )
    projection_role_passwords: dict[str, str] = Field(
        default_factory=dict,
        description='Each domain\'s own role password, as JSON `{"marketing": "…", "analytics": "…", '
        '"customer_service": "…"}`: provisioning sets them all, a projector needs only its own.',
    )
    analytics_pseudonym_key: str = Field(
        default="dev-only-analytics-pseudonym-key",
        min_length=16,
        description="HMAC key of the analytics pseudonyms of subject and account ids (only the analytics "
        "projector holds it).",
    )
    # the fetch and PostgreSQL's per-statement costs are paid per batch: 2,000 applied twice the events/s
    # of 500 (`python -m benchmarks projections`); a batch is what one fetch returns, up to this many,
    # waiting at most `projection_batch_seconds`, so a quiet stream is not delayed by it
    projection_batch_size: int = Field(
        default=2000, ge=1, le=10_000, description="Events per projector batch (or the batch time, whichever first)."
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
    identifier_quarantine_days: float = Field(
        default=DEFAULT_QUARANTINE_DAYS,
        ge=0,
        description="After a subject stops holding a phone or e-mail (erased, released, ported out), a check by "
        "it stays blocked this long (`erased` / `released`) before a later holder's own consent governs; "
        "90 days is the usual wait before an operator recycles a number.",
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
            retired = [RETIRED_SCOPES[s] for s in scopes if s in RETIRED_SCOPES]
            if retired:
                raise ValueError(f"api key {key[:4]}…: {retired[0]}")
            unknown = set(scopes) - set(SCOPES)
            if unknown:
                raise ValueError(f"api key {key[:4]}…: unknown scopes {sorted(unknown)}")
        return value

    @field_validator("oauth_scope_map")
    @classmethod
    def _mapped_to_known_scopes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for theirs, ours in value.items():
            unknown = set(ours) - set(SCOPES)
            if unknown:
                raise ValueError(f"oauth_scope_map[{theirs!r}]: unknown scopes {sorted(unknown)}")
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
