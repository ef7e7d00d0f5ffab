"""Self-service links, sessions and CSRF tokens: one subject, one page, short-lived, unforgeable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from samtykke.domain.model import ActorKind, Channel, SubjectKind
from samtykke.selfservice.access import ExpiredAccess, ForgedAccess, Grant, Page, SelfServiceAccess
from samtykke.selfservice.toggles import Flip, UnknownToggle

KEY = "k" * 40
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def link(minutes: int = 10, page: Page = Page.CONSUMER) -> Grant:
    return Grant("0b6c1d3e-0000-4000-8000-000000000001", page, NOW + timedelta(minutes=minutes), "admin-7")


def test_a_link_opens_what_it_was_minted_for_until_it_expires() -> None:
    access = SelfServiceAccess(KEY)
    token = access.mint_link(link())
    opened = access.open_link(token, NOW + timedelta(minutes=9))
    assert (opened.subject_id, opened.page, opened.actor_ref) == (link().subject_id, Page.CONSUMER, "admin-7")
    with pytest.raises(ExpiredAccess):
        access.open_link(token, NOW + timedelta(minutes=10))


@pytest.mark.parametrize("mangle", [lambda t: t[:-2] + "AA", lambda t: t[:20], lambda t: "", lambda t: "é" * 10])
def test_a_tampered_link_is_forged(mangle: object) -> None:
    access = SelfServiceAccess(KEY)
    token = access.mint_link(link())
    with pytest.raises(ForgedAccess):
        access.open_link(mangle(token), NOW)  # type: ignore[operator]


def test_another_key_opens_nothing() -> None:
    token = SelfServiceAccess(KEY).mint_link(link())
    with pytest.raises(ForgedAccess):
        SelfServiceAccess("z" * 40).open_link(token, NOW)


def test_a_link_is_no_session_and_a_session_no_link() -> None:
    access = SelfServiceAccess(KEY)
    token = access.mint_link(link())
    session, cookie = access.start_session(access.open_link(token, NOW), NOW + timedelta(minutes=20))
    with pytest.raises(ForgedAccess):
        access.open_session(token, NOW)
    with pytest.raises(ForgedAccess):
        access.open_link(cookie, NOW)
    assert access.open_session(cookie, NOW + timedelta(minutes=19)).session_id == session.session_id
    with pytest.raises(ExpiredAccess):
        access.open_session(cookie, NOW + timedelta(minutes=20))


def test_csrf_tokens_are_bound_to_their_session() -> None:
    access = SelfServiceAccess(KEY)
    first, _ = access.start_session(link(), NOW + timedelta(minutes=20))
    second, _ = access.start_session(link(), NOW + timedelta(minutes=20))
    assert access.csrf_ok(first, access.csrf_token(first))
    assert not access.csrf_ok(first, access.csrf_token(second))
    assert not access.csrf_ok(first, "")


def test_pages_belong_to_a_kind_of_subject_and_actor() -> None:
    assert Page.COMPANY.subject_kind is SubjectKind.BUSINESS and Page.COMPANY.actor_kind is ActorKind.COMPANY_ADMIN
    assert Page.EMPLOYEE.subject_kind is SubjectKind.EMPLOYEE and Page.EMPLOYEE.actor_kind is ActorKind.SUBJECT


def test_a_toggle_names_purpose_channel_and_state() -> None:
    assert Flip.parse("direct_marketing|email|off") == Flip("direct_marketing", Channel.EMAIL, False)
    assert Flip.parse("fault_prevention|-|on") == Flip("fault_prevention", None, True)
    for bad in ("direct_marketing|fax|on", "direct_marketing|email|maybe", "x", ""):
        with pytest.raises(UnknownToggle):
            Flip.parse(bad)
