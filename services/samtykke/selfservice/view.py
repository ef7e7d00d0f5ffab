"""What a page shows, read through the consent use cases: toggles with their state, the bases that
need no consent, the subject's history, and for a company admin the employees' contact choices.

A toggle is "on" when the purpose may be used on that channel now: an opt-in purpose when granted
(and not lapsed), an opt-out purpose unless objected to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from samtykke.consent.ports import CurrentConsent, LedgerEntry
from samtykke.consent.service import ConsentService
from samtykke.domain.catalog import Purpose
from samtykke.domain.consent import ConsentRecord
from samtykke.domain.model import Channel, ConsentStatus, Mechanism, SubjectKind

from .access import Page

Key = tuple[str, Channel | None]
MAX_EMPLOYEES = 200


@dataclass(frozen=True, slots=True)
class Toggle:
    purpose: str
    channel: Channel | None
    on: bool
    status: ConsentStatus | None
    since: datetime | None
    until: datetime | None

    @property
    def value(self) -> str:
        return f"{self.purpose}|{self.channel.value if self.channel else '-'}"


@dataclass(frozen=True, slots=True)
class Section:
    purpose: Purpose
    toggles: list[Toggle]


@dataclass(frozen=True, slots=True)
class Employee:
    label: str
    choices: list[Toggle]


@dataclass(frozen=True, slots=True)
class PageView:
    page: Page
    sections: list[Section]
    bases: list[Purpose]  # shown read-only: no consent needed
    history: list[LedgerEntry]
    employees: list[Employee] | None


def purposes_of(svc: ConsentService, page: Page) -> list[Purpose]:
    """The decidable purposes a page offers, in catalog order."""
    kind = page.subject_kind
    return [p for p in svc.catalog.purposes.values() if p.decidable and p.applies_to(kind)]


def toggle_keys(svc: ConsentService, page: Page) -> dict[Key, Purpose]:
    return {
        (p.code, channel): p
        for p in purposes_of(svc, page)
        for channel in (p.channels[page.subject_kind] if p.per_channel else (None,))
    }


def is_on(purpose: Purpose, status: ConsentStatus | None) -> bool:
    if purpose.mechanism is Mechanism.OPT_OUT:
        return status not in (ConsentStatus.WITHDRAWN, ConsentStatus.REVOKED)
    return status is ConsentStatus.GRANTED


def _toggles(svc: ConsentService, page: Page, current: list[CurrentConsent]) -> list[Section]:
    state: dict[Key, ConsentRecord] = {(c.record.purpose, c.record.channel): c.record for c in current}
    sections: dict[str, list[Toggle]] = {}
    for (code, channel), purpose in toggle_keys(svc, page).items():
        record = state.get((code, channel))
        status = record.status if record else None
        sections.setdefault(code, []).append(
            Toggle(
                code,
                channel,
                is_on(purpose, status),
                status,
                record.occurred_at if record else None,
                record.valid_until if record and status is ConsentStatus.GRANTED else None,
            )
        )
    return [Section(svc.catalog.purposes[p.code], sections[p.code]) for p in purposes_of(svc, page)]


async def employees(svc: ConsentService, pool: asyncpg.Pool, account_id: str | None) -> list[Employee]:
    """The business account's employees and their contact choices, read-only for the company admin."""
    if account_id is None:
        return []
    ids = await pool.fetch(
        "SELECT subject_id::text AS id FROM consent.subjects"
        " WHERE account_id = $1 AND kind = $2 AND erased_at IS NULL ORDER BY created_at, subject_id LIMIT $3",
        account_id,
        SubjectKind.EMPLOYEE.value,
        MAX_EMPLOYEES,
    )
    found = []
    for number, row in enumerate(ids, 1):
        subject = await svc.subject(row["id"])
        clear = svc.reveal(subject)
        label = clear.get("email") or clear.get("phone") or f"#{number}"
        sections = _toggles(svc, Page.EMPLOYEE, await svc.current(subject.subject_id))
        found.append(Employee(label, [t for s in sections for t in s.toggles]))
    return found


async def read_page(svc: ConsentService, pool: asyncpg.Pool, subject_id: str, page: Page) -> PageView:
    subject = await svc.subject(subject_id)
    sections = _toggles(svc, page, await svc.current(subject_id))
    bases = [] if page is Page.EMPLOYEE else [p for p in svc.catalog.purposes.values() if not p.decidable]
    history = sorted(await svc.history(subject_id), key=lambda e: e.seq, reverse=True)
    staff = await employees(svc, pool, subject.account_id) if page is Page.COMPANY else None
    return PageView(page, sections, bases, history, staff)
