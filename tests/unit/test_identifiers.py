"""Identifier normalisation and validation rules (pure)."""

import pytest

from samtykke.domain.identifiers import (
    InvalidIdentifier,
    identifier_hash,
    normalise_email,
    normalise_national_id,
    normalise_phone,
)
from samtykke.domain.model import Country


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
