"""The secured local broker's other two doors: OAUTHBEARER tokens of the local issuer on the SASL_SSL
listener, and client certificates of the local CA on the mutual-TLS listener. Either way the
principal is the same name as the SCRAM user's, so the same ACLs apply.

Runs against a broker of this module's own (temporary state folder, free ports), as
test_kafka_security does; the issuer's /token endpoint runs in a thread on a free port.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAuthorizationFailedError

from samtykke.adapters.kafka import client_options
from samtykke.adapters.kafka_oauth import LOCAL_KAFKA_AUDIENCE, StaticToken
from samtykke.adapters.settings import Settings
from samtykke.devstack.acls import CONSENT, projector_principal
from samtykke.devstack.issuer import LocalIssuer, issuer_app
from samtykke.devstack.kafka_credentials import mtls_address
from tests.integration.conftest import ServerThread
from tests.integration.test_kafka_security import LocalBroker, create_topics, list_topics, local_broker, produce, read
from tests.ports import free_port

pytestmark = pytest.mark.stack

MARKETING = projector_principal("marketing")
REFUSAL_SECONDS = 20.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    installed = Settings().state_dir / "kafka" / "lib"  # this checkout's jars: no Maven run
    lib_from = installed if any(installed.glob("kafka_2.13-*.jar")) else None
    local = local_broker(tmp_path_factory.mktemp("doors") / ".state", secured=True, lib_from=lib_from)
    local.start()
    try:
        yield local
    finally:
        local.broker.stop(20)


@pytest.fixture(scope="module")
async def contract(broker: LocalBroker) -> str:
    """The changes topic, made by the consent service's SCRAM user."""
    changes = broker.settings.topic_changes
    await create_topics(broker.client(CONSENT), changes)
    return changes


def issuer(broker: LocalBroker) -> LocalIssuer:
    return LocalIssuer(broker.broker.issuer_folder)


def with_token(broker: LocalBroker, provider: AbstractTokenProvider) -> dict[str, Any]:
    return {
        "bootstrap_servers": broker.settings.kafka_bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauth_token_provider": provider,
        "ssl_context": ssl.create_default_context(cafile=str(broker.broker.tls.ca_pem)),
    }


def token_of(broker: LocalBroker, principal: str, **given: Any) -> dict[str, Any]:
    given = {"audience": LOCAL_KAFKA_AUDIENCE, **given}
    return with_token(broker, StaticToken(issuer(broker).token(principal, ["kafka"], **given)))


async def test_the_consent_service_s_token_writes_the_changes(broker: LocalBroker, contract: str) -> None:
    await produce(token_of(broker, CONSENT), contract, b"by token")
    assert b"by token" in await read(broker.client("admin"), contract)


async def test_a_projector_s_token_may_not_write_the_changes(broker: LocalBroker, contract: str) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(token_of(broker, MARKETING), contract, b"forged")


def failed_logins(broker: LocalBroker) -> int:
    return broker.broker.log_path.read_text(errors="replace").count("Failed authentication with")


async def assert_refused_at_login(broker: LocalBroker, options: dict[str, Any]) -> None:
    """The broker refuses the token at authentication: its log says so, and the client gets nothing.
    aiokafka does not answer the broker's RFC 7628 error challenge, so it cannot tell the refusal
    from a success and fails only at its next request, with a connection error or by waiting: the
    broker's log is the witness."""
    before = failed_logins(broker)
    try:
        topics = await asyncio.wait_for(list_topics(options), REFUSAL_SECONDS)
    except (KafkaError, TimeoutError):
        topics = None
    assert topics is None, f"a refused token listed topics: {topics}"
    assert failed_logins(broker) > before


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"audience": "someone-else"}, id="wrong-audience"),
        pytest.param({"ttl_seconds": -300}, id="expired"),
        pytest.param({"iss": "https://elsewhere.invalid"}, id="wrong-issuer"),
    ],
)
async def test_a_token_the_broker_must_not_trust_is_refused_at_login(
    broker: LocalBroker, contract: str, bad: dict[str, Any]
) -> None:
    await assert_refused_at_login(broker, token_of(broker, CONSENT, **bad))


async def test_a_token_signed_by_another_key_is_refused_at_login(
    broker: LocalBroker, contract: str, tmp_path: Path
) -> None:
    forged = LocalIssuer(tmp_path).token(CONSENT, ["kafka"], LOCAL_KAFKA_AUDIENCE)
    await assert_refused_at_login(broker, with_token(broker, StaticToken(forged)))


async def test_the_settings_fetch_tokens_from_the_token_endpoint(broker: LocalBroker, contract: str) -> None:
    """End to end as a deployment runs: client id and secret in the settings, the provider asks
    the issuer's /token endpoint (client credentials, HTTP Basic) and logs in with the answer."""
    local = issuer(broker)
    secret = local.register(CONSENT, ["kafka"])
    port = free_port()
    with ServerThread(issuer_app(local, LOCAL_KAFKA_AUDIENCE), port):
        settings = broker.settings.model_copy(
            update={
                "kafka_sasl_mechanism": "OAUTHBEARER",
                "kafka_oauth_token_url": f"http://127.0.0.1:{port}/token",
                "kafka_oauth_client_id": CONSENT,
                "kafka_oauth_client_secret": secret,
            }
        )
        options = client_options(Settings.model_validate(settings.model_dump()))
        await produce(options, contract, b"via the token endpoint")
    assert b"via the token endpoint" in await read(broker.client("admin"), contract)


def with_certificate(broker: LocalBroker, principal: str | None) -> dict[str, Any]:
    tls = broker.broker.tls
    context = ssl.create_default_context(cafile=str(tls.ca_pem))
    if principal is not None:
        context.load_cert_chain(str(tls.client_certificate(principal)), str(tls.client_key(principal)))
    return {
        "bootstrap_servers": str(mtls_address(broker.settings)),
        "security_protocol": "SSL",
        "ssl_context": context,
    }


async def test_the_consent_service_s_certificate_writes_the_changes(broker: LocalBroker, contract: str) -> None:
    await produce(with_certificate(broker, CONSENT), contract, b"by certificate")
    assert b"by certificate" in await read(broker.client("admin"), contract)


async def test_the_settings_present_the_local_stack_s_certificate(broker: LocalBroker, contract: str) -> None:
    settings = broker.settings.model_copy(
        update={"kafka_security_protocol": "SSL", "kafka_bootstrap": str(mtls_address(broker.settings))}
    )
    options = client_options(Settings.model_validate({**settings.model_dump(), "kafka_username": CONSENT}))
    await produce(options, contract, b"by the settings' certificate")


async def test_a_projector_s_certificate_may_not_write_the_changes(broker: LocalBroker, contract: str) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(with_certificate(broker, MARKETING), contract, b"forged")


async def test_a_client_without_a_certificate_is_refused_by_the_mutual_tls_listener(broker: LocalBroker) -> None:
    began = time.monotonic()
    with pytest.raises(KafkaConnectionError):
        await list_topics(with_certificate(broker, None))
    assert time.monotonic() - began < 60


def test_no_certificate_is_issued_for_the_super_user(broker: LocalBroker) -> None:
    tls = broker.broker.tls
    assert tls.client_certificate(CONSENT).is_file() and tls.client_key(CONSENT).stat().st_mode & 0o077 == 0
    assert not tls.client_certificate("admin").exists()
