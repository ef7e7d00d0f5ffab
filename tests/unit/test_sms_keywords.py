"""SMS keywords: parsing, the countries of numbers, what STOP covers and when START may re-grant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from samtykke.domain.catalog import load_catalog
from samtykke.domain.keywords import (
    Keyword,
    LastChange,
    country_of,
    may_restart,
    parse_keyword,
    sms_marketing,
)
from samtykke.domain.model import Channel, ConsentStatus, Country, Source, SubjectKind

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    ["STOP", "stop", " Stopp! ", "STOPP tack", "afmeld", "AFMELDING", "Avsluta", "AVSLUTT", "avmeld", "\tstop\n"],
)
def test_stop_in_every_form(text: str) -> None:
    assert parse_keyword(text) is Keyword.STOP


@pytest.mark.parametrize("text", ["HELP", "hjælp", "HJÄLP", "Hjelp?", "ＨＥＬＰ"])
def test_help_in_every_form(text: str) -> None:
    assert parse_keyword(text) is Keyword.HELP


@pytest.mark.parametrize("text", ["START", "ja", "Ja tak"])
def test_start(text: str) -> None:
    assert parse_keyword(text) is Keyword.START


@pytest.mark.parametrize("text", ["", "   ", "hello", "nonstop", "please stop"])
def test_anything_else_asks_for_nothing(text: str) -> None:
    assert parse_keyword(text) is None


def test_country_by_calling_code() -> None:
    assert country_of("+4520304050") is Country.DK
    assert country_of("+46701234567") is Country.SE
    assert country_of("+4791234567") is Country.NO
    assert country_of("+4915112345678") is None


def test_stop_covers_every_marketing_purpose_on_sms() -> None:
    catalog = load_catalog()
    assert set(sms_marketing(catalog, SubjectKind.CONSUMER)) == {
        ("direct_marketing", Channel.SMS),
        ("third_party_marketing", Channel.SMS),
        ("existing_customer_offers", Channel.SMS),
    }
    assert sms_marketing(catalog, SubjectKind.EMPLOYEE) == [("direct_marketing", Channel.SMS)]
    assert sms_marketing(catalog, SubjectKind.BUSINESS) == []


def test_start_undoes_only_a_recent_stop_by_text() -> None:
    window = timedelta(days=30)
    stopped = LastChange(ConsentStatus.WITHDRAWN, Source.SMS_KEYWORD, NOW - timedelta(days=29))
    assert may_restart(stopped, NOW, window)
    assert not may_restart(LastChange(stopped.status, stopped.source, NOW - timedelta(days=31)), NOW, window)
    assert not may_restart(LastChange(stopped.status, Source.SELF_SERVICE, stopped.recorded_at), NOW, window)
    assert not may_restart(LastChange(ConsentStatus.EXPIRED, stopped.source, stopped.recorded_at), NOW, window)
    assert not may_restart(None, NOW, window)
    assert not may_restart(stopped, NOW, timedelta(0))
