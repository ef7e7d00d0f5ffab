"""How every Kafka client connects: the options `client_options` and `faust_credentials` make from
the settings, the start-up checks that name the missing setting, each platform service's own
principal, and the schema registry client's authentication. No sockets."""

from __future__ import annotations

import datetime
import json
import ssl
from pathlib import Path

import faust
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from samtykke.adapters.avro import registry_client
from samtykke.adapters.kafka import KafkaSecurityError, client_options, faust_credentials
from samtykke.adapters.settings import Settings
from samtykke.devstack.platform import PLATFORM_SERVICES, service_environment


def write_ca(folder: Path) -> Path:
    """A self-signed CA certificate in PEM, as the local stack exports its own."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = folder / "ca.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def local_stack(tmp_path: Path) -> Path:
    """A state folder laid out as the local stack's: a CA and the users' passwords."""
    state = tmp_path / ".state"
    (state / "kafka" / "tls").mkdir(parents=True)
    write_ca(state / "kafka" / "tls")
    (state / "kafka" / "credentials.json").write_text(json.dumps({"tools": "tools-pw", "consent": "consent-pw"}))
    return state


def test_plaintext_is_the_bootstrap_servers_only() -> None:
    options = client_options(Settings(kafka_security_protocol="PLAINTEXT", kafka_bootstrap="k:9092"))
    assert options == {"bootstrap_servers": "k:9092", "security_protocol": "PLAINTEXT"}
    assert faust_credentials(Settings(kafka_security_protocol="PLAINTEXT")) is None


def test_the_default_is_sasl_ssl_as_tools_with_the_local_stack_s_ca_and_password(local_stack: Path) -> None:
    options = client_options(Settings(state_dir=local_stack))
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("tools", "tools-pw")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_a_service_principal_gets_its_own_password(local_stack: Path) -> None:
    options = client_options(Settings(state_dir=local_stack, kafka_username="consent"))
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("consent", "consent-pw")


def test_a_password_setting_or_file_wins_over_the_local_stack(local_stack: Path, tmp_path: Path) -> None:
    given = Settings(state_dir=local_stack, kafka_username="svc", kafka_password="from-env")
    assert client_options(given)["sasl_plain_password"] == "from-env"
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    mounted = Settings(state_dir=local_stack, kafka_username="svc", kafka_password_file=secret)
    assert client_options(mounted)["sasl_plain_password"] == "from-file"


def test_a_missing_password_names_the_setting(tmp_path: Path, local_stack: Path) -> None:
    with pytest.raises(KafkaSecurityError, match="SAMTYKKE_KAFKA_PASSWORD"):
        client_options(Settings(state_dir=tmp_path, kafka_security_protocol="SASL_PLAINTEXT"))
    with pytest.raises(KafkaSecurityError, match="SAMTYKKE_KAFKA_USERNAME='nobody'"):
        client_options(Settings(state_dir=local_stack, kafka_username="nobody"))
    with pytest.raises(KafkaSecurityError, match="SAMTYKKE_KAFKA_PASSWORD_FILE"):
        client_options(Settings(state_dir=local_stack, kafka_password_file=tmp_path / "absent"))


def test_missing_tls_files_name_the_setting(tmp_path: Path, local_stack: Path) -> None:
    with pytest.raises(KafkaSecurityError, match="SAMTYKKE_KAFKA_CA_FILE"):
        client_options(Settings(state_dir=tmp_path, kafka_security_protocol="SSL"))
    with pytest.raises(KafkaSecurityError, match="SAMTYKKE_KAFKA_CERT_FILE"):
        client_options(
            Settings(state_dir=local_stack, kafka_cert_file=tmp_path / "c.pem", kafka_key_file=tmp_path / "k.pem")
        )


def test_inconsistent_security_settings_are_refused_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="kafka_cert_file and kafka_key_file go together"):
        Settings(kafka_cert_file=tmp_path / "c.pem")
    with pytest.raises(ValidationError, match="needs an SSL protocol"):
        Settings(
            kafka_security_protocol="SASL_PLAINTEXT", kafka_cert_file=tmp_path / "c", kafka_key_file=tmp_path / "k"
        )
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        Settings(kafka_security_protocol="SASL_TLS")
    with pytest.raises(ValidationError, match="registry_username and registry_password"):
        Settings(registry_username="someone")


async def test_oauthbearer_passes_the_token_through_a_provider(local_stack: Path) -> None:
    settings = Settings(state_dir=local_stack, kafka_sasl_mechanism="OAUTHBEARER", kafka_password="a.jwt.token")
    options = client_options(settings)
    assert "sasl_plain_password" not in options
    assert await options["sasl_oauth_token_provider"].token() == "a.jwt.token"
    assert isinstance(faust_credentials(settings), faust.OAuthCredentials)


def test_faust_gets_the_same_login(local_stack: Path) -> None:
    credentials = faust_credentials(Settings(state_dir=local_stack, kafka_username="consent"))
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("consent", "consent-pw")
    assert credentials.protocol.value == "SASL_SSL" and credentials.mechanism.value == "SCRAM-SHA-512"
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    ssl_only = faust_credentials(Settings(state_dir=local_stack, kafka_security_protocol="SSL"))
    assert isinstance(ssl_only, faust.SSLCredentials)


def test_each_platform_service_logs_in_as_its_own_principal(local_stack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMTYKKE_KAFKA_USERNAME", "tools")  # the starter's own user
    settings = Settings(state_dir=local_stack)
    principals = {}
    for service in PLATFORM_SERVICES:
        env = service_environment(service, settings)
        assert env is not None and "SAMTYKKE_KAFKA_PASSWORD" not in env
        principals[service.name] = env["SAMTYKKE_KAFKA_USERNAME"]
    assert principals == {
        "consent": "consent",
        "marketing": "projector-marketing",
        "analytics": "projector-analytics",
        "customer_service": "projector-customer-service",
        "suppression": "suppression",
    }
    # a deployment's own password: the children keep the environment they were given
    assert service_environment(PLATFORM_SERVICES[0], Settings(kafka_password="own")) is None
    assert service_environment(PLATFORM_SERVICES[0], Settings(kafka_security_protocol="PLAINTEXT")) is None


async def test_the_registry_client_authenticates_as_configured(tmp_path: Path) -> None:
    basic = registry_client(Settings(registry_username="reg", registry_password="pw"))
    assert basic.auth is not None
    await basic.aclose()
    bearer = registry_client(Settings(registry_token="tok", registry_ca_file=write_ca(tmp_path)))
    assert bearer.headers["Authorization"] == "Bearer tok"
    await bearer.aclose()
    with pytest.raises(ValueError, match="SAMTYKKE_REGISTRY_CA_FILE"):
        registry_client(Settings(registry_ca_file=tmp_path / "absent.pem"))
