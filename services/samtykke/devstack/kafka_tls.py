"""TLS material of the secured local broker, made with the JDK's keytool into `<state>/kafka/tls/`.

- `ca.p12`: a local CA (EC P-256, ten years), used only to sign the broker's certificate.
- `ca.pem`: the CA certificate, for Python clients (`ssl.create_default_context(cafile=...)`).
- `broker.p12`: the broker's key and certificate (PKCS12), signed by the CA, naming the listen host,
  `localhost` and 127.0.0.1. It serves every TLS listener and is also the client certificate of the
  node's own KRaft traffic and of the stack manager (the CONTROLLER and INTERNAL listeners ask for
  one): its subject, `BROKER_SUBJECT`, is a super user.
- `truststore.p12`: the CA alone. The broker needs it for its own TLS clients (inter-broker and
  controller); Kafka also checks at start that its client and server sides can shake hands.
- `clients/<principal>.pem` and `clients/<principal>.key`: a client certificate per principal for
  the mutual-TLS listener (subject `CN=<principal>`, which the broker maps to `User:<principal>`, so
  the same ACLs apply), PEM for Python clients (`kafka_cert_file`, `kafka_key_file`). Signed in
  Python with the CA's key from `ca.p12`: keytool cannot write a private key as PEM. None is issued
  for the super user `admin`.

Every store has its own random password in `<name>.password` (mode 600). Made once and kept: a
restart reuses them; only a changed listen host re-issues the broker certificate (same CA, so
clients keep their `ca.pem`).
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from samtykke.devstack.kafka_credentials import new_password, write_secret

BROKER_SUBJECT = "CN=samtykke-kafka-broker"
CA_SUBJECT = "CN=samtykke local development CA"
CA_DAYS = 3650
BROKER_DAYS = 825
CLIENT_DAYS = 825
_KEY = ("-keyalg", "EC", "-groupname", "secp256r1")

# runs one keytool command (arguments after `keytool`), raising on failure
Keytool = Callable[[Sequence[str], str], None]


def subject_alternative_names(host: str) -> tuple[str, ...]:
    """`dns:`/`ip:` entries for the listen host, `localhost` and 127.0.0.1, without repeats."""
    names = ["dns:localhost", "ip:127.0.0.1"]
    try:
        names.append(f"ip:{ipaddress.ip_address(host)}")
    except ValueError:
        names.append(f"dns:{host}")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class BrokerTls:
    """The paths of the material; `ensure_material` makes what is missing."""

    folder: Path

    @property
    def ca_store(self) -> Path:
        return self.folder / "ca.p12"

    @property
    def ca_pem(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.folder / "broker.p12"

    @property
    def truststore(self) -> Path:
        return self.folder / "truststore.p12"

    @property
    def names_path(self) -> Path:
        return self.folder / "broker.names"

    def password_path(self, store: str) -> Path:
        return self.folder / f"{store}.password"

    def password(self, store: str) -> str:
        return self.password_path(store).read_text()

    @property
    def keystore_password(self) -> str:
        return self.password("broker")

    @property
    def truststore_password(self) -> str:
        return self.password("truststore")

    def has_ca(self) -> bool:
        return all(p.is_file() for p in (self.ca_store, self.ca_pem, self.password_path("ca")))

    def has_broker(self, names: Sequence[str]) -> bool:
        files = (self.keystore, self.truststore, self.password_path("broker"), self.password_path("truststore"))
        return (
            all(p.is_file() for p in files)
            and self.names_path.is_file()
            and self.names_path.read_text().split() == list(names)
        )

    def client_certificate(self, principal: str) -> Path:
        return self.folder / "clients" / f"{principal}.pem"

    def client_key(self, principal: str) -> Path:
        return self.folder / "clients" / f"{principal}.key"

    def ensure_client_certificates(self, principals: Iterable[str]) -> list[str]:
        """A client certificate for each principal that has none, or one from another CA (the CA
        was made anew); returns the principals given one."""
        ca_pem = self.ca_pem.read_bytes()
        issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None
        issued = []
        for principal in principals:
            certificate, key = self.client_certificate(principal), self.client_key(principal)
            if key.is_file() and certificate.is_file() and _signed_by(certificate.read_bytes(), ca_pem):
                continue
            issuer = issuer or self._ca_key()
            _issue_client(principal, issuer, certificate, key)
            issued.append(principal)
        return issued

    def _ca_key(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key, certificate, _ = pkcs12.load_key_and_certificates(self.ca_store.read_bytes(), self.password("ca").encode())
        if not isinstance(key, ec.EllipticCurvePrivateKey) or certificate is None:
            raise ValueError(f"{self.ca_store} holds no EC key and certificate")
        return key, certificate

    def ensure_material(self, host: str, keytool: Keytool) -> bool:
        """Make the CA and the broker's stores if missing; True if anything was made."""
        names = subject_alternative_names(host)
        made = False
        if not self.has_ca():
            self._make_ca(keytool)
            made = True
        if made or not self.has_broker(names):
            self._issue_broker(names, keytool)
            made = True
        return made

    def _make_ca(self, keytool: Keytool) -> None:
        self._reset(self.ca_store, self.ca_pem)
        ca_pass = self._new_password("ca")
        keytool(
            [
                "-genkeypair",
                "-alias",
                "ca",
                *_KEY,
                "-dname",
                CA_SUBJECT,
                "-ext",
                "bc:c=ca:true,pathlen:0",
                "-ext",
                "ku:c=keyCertSign,cRLSign",
                "-validity",
                str(CA_DAYS),
                "-storetype",
                "PKCS12",
                "-keystore",
                str(self.ca_store),
                "-storepass:file",
                str(ca_pass),
            ],
            "making the local CA",
        )
        keytool(
            [
                "-exportcert",
                "-rfc",
                "-alias",
                "ca",
                "-keystore",
                str(self.ca_store),
                "-storepass:file",
                str(ca_pass),
                "-file",
                str(self.ca_pem),
            ],
            "exporting the CA certificate",
        )
        self.ca_store.chmod(0o600)

    def _issue_broker(self, names: Sequence[str], keytool: Keytool) -> None:
        request, signed = self.folder / "broker.csr", self.folder / "broker.crt"
        self._reset(self.keystore, self.truststore, self.names_path, request, signed)
        ca_pass, broker_pass = self.password_path("ca"), self._new_password("broker")
        store = ["-keystore", str(self.keystore), "-storepass:file", str(broker_pass)]
        keytool(
            [
                "-genkeypair",
                "-alias",
                "broker",
                *_KEY,
                "-dname",
                BROKER_SUBJECT,
                "-validity",
                str(BROKER_DAYS),
                "-storetype",
                "PKCS12",
                *store,
            ],
            "making the broker key",
        )
        keytool(["-certreq", "-alias", "broker", *store, "-file", str(request)], "requesting the broker certificate")
        keytool(
            [
                "-gencert",
                "-alias",
                "ca",
                "-keystore",
                str(self.ca_store),
                "-storepass:file",
                str(ca_pass),
                "-infile",
                str(request),
                "-outfile",
                str(signed),
                "-rfc",
                "-validity",
                str(BROKER_DAYS),
                "-ext",
                f"SAN={','.join(names)}",
                "-ext",
                "ku:c=digitalSignature",
                # server for every listener; client of the CONTROLLER and INTERNAL listeners
                "-ext",
                "eku=serverAuth,clientAuth",
            ],
            "signing the broker certificate",
        )
        # the CA first, so the signed certificate's chain is complete in the keystore
        keytool(["-importcert", "-noprompt", "-alias", "ca", "-file", str(self.ca_pem), *store], "storing the CA")
        keytool(["-importcert", "-alias", "broker", "-file", str(signed), *store], "storing the broker certificate")
        truststore_pass = self._new_password("truststore")
        keytool(
            [
                "-importcert",
                "-noprompt",
                "-alias",
                "ca",
                "-file",
                str(self.ca_pem),
                "-storetype",
                "PKCS12",
                "-keystore",
                str(self.truststore),
                "-storepass:file",
                str(truststore_pass),
            ],
            "making the truststore",
        )
        request.unlink()
        signed.unlink()
        for path in (self.keystore, self.truststore):
            path.chmod(0o600)
        # written last: its presence says the broker's material is complete
        self.names_path.write_text("\n".join(names) + "\n")

    def _new_password(self, store: str) -> Path:
        path = self.password_path(store)
        write_secret(path, new_password())
        return path

    def _reset(self, *paths: Path) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        for path in paths:
            path.unlink(missing_ok=True)


def _signed_by(certificate_pem: bytes, ca_pem: bytes) -> bool:
    certificate, ca = x509.load_pem_x509_certificate(certificate_pem), x509.load_pem_x509_certificate(ca_pem)
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _issue_client(
    principal: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], certificate: Path, key: Path
) -> None:
    ca_key, ca = issuer
    own = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    signed = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, principal)]))
        .issuer_name(ca.subject)
        .public_key(own.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CLIENT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = own.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_secret(key, pem.decode())
    certificate.write_bytes(signed.public_bytes(serialization.Encoding.PEM))


def keytool_available() -> bool:
    return shutil.which("keytool") is not None
