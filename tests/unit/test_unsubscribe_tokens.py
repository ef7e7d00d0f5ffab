"""Unsubscribe link tokens: opaque, tamper-evident, expiring, and still valid across a key rotation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from samtykke.consent.unsubscribe_pages import Language, negotiate
from samtykke.consent.unsubscribe_tokens import ExpiredToken, ForgedToken, UnsubscribeTarget, UnsubscribeTokens
from samtykke.domain.model import Channel

KEY = "a-test-key-of-at-least-thirty-two-characters"
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
SUBJECT = "6f1c2a9e-1d2b-4c7e-9a4f-2b1e0c3d4f5a"
TARGET = UnsubscribeTarget(SUBJECT, "direct_marketing", Channel.EMAIL, NOW + timedelta(days=90))


def test_a_token_opens_to_what_it_was_minted_for() -> None:
    tokens = UnsubscribeTokens(KEY)
    token = tokens.mint(TARGET)
    assert tokens.open(token, NOW) == TARGET
    assert token.replace("-", "").replace("_", "").isalnum()  # nothing to escape in a URL


def test_the_subject_cannot_be_read_from_the_token() -> None:
    token = UnsubscribeTokens(KEY).mint(TARGET)
    decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for text in (token.encode(), decoded):
        assert SUBJECT.encode() not in text and b"direct_marketing" not in text


def test_a_changed_character_is_a_forgery() -> None:
    tokens = UnsubscribeTokens(KEY)
    token = tokens.mint(TARGET)
    for i in (10, len(token) // 2, len(token) - 3):
        tampered = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        with pytest.raises(ForgedToken):
            tokens.open(tampered, NOW)


@pytest.mark.parametrize("token", ["", "nonsense", "x" * 600, "å" * 40])
def test_garbage_is_a_forgery(token: str) -> None:
    with pytest.raises(ForgedToken):
        UnsubscribeTokens(KEY).open(token, NOW)


def test_another_key_is_a_forgery_and_a_retired_one_still_opens() -> None:
    old = UnsubscribeTokens(KEY).mint(TARGET)
    with pytest.raises(ForgedToken):
        UnsubscribeTokens("another-key-of-at-least-thirty-two-chars").open(old, NOW)
    assert UnsubscribeTokens("another-key-of-at-least-thirty-two-chars", [KEY]).open(old, NOW) == TARGET


def test_expiry() -> None:
    tokens = UnsubscribeTokens(KEY)
    token = tokens.mint(TARGET)
    assert tokens.open(token, TARGET.expires_at - timedelta(seconds=1)) == TARGET
    with pytest.raises(ExpiredToken):
        tokens.open(token, TARGET.expires_at)


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("sv", Language.SV),
        ("sv-SE,sv;q=0.9,en;q=0.8", Language.SV),
        ("en;q=0.5, da", Language.DA),
        ("no", Language.NB),
        ("nn-NO", Language.NB),
        ("de, fr;q=0.8", Language.EN),
        ("da;q=0, sv;q=0.1", Language.SV),
        ("", Language.EN),
    ],
)
def test_language_from_accept_language(header: str, language: Language) -> None:
    assert negotiate(header) is language


def test_language_falls_back_to_the_given_one() -> None:
    assert negotiate(None, Language.NB) is Language.NB
