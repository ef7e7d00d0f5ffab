"""Kafka clients: how every client connects and logs in (`client_options`, `faust_credentials`),
topic provisioning, the idempotent producer settings every writer uses, and reading every
partition of some topics from a chosen position without a consumer group.

Every function here takes `KafkaOptions`, the aiokafka keyword arguments `client_options` makes
from the settings (bootstrap servers, protocol, SASL login, TLS context), so no client connects
with anything but the configured security.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from samtykke.adapters.kafka_oauth import (
    OAuthTokenProvider,
    StaticToken,
    client_credentials_grant,
    local_issuer_folder,
    local_issuer_grant,
)
from samtykke.adapters.settings import Settings

LONG_RETENTION_MS = str(10 * 365 * 24 * 3600 * 1000)
DOCUMENTATION_RETENTION_MS = 2 * 365 * 24 * 3600 * 1000  # the default of `documentation_retention_ms`
# where an assigned consumer starts: each partition's oldest kept offset, its end, or given offsets
Start = Literal["beginning", "end"] | Mapping[TopicPartition, int]
_TOPIC_POLL_SECONDS = 0.2
# aiokafka keyword arguments of one connection: `bootstrap_servers` and the security settings
KafkaOptions = Mapping[str, Any]


class KafkaSecurityError(ValueError):
    """The Kafka security settings cannot work: a missing password or file; names the setting."""


def local_stack_credentials_path(settings: Settings) -> Path:
    """Where the local stack (`devstack.kafka`) keeps its SCRAM users' passwords."""
    return settings.state_dir / "kafka" / "credentials.json"


def local_stack_ca_path(settings: Settings) -> Path:
    """The local stack's CA certificate, the default `kafka_ca_file`."""
    return settings.state_dir / "kafka" / "tls" / "ca.pem"


def kafka_password(settings: Settings) -> str:
    """The SASL password: `kafka_password`, else `kafka_password_file`, else the user's password in
    the local stack's credentials file. The one place that reads a Kafka password."""
    if settings.kafka_password is not None:
        return settings.kafka_password.get_secret_value()
    if settings.kafka_password_file is not None:
        try:
            return settings.kafka_password_file.read_text().strip()
        except OSError as error:
            raise KafkaSecurityError(f"SAMTYKKE_KAFKA_PASSWORD_FILE cannot be read ({error.strerror})") from error
    local = local_stack_credentials_path(settings)
    try:
        passwords = json.loads(local.read_text())
    except (OSError, ValueError) as error:
        raise KafkaSecurityError(
            f"{settings.kafka_security_protocol} needs a password: set SAMTYKKE_KAFKA_PASSWORD or "
            f"SAMTYKKE_KAFKA_PASSWORD_FILE (no readable local stack credentials in {local.name} under "
            "the state directory; `samtykke stack up` makes them)"
        ) from error
    password = passwords.get(settings.kafka_username) if isinstance(passwords, dict) else None
    if not isinstance(password, str):
        raise KafkaSecurityError(
            f"SAMTYKKE_KAFKA_USERNAME={settings.kafka_username!r} is not a user of the local stack; "
            "set SAMTYKKE_KAFKA_PASSWORD or SAMTYKKE_KAFKA_PASSWORD_FILE"
        )
    return password


def _existing(path: Path, setting: str) -> str:
    if not path.is_file():
        raise KafkaSecurityError(f"{setting}: no such file {path}")
    return str(path)


def local_stack_client_certificate(settings: Settings) -> tuple[Path, Path]:
    """The local stack's client certificate and key of `kafka_username` (`devstack.kafka_tls`)."""
    folder = settings.state_dir / "kafka" / "tls" / "clients"
    return folder / f"{settings.kafka_username}.pem", folder / f"{settings.kafka_username}.key"


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verifies the brokers against `kafka_ca_file` (default: the local stack's CA), by name too;
    presents `kafka_cert_file`/`kafka_key_file` for mutual TLS when set. Against the local stack
    (no CA file set), `SSL` presents the stack's certificate of `kafka_username` if it has one."""
    certificate: tuple[str, str] | None = None
    if settings.kafka_cert_file is not None and settings.kafka_key_file is not None:
        certificate = (
            _existing(settings.kafka_cert_file, "SAMTYKKE_KAFKA_CERT_FILE"),
            _existing(settings.kafka_key_file, "SAMTYKKE_KAFKA_KEY_FILE"),
        )
    if settings.kafka_ca_file is None:
        ca = _existing(local_stack_ca_path(settings), "SAMTYKKE_KAFKA_CA_FILE (default: the local stack's CA)")
        local = local_stack_client_certificate(settings)
        if certificate is None and settings.kafka_security_protocol == "SSL" and all(p.is_file() for p in local):
            certificate = (str(local[0]), str(local[1]))
    else:
        ca = _existing(settings.kafka_ca_file, "SAMTYKKE_KAFKA_CA_FILE")
    context = ssl.create_default_context(cafile=ca)
    if certificate is not None:
        try:
            context.load_cert_chain(*certificate)
        except ssl.SSLError as error:
            raise KafkaSecurityError(f"the Kafka client certificate {certificate[0]} or its key is unusable") from error
    return context


def kafka_oauth_client_secret(settings: Settings) -> str:
    """`kafka_oauth_client_secret`, else the content of `kafka_oauth_client_secret_file`."""
    if settings.kafka_oauth_client_secret is not None:
        return settings.kafka_oauth_client_secret.get_secret_value()
    path = settings.kafka_oauth_client_secret_file
    if path is None:
        raise KafkaSecurityError("SAMTYKKE_KAFKA_OAUTH_TOKEN_URL needs SAMTYKKE_KAFKA_OAUTH_CLIENT_SECRET(_FILE)")
    try:
        secret = path.read_text().strip()
    except OSError as error:
        reason = f"SAMTYKKE_KAFKA_OAUTH_CLIENT_SECRET_FILE cannot be read ({error.strerror})"
        raise KafkaSecurityError(reason) from error
    if not secret:
        raise KafkaSecurityError("SAMTYKKE_KAFKA_OAUTH_CLIENT_SECRET_FILE is empty")
    return secret


# one provider per identity and process: the relay, admin and dead-letter clients share its token
@lru_cache(maxsize=32)
def _shared_provider(kind: str, *identity: str) -> OAuthTokenProvider:
    if kind == "endpoint":
        url, client_id, secret, scope = identity
        return OAuthTokenProvider(client_credentials_grant(url, client_id, secret, scope or None))
    folder, principal = identity
    return OAuthTokenProvider(local_issuer_grant(Path(folder), principal))


def kafka_token_provider(settings: Settings) -> AbstractTokenProvider:
    """The OAUTHBEARER token source: the token endpoint (`kafka_oauth_token_url`), else a static
    token in the password settings, else tokens minted for `kafka_username` by the local stack's
    issuer. Raises `KafkaSecurityError` naming the settings when there is none."""
    url = settings.kafka_oauth_token_url
    if url is not None:
        if not settings.kafka_oauth_client_id:
            raise KafkaSecurityError("SAMTYKKE_KAFKA_OAUTH_TOKEN_URL needs SAMTYKKE_KAFKA_OAUTH_CLIENT_ID")
        secret = kafka_oauth_client_secret(settings)
        scope = settings.kafka_oauth_scope or ""
        return _shared_provider("endpoint", url, settings.kafka_oauth_client_id, secret, scope)
    if settings.kafka_password is not None or settings.kafka_password_file is not None:
        return StaticToken(kafka_password(settings))
    folder = local_issuer_folder(settings.state_dir)
    if not (folder / "jwks.json").is_file() or not any(folder.glob("key-*.pem")):
        raise KafkaSecurityError(
            "OAUTHBEARER needs SAMTYKKE_KAFKA_OAUTH_TOKEN_URL with SAMTYKKE_KAFKA_OAUTH_CLIENT_ID and "
            "SAMTYKKE_KAFKA_OAUTH_CLIENT_SECRET(_FILE), or a token in SAMTYKKE_KAFKA_PASSWORD(_FILE) (no local "
            "stack issuer under the state directory; `samtykke stack up` makes one)"
        )
    if not settings.kafka_username:
        raise KafkaSecurityError("OAUTHBEARER from the local issuer needs SAMTYKKE_KAFKA_USERNAME")
    return _shared_provider("local", str(folder.resolve()), settings.kafka_username)


def _sasl_login(settings: Settings) -> dict[str, Any]:
    protocol, mechanism = settings.kafka_security_protocol, settings.kafka_sasl_mechanism
    if mechanism == "OAUTHBEARER":
        return {"sasl_mechanism": mechanism, "sasl_oauth_token_provider": kafka_token_provider(settings)}
    if not settings.kafka_username:
        raise KafkaSecurityError(f"{protocol} needs SAMTYKKE_KAFKA_USERNAME")
    password = kafka_password(settings)
    if not password:
        raise KafkaSecurityError(f"{protocol} needs a non-empty SAMTYKKE_KAFKA_PASSWORD")
    return {
        "sasl_mechanism": mechanism,
        "sasl_plain_username": settings.kafka_username,
        "sasl_plain_password": password,
    }


def client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for a producer, consumer or admin client: the bootstrap servers
    and the configured security. Raises `KafkaSecurityError` naming the setting that is missing."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap, "security_protocol": protocol}
    if protocol.endswith("SSL"):
        options["ssl_context"] = kafka_ssl_context(settings)
    if protocol.startswith("SASL_"):
        options |= _sasl_login(settings)
    return options


def faust_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's `broker_credentials` for the same security as `client_options` (None: plaintext)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(kafka_ssl_context(settings))
    context = kafka_ssl_context(settings) if protocol == "SASL_SSL" else None
    login = _sasl_login(settings)
    if settings.kafka_sasl_mechanism == "OAUTHBEARER":
        return faust.OAuthCredentials(oauth_cb=login["sasl_oauth_token_provider"], ssl_context=context)
    return faust.SASLCredentials(
        username=login["sasl_plain_username"],
        password=login["sasl_plain_password"],
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )


class TopicsMissing(RuntimeError):
    """Topics to read do not exist (yet): their owner creates them, a reader never does."""

    def __init__(self, topics: Sequence[str]) -> None:
        super().__init__(f"no such topic: {', '.join(topics)}")
        self.topics = tuple(topics)


async def ensure_topics(
    kafka: KafkaOptions,
    changes: str,
    subjects: str,
    partitions: int,
    extra: list[str] | None = None,
    watermarks: str | None = None,
    compaction_lag_ms: int = DOCUMENTATION_RETENTION_MS,
) -> None:
    """Create the contract topics if missing: changes compacted per consent with every record kept
    at least `compaction_lag_ms` (the documentation retention), subjects compacted, and the relay's
    watermarks (one partition, compacted: only the latest watermark matters)."""
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(changes, partitions, 1, topic_configs=changes_topic_configs(compaction_lag_ms)),
            NewTopic(subjects, partitions, 1, topic_configs={"cleanup.policy": "compact"}),
        ]
        wanted += [NewTopic(name, 1, 1, topic_configs={"retention.ms": LONG_RETENTION_MS}) for name in extra or []]
        if watermarks is not None:
            wanted.append(NewTopic(watermarks, 1, 1, topic_configs={"cleanup.policy": "compact"}))
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            await create_topics(admin, missing)
    finally:
        await admin.close()


def changes_topic_configs(compaction_lag_ms: int) -> dict[str, str]:
    """`consent.changes`: the latest record of every consent stays (until its tombstone), every
    record at least `compaction_lag_ms`."""
    return {"cleanup.policy": "compact", "min.compaction.lag.ms": str(compaction_lag_ms)}


async def create_topics(admin: AIOKafkaAdminClient, topics: Sequence[NewTopic]) -> None:
    """Create `topics`; one that exists already (a replica made it at the same time) is fine. The
    broker answers per topic and aiokafka does not raise, so a refusal (no CREATE right on a secured
    broker, a config it rejects) is raised here as its `KafkaError`, never passed over in silence."""
    response = await admin.create_topics(list(topics))
    for topic, code, *_ in response.topic_errors:
        if code not in (0, TopicAlreadyExistsError.errno):
            raise for_code(code)(f"creating topic {topic}")


def idempotent_producer(kafka: KafkaOptions, **overrides: object) -> AIOKafkaProducer:
    """acks=all + idempotence: a retried send is written once, in order per partition."""
    options: dict[str, object] = {
        **kafka,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 15000,
        "compression_type": None,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def topic_partitions(
    kafka: KafkaOptions, topics: Sequence[str], wait_seconds: float | None = 0.0
) -> list[TopicPartition]:
    """Every partition of `topics`, in topic then partition order, as the cluster has them now.

    A missing topic is waited for up to `wait_seconds` (None: for as long as it takes), then
    `TopicsMissing`. Asked through the admin API for *all* topics: a metadata request naming a
    topic would create it on a broker that allows automatic creation, with the wrong settings.
    """
    deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        while True:
            found = {t["topic"]: _partition_numbers(t) for t in await admin.describe_topics()}
            missing = [topic for topic in topics if not found.get(topic)]
            if not missing:
                return [TopicPartition(topic, p) for topic in topics for p in found[topic]]
            if deadline is not None and time.monotonic() >= deadline:
                raise TopicsMissing(missing)
            await asyncio.sleep(_TOPIC_POLL_SECONDS)
    finally:
        await admin.close()


def _partition_numbers(described: Mapping[str, Any]) -> list[int]:
    if described.get("error_code"):
        return []
    return sorted(int(p["partition"]) for p in described.get("partitions", ()))


async def assign_all(
    consumer: AIOKafkaConsumer,
    kafka: KafkaOptions,
    topics: Sequence[str],
    start: Start,
    wait_seconds: float | None = 0.0,
) -> list[TopicPartition]:
    """Assign every partition of `topics` to a started, group-less consumer and position it at
    `start` (with offsets: a partition not named starts at the beginning); returns the partitions.
    `kafka` must be the consumer's own connection; `wait_seconds` is as for `topic_partitions`."""
    partitions = await topic_partitions(kafka, topics, wait_seconds)
    consumer.assign(partitions)
    if start == "beginning":
        await consumer.seek_to_beginning(*partitions)
    elif start == "end":
        await consumer.seek_to_end(*partitions)
    else:
        assert not isinstance(start, str), start
        rest = [tp for tp in partitions if tp not in start]
        if rest:
            await consumer.seek_to_beginning(*rest)
        for tp in partitions:
            if tp in start:
                consumer.seek(tp, start[tp])
    return partitions


async def present_partitions(kafka: KafkaOptions, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition the cluster has now of those of `topics` that exist (no waiting, no error for
    a missing one): what a reader polls every few seconds to find partitions added at run time."""
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        found = {t["topic"]: _partition_numbers(t) for t in await admin.describe_topics()}
    finally:
        await admin.close()
    return [TopicPartition(topic, p) for topic in topics for p in found.get(topic, ())]


async def extend_assignment(
    consumer: AIOKafkaConsumer, added: Sequence[TopicPartition], start: Mapping[TopicPartition, int] | None = None
) -> None:
    """Add partitions to a group-less consumer's assignment; each starts at `start`'s offset or at
    its beginning. `assign()` replaces the assignment and forgets positions, so the partitions
    already read are put back where they were (call between polls, with every record applied)."""
    current = {tp: await consumer.position(tp) for tp in consumer.assignment()}
    consumer.assign([*current, *(tp for tp in added if tp not in current)])
    for tp, position in current.items():
        consumer.seek(tp, position)
    given = start or {}
    rest = [tp for tp in added if tp not in current and tp not in given]
    if rest:
        await consumer.seek_to_beginning(*rest)
    for tp in added:
        if tp in given and tp not in current:
            consumer.seek(tp, given[tp])


async def ensure_topic(kafka: KafkaOptions, name: str, partitions: int, configs: Mapping[str, str]) -> None:
    """Create one topic its owner writes, if missing (a replica creating it at the same time is fine)."""
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        if name not in set(await admin.list_topics()):
            await create_topics(admin, [NewTopic(name, partitions, 1, topic_configs=dict(configs))])
    finally:
        await admin.close()
