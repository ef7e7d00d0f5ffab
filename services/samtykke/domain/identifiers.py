"""Normalising and validating personal identifiers, and keying them for matching.

Identifiers are normalised before hashing so that "+45 12 34 56 78" and
"004512345678" match, and so that digits typed in another script ("٠١٠١٩٠١٢٣٤", fullwidth
"０１０１９０１２３４") match their ASCII form: otherwise one national id could be registered
twice. Digit-like characters that are not decimal digits (superscripts, circled or fractional
numbers) are refused rather than guessed at. Hashes are keyed (HMAC-SHA256): without the key a hash
of a phone number cannot be reversed by enumerating the number space.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from .model import Country

_PHONE_FILLER = re.compile(r"[\s\-().]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_COUNTRY_CODES = {Country.DK: "45", Country.SE: "46", Country.NO: "47"}
# national significant number lengths per country; others follow E.164 (max 15 digits)
_NSN_LENGTHS = {"45": (8, 8), "46": (7, 9), "47": (8, 8)}


class InvalidIdentifier(ValueError):
    """An identifier that breaks its format rule; the message names the rule."""


@dataclass(frozen=True, slots=True)
class NormalisedIdentifiers:
    phone: str | None
    email: str | None
    national_id: str | None


def ascii_digits(raw: str) -> str:
    """`raw` with every decimal digit of any script (Unicode category Nd) replaced by its ASCII
    digit; other characters are left for the caller's rule to accept or refuse."""
    if raw.isascii():  # the common case, and the one on the bulk check's hot path
        return raw
    return "".join(str(unicodedata.decimal(ch)) if unicodedata.category(ch) == "Nd" else ch for ch in raw)


def _only_digits(value: str) -> bool:
    # str.isdigit() alone accepts '²' and '①', which int() then refuses
    return value.isascii() and value.isdigit()


def normalise_phone(raw: str, country: Country | None = None) -> str:
    """Return the number in E.164 (+4512345678), using `country` for national forms."""
    number = _PHONE_FILLER.sub("", ascii_digits(raw))
    if number.startswith("00"):
        number = "+" + number[2:]
    if not number.startswith("+"):
        if country is None:
            raise InvalidIdentifier("must be E.164 (+ and country code) when no country is given")
        number = "+" + _COUNTRY_CODES[country] + number.removeprefix("0")
    digits = number[1:]
    if not _only_digits(digits) or not 8 <= len(digits) <= 15:
        raise InvalidIdentifier("must be E.164: '+' followed by 8 to 15 digits")
    for code, (low, high) in _NSN_LENGTHS.items():
        if digits.startswith(code) and not low <= len(digits) - len(code) <= high:
            raise InvalidIdentifier(f"a +{code} number has {low}-{high} digits after the country code")
    return number


def normalise_email(raw: str) -> str:
    address = raw.strip().lower()
    if len(address) > 254 or not _EMAIL.match(address):
        raise InvalidIdentifier("must be an e-mail address like name@example.dk")
    return address


def normalise_national_id(raw: str, country: Country) -> str:
    """Validate a CPR (DK), personnummer (SE) or fødselsnummer (NO); return its digits."""
    value = ascii_digits(raw).strip().replace("-", "").replace("+", "").replace(" ", "")
    if not _only_digits(value):
        raise InvalidIdentifier("must contain decimal digits only (a '-' separator is allowed)")
    if country is Country.DK:
        return _cpr(value)
    if country is Country.SE:
        return _personnummer(value)
    return _fodselsnummer(value)


def _valid_day(day: int, month: int, year: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _cpr(value: str) -> str:
    if len(value) != 10:
        raise InvalidIdentifier("a CPR number has 10 digits (DDMMYY-SSSS)")
    # 2000 is a leap year, so any real 29 February passes with the century unknown
    if not _valid_day(int(value[0:2]), int(value[2:4]), 2000 + int(value[4:6])):
        raise InvalidIdentifier("a CPR number starts with a valid date DDMMYY")
    return value


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(digits):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _personnummer(value: str) -> str:
    if len(value) == 12:
        value = value[2:]
    if len(value) != 10:
        raise InvalidIdentifier("a personnummer has 10 or 12 digits (YYMMDD-NNNC)")
    day = int(value[4:6])
    day = day - 60 if day > 60 else day  # samordningsnummer
    if not _valid_day(day, int(value[2:4]), 2000 + int(value[0:2])):
        raise InvalidIdentifier("a personnummer starts with a valid date YYMMDD")
    if not _luhn_ok(value):
        raise InvalidIdentifier("a personnummer's last digit is a Luhn check digit")
    return value


def _fodselsnummer(value: str) -> str:
    if len(value) != 11:
        raise InvalidIdentifier("a fødselsnummer has 11 digits (DDMMYYIIIKK)")
    day = int(value[0:2])
    day = day - 40 if day > 40 else day  # D-nummer
    if not _valid_day(day, int(value[2:4]), 2000 + int(value[4:6])):
        raise InvalidIdentifier("a fødselsnummer starts with a valid date DDMMYY")
    d = [int(c) for c in value]
    k1 = 11 - sum(w * x for w, x in zip((3, 7, 6, 1, 8, 9, 4, 5, 2), d, strict=False)) % 11
    k2 = 11 - sum(w * x for w, x in zip((5, 4, 3, 2, 7, 6, 5, 4, 3, 2), d, strict=False)) % 11
    k1, k2 = (0 if k1 == 11 else k1), (0 if k2 == 11 else k2)
    if k1 != d[9] or k2 != d[10]:
        raise InvalidIdentifier("a fødselsnummer's last two digits are mod-11 check digits")
    return value


class IdentifierHasher:
    """`identifier_hash` with its key prepared once, for hashing many identifiers in a row (a bulk
    check, a register file): the keyed HMAC state is copied per identifier, not rebuilt."""

    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def __call__(self, kind: str, normalised: str) -> str:
        mac = self._keyed.copy()
        mac.update(f"{kind}:{normalised}".encode())
        return mac.hexdigest()


def identifier_hash(key: bytes, kind: str, normalised: str) -> str:
    """Keyed hash (hex) of a normalised identifier; `kind` separates phone, email and ids."""
    return IdentifierHasher(key)(kind, normalised)
