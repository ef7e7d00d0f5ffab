"""The self-service pages as HTML: one form per page, one button per toggle, no script needed.

Each toggle is a submit button with `role="switch"`: one click (or Enter/Space on the keyboard)
records the change, turning a consent off takes exactly the clicks turning it on does, and the page
works without JavaScript. Everything from the store is escaped; colours keep a contrast of 7:1 or more.
"""

from __future__ import annotations

import html
from datetime import datetime

from fastapi.responses import HTMLResponse

from samtykke.consent.unsubscribe_pages import HEADERS, Language

from .access import Page
from .texts import BASES, CHANNELS, LANGUAGE_NAMES, NOTICE_VERSION, STATUSES, UI, purpose_text
from .view import Employee, PageView, Section, Toggle

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a;"
    "background:#fff;line-height:1.45}"
    "nav ul{list-style:none;display:flex;gap:1rem;padding:0}a{color:#0b3d91}"
    "fieldset{border:1px solid #555;border-radius:6px;margin:1rem 0;padding:.5rem 1rem 1rem}"
    "legend{font-weight:700;font-size:1.1rem;padding:0 .3rem}.basis{color:#333;font-size:.95rem}"
    ".toggle{display:flex;align-items:center;gap:.8rem;margin:.4rem 0;flex-wrap:wrap}"
    "button[role=switch]{min-width:9rem;font-size:1rem;padding:.45rem .8rem;border:2px solid #1a1a1a;"
    "border-radius:1.2rem;background:#fff;color:#1a1a1a;cursor:pointer;text-align:left}"
    "button[aria-checked=true]{background:#0b5d1e;border-color:#0b5d1e;color:#fff}"
    "button:focus-visible,a:focus-visible{outline:3px solid #b35900;outline-offset:2px}"
    ".state{font-size:.95rem;color:#333}table{border-collapse:collapse;width:100%}"
    "th,td{text-align:left;border-bottom:1px solid #999;padding:.3rem .4rem;font-size:.95rem}"
    "[role=status]{background:#e8f2e9;border-left:4px solid #0b5d1e;padding:.4rem .8rem}"
)


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _date(at: datetime | None) -> str:
    return f'<time datetime="{at.isoformat()}">{at.date().isoformat()}</time>' if at else ""


def document(language: Language, title: str, body: str, status: int = 200) -> HTMLResponse:
    page = (
        f'<!doctype html>\n<html lang="{language.value}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )
    return HTMLResponse(page, status_code=status, headers=HEADERS | {"Content-Language": language.value})


def message(language: Language, key: str, status: int) -> HTMLResponse:
    text = UI[language][key]
    return document(language, text, f"<main><h1>{_esc(text)}</h1></main>", status)


def _languages(current: Language) -> str:
    items = "".join(
        f'<li><a href="?lang={lang.value}" hreflang="{lang.value}" lang="{lang.value}"'
        f"{' aria-current=true' if lang is current else ''}>{_esc(LANGUAGE_NAMES[lang])}</a></li>"
        for lang in Language
    )
    return f'<nav aria-label="{_esc(UI[current]["language"])}"><ul>{items}</ul></nav>'


def _state(language: Language, toggle: Toggle) -> str:
    texts = UI[language]
    if toggle.status is None:
        return _esc(texts["never"])
    text = f"{_esc(STATUSES[language][toggle.status])} {_esc(texts['since'])} {_date(toggle.since)}"
    return text + (f", {_esc(texts['until'])} {_date(toggle.until)}" if toggle.until else "")


def _toggle(language: Language, toggle: Toggle, ident: str) -> str:
    texts = UI[language]
    name = CHANNELS[language][toggle.channel] if toggle.channel else purpose_text(language, toggle.purpose)[0]
    flip = "off" if toggle.on else "on"
    return (
        f'<div class="toggle"><button type="submit" name="toggle" value="{_esc(toggle.value)}|{flip}"'
        f' role="switch" aria-checked="{"true" if toggle.on else "false"}" aria-describedby="{ident}">'
        f"{_esc(name)}: {_esc(texts['on'] if toggle.on else texts['off'])}</button>"
        f'<span class="state" id="{ident}">{_state(language, toggle)}</span></div>'
    )


def _section(language: Language, section: Section) -> str:
    title, description = purpose_text(language, section.purpose.code)
    basis = BASES[language].get(section.purpose.legal_basis, section.purpose.legal_basis)
    toggles = "".join(
        _toggle(language, t, f"st-{t.purpose}-{t.channel.value if t.channel else 'all'}") for t in section.toggles
    )
    note = f"<p>{_esc(UI[language]['objection'])}</p>" if section.purpose.mechanism.value == "opt_out" else ""
    return (
        f"<fieldset><legend>{_esc(title)}</legend><p>{_esc(description)}</p>"
        f'<p class="basis">{_esc(UI[language]["basis"])}: {_esc(basis)}</p>{note}{toggles}</fieldset>'
    )


def _bases(language: Language, view: PageView) -> str:
    if not view.bases:
        return ""
    items = "".join(
        f"<li><strong>{_esc(purpose_text(language, p.code)[0])}</strong>: {_esc(purpose_text(language, p.code)[1])}"
        f' <span class="basis">({_esc(BASES[language].get(p.legal_basis, p.legal_basis))})</span></li>'
        for p in view.bases
    )
    heading = _esc(UI[language]["no_consent"])
    return f'<section aria-labelledby="bases"><h2 id="bases">{heading}</h2><ul>{items}</ul></section>'


def _history(language: Language, view: PageView) -> str:
    texts = UI[language]
    heading = texts["company_history"] if view.page is Page.COMPANY else texts["history"]
    if not view.history:
        empty = _esc(texts["none_yet"])
        return f'<section aria-labelledby="hist"><h2 id="hist">{_esc(heading)}</h2><p>{empty}</p></section>'
    rows = "".join(
        f"<tr><td>{_date(e.occurred_at)}</td><td>{_esc(purpose_text(language, e.purpose)[0])}</td>"
        f"<td>{_esc(CHANNELS[language][e.channel]) if e.channel else ''}</td>"
        f"<td>{_esc(STATUSES[language][e.status])}</td><td>{_esc(e.source.value.replace('_', ' '))}</td></tr>"
        for e in view.history
    )
    head = "".join(f'<th scope="col">{_esc(texts[k])}</th>' for k in ("when", "what", "channel", "state", "by"))
    return (
        f'<section aria-labelledby="hist"><h2 id="hist">{_esc(heading)}</h2>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _choice(language: Language, toggle: Toggle) -> str:
    channel = CHANNELS[language][toggle.channel] if toggle.channel else ""
    return f"{_esc(channel)}: {_esc(UI[language]['on'] if toggle.on else UI[language]['off'])}"


def _employees(language: Language, staff: list[Employee]) -> str:
    texts = UI[language]
    if not staff:
        body = f"<p>{_esc(texts['no_employees'])}</p>"
    else:
        rows = "".join(
            f'<tr><th scope="row">{_esc(e.label)}</th><td>'
            + ", ".join(_choice(language, t) for t in e.choices)
            + "</td></tr>"
            for e in staff
        )
        head = f'<tr><th scope="col">{_esc(texts["person"])}</th><th scope="col">{_esc(texts["channel"])}</th></tr>'
        body = f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"
    return (
        f'<section aria-labelledby="staff"><h2 id="staff">{_esc(texts["employees"])}</h2>'
        f"<p>{_esc(texts['employees_note'])}</p>{body}</section>"
    )


def render(language: Language, view: PageView, csrf: str, notice: str | None = None) -> HTMLResponse:
    texts = UI[language]
    title = texts[view.page.value]
    intro = texts["company_intro"] if view.page is Page.COMPANY else texts["intro"]
    flash = f'<p role="status">{_esc(texts[notice])}</p>' if notice else ""
    form = (
        '<form method="post" action="/my-consents">'
        f'<input type="hidden" name="csrf" value="{_esc(csrf)}">'
        f'<input type="hidden" name="notice" value="{NOTICE_VERSION}">'
        f'<input type="hidden" name="lang" value="{language.value}">'
        + "".join(_section(language, s) for s in view.sections)
        + "</form>"
    )
    staff = _employees(language, view.employees) if view.employees is not None else ""
    body = (
        f"<header>{_languages(language)}</header><main><h1>{_esc(title)}</h1><p>{_esc(intro)}</p>{flash}"
        f"{form}{staff}{_bases(language, view)}{_history(language, view)}</main>"
    )
    return document(language, title, body)
