"""Identifier normalisation and validation rules, and the one keyed hash of identifiers (pure)."""

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samtykke.domain.identifiers import (
    IdentifierHasher,
    InvalidIdentifier,
    identifier_hash,
    normalise_email,
    normalise_national_id,
    normalise_phone,
)
from samtykke.domain.model import Country
from samtykke.domain.projection import account_pseudonym, pseudonym
from samtykke.suppression.targets import TargetParser


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+45 12 34 56 78", None, "+4512345678"),
        ("004512345678", None, "+4512345678"),
        ("12345678", Country.DK, "+4512345678"),
        ("070-123 45 67", Country.SE, "+46701234567"),
        ("412 34 567", Country.NO, "+4741234567"),
    ],
)
def test_phone_forms_normalise_to_e164(raw: str, country: Country | None, expected: str) -> None:
    assert normalise_phone(raw, country) == expected


@pytest.mark.parametrize("raw", ["+45 1234", "+4512345678901", "phone", "+46 12", "12345678"])
def test_malformed_phones_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidIdentifier):
        normalise_phone(raw)


def test_email_is_trimmed_and_lowercased() -> None:
    assert normalise_email("  Anna.Berg@Example.DK ") == "anna.berg@example.dk"
    for bad in ("anna", "anna@", "@example.dk", "anna@example", "a b@example.dk"):
        with pytest.raises(InvalidIdentifier):
            normalise_email(bad)


def test_national_ids_per_country() -> None:
    assert normalise_national_id("010190-1234", Country.DK) == "0101901234"
    assert normalise_national_id("811228-9874", Country.SE) == "8112289874"
    assert normalise_national_id("19811228-9874", Country.SE) == "8112289874"
    assert normalise_national_id("01010750160", Country.NO) == "01010750160"
    with pytest.raises(InvalidIdentifier, match="valid date"):
        normalise_national_id("320190-1234", Country.DK)
    with pytest.raises(InvalidIdentifier, match="Luhn"):
        normalise_national_id("811228-9875", Country.SE)
    with pytest.raises(InvalidIdentifier, match="mod-11"):
        normalise_national_id("01010750161", Country.NO)


def test_keyed_hash_depends_on_key_and_kind() -> None:
    a = identifier_hash(b"k1" * 8, "phone", "+4512345678")
    assert a == identifier_hash(b"k1" * 8, "phone", "+4512345678")
    assert a != identifier_hash(b"k2" * 8, "phone", "+4512345678")
    assert a != identifier_hash(b"k1" * 8, "email", "+4512345678")
    assert "4512345678" not in a


KEY = b"unit-test-identifier-key"


def test_the_keyed_hash_is_pinned() -> None:
    # stored hashes and the suppression index must match across releases: the message format is a contract
    assert identifier_hash(KEY, "phone", "+4512345678") == (
        "5fb6f87c8d83e9fdfc5e40cf8b2fae5c75cfb5948ba81c925bf390361ea67fc0"
    )


@given(st.sampled_from(["phone", "email", "national_id:DK", "subject", "account"]), st.text(max_size=40))
def test_the_prepared_hasher_gives_the_digest_of_identifier_hash(kind: str, value: str) -> None:
    hasher = IdentifierHasher(KEY)
    assert hasher(kind, value) == identifier_hash(KEY, kind, value)
    assert hasher(kind, value) == hmac.new(KEY, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    assert hasher(kind, value) == hasher(kind, value)  # the prepared state is copied, never consumed


def test_the_suppression_gate_keys_identifiers_as_the_consent_service_does() -> None:
    parser = TargetParser(KEY)
    assert parser.parse("phone", "+45 12 34 56 78").key == identifier_hash(KEY, "phone", "+4512345678")
    assert parser.parse("email", " Anna@Example.DK").key == identifier_hash(KEY, "email", "anna@example.dk")


def test_analytics_pseudonyms_are_keyed_hashes_of_subjects_and_accounts() -> None:
    assert pseudonym(KEY, "s-1") == identifier_hash(KEY, "subject", "s-1")
    assert account_pseudonym(KEY, "a-1") == identifier_hash(KEY, "account", "a-1")
