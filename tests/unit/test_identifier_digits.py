"""Digits of other scripts in identifiers: decimal digits count as their ASCII form (so a national id
is one identifier however it was typed), other digit-like characters are refused (pure)."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samtykke.domain.identifiers import InvalidIdentifier, ascii_digits, normalise_national_id, normalise_phone
from samtykke.domain.model import Country

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
EXTENDED_ARABIC_INDIC = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")
SCRIPTS = [ARABIC_INDIC, EXTENDED_ARABIC_INDIC, FULLWIDTH, DEVANAGARI]


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_national_id_in_another_script_is_the_same_national_id(script: dict[int, str]) -> None:
    for raw, country in (("010190-1234", Country.DK), ("811228-9874", Country.SE), ("01010750160", Country.NO)):
        assert normalise_national_id(raw.translate(script), country) == normalise_national_id(raw, country)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_phone_in_another_script_is_the_same_phone(script: dict[int, str]) -> None:
    assert normalise_phone("+45 12 34 56 78".translate(script)) == "+4512345678"
    assert normalise_phone("070-123 45 67".translate(script), Country.SE) == "+46701234567"


@pytest.mark.parametrize("raw", ["²²²²²²²²²²", "0101901①34", "010190123¼", "0101901234²", "𝟘𝟙𝟘𝟙𝟡𝟘𝟙𝟚𝟛𝟜"])
def test_digit_like_characters_are_refused_in_a_national_id(raw: str) -> None:
    # '𝟘' (mathematical double-struck) is a decimal digit: only its neighbours' rule decides
    if all(ch.isdecimal() for ch in raw):
        assert normalise_national_id(raw, Country.DK) == "0101901234"
        return
    with pytest.raises(InvalidIdentifier, match="decimal digits only"):
        normalise_national_id(raw, Country.DK)


@pytest.mark.parametrize("raw", ["+45²²²²²²²²", "+4512345⁶78", "+45 ①2345678", "+45 1234567½"])
def test_digit_like_characters_are_refused_in_a_phone(raw: str) -> None:
    with pytest.raises(InvalidIdentifier):
        normalise_phone(raw)


@given(st.text(alphabet=st.characters(categories=["Nd"]), min_size=1, max_size=20))
def test_every_decimal_digit_becomes_its_ascii_digit(raw: str) -> None:
    converted = ascii_digits(raw)
    assert converted.isascii() and converted.isdigit()
    assert int(converted) == int(raw)


@given(st.text(max_size=30))
def test_normalising_never_raises_anything_but_its_own_refusal(raw: str) -> None:
    for country in Country:
        with contextlib.suppress(InvalidIdentifier):
            normalise_national_id(raw, country)
        with contextlib.suppress(InvalidIdentifier):
            normalise_phone(raw, country)
