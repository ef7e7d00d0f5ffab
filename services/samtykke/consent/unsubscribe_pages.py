"""The small HTML pages behind an unsubscribe link, in Danish, Swedish, Norwegian Bokmål or English.

A GET only asks (a mail scanner that fetches every link must never unsubscribe anyone); the button
POSTs the same body a mail client's one-click sends. Nothing on a page comes from the request except
the choice of language, so the only dynamic text is our own, escaped anyway.
"""

from __future__ import annotations

import html
from enum import StrEnum

from fastapi.responses import HTMLResponse

from samtykke.domain.model import Channel, Country


class Language(StrEnum):
    DA = "da"
    SV = "sv"
    NB = "nb"
    EN = "en"


COUNTRY_LANGUAGE = {Country.DK: Language.DA, Country.SE: Language.SV, Country.NO: Language.NB}
# Norwegian comes tagged `no` and `nn` as often as `nb`; Bokmål serves all three
_TAGS = {
    "da": Language.DA,
    "sv": Language.SV,
    "nb": Language.NB,
    "no": Language.NB,
    "nn": Language.NB,
    "en": Language.EN,
}


def negotiate(accept_language: str | None, fallback: Language = Language.EN) -> Language:
    """The best of our languages by the header's q-values; `fallback` when it names none of them."""
    best: tuple[float, Language] | None = None
    for item in (accept_language or "").split(","):
        tag, _, params = item.strip().partition(";")
        language = _TAGS.get(tag.strip().split("-")[0].lower())
        try:
            q = float(params.strip().removeprefix("q=")) if params.strip().startswith("q=") else 1.0
        except ValueError:
            q = 0.0
        if language is not None and q > 0 and (best is None or q > best[0]):
            best = (q, language)
    return best[1] if best else fallback


TEXTS: dict[Language, dict[str, str]] = {
    Language.DA: {
        "title": "Afmeld",
        "ask": "Vil du afmelde {what}?",
        "button": "Ja, afmeld",
        "done": "Du er afmeldt {what}.",
        "expired": "Linket er udløbet. Du kan stadig afmelde på Mine sider.",
        "invalid": "Linket er ikke gyldigt.",
        "service": "Beskeder om dit abonnement får du stadig.",
    },
    Language.SV: {
        "title": "Avregistrera",
        "ask": "Vill du avregistrera dig från {what}?",
        "button": "Ja, avregistrera",
        "done": "Du är avregistrerad från {what}.",
        "expired": "Länken har gått ut. Du kan fortfarande avregistrera dig på Mina sidor.",
        "invalid": "Länken är inte giltig.",
        "service": "Meddelanden om ditt abonnemang får du fortfarande.",
    },
    Language.NB: {
        "title": "Meld av",
        "ask": "Vil du melde deg av {what}?",
        "button": "Ja, meld meg av",
        "done": "Du er meldt av {what}.",
        "expired": "Lenken er utløpt. Du kan fortsatt melde deg av på Min side.",
        "invalid": "Lenken er ikke gyldig.",
        "service": "Meldinger om abonnementet ditt får du fortsatt.",
    },
    Language.EN: {
        "title": "Unsubscribe",
        "ask": "Unsubscribe from {what}?",
        "button": "Yes, unsubscribe",
        "done": "You are unsubscribed from {what}.",
        "expired": "This link has expired. You can still unsubscribe on My pages.",
        "invalid": "This link is not valid.",
        "service": "You will still get messages about your subscription.",
    },
}

PURPOSES: dict[Language, dict[str, str]] = {
    Language.DA: {
        "direct_marketing": "markedsføring",
        "third_party_marketing": "markedsføring fra samarbejdspartnere",
        "existing_customer_offers": "tilbud på produkter du allerede har",
    },
    Language.SV: {
        "direct_marketing": "marknadsföring",
        "third_party_marketing": "marknadsföring från partner",
        "existing_customer_offers": "erbjudanden om produkter du redan har",
    },
    Language.NB: {
        "direct_marketing": "markedsføring",
        "third_party_marketing": "markedsføring fra samarbeidspartnere",
        "existing_customer_offers": "tilbud om produkter du allerede har",
    },
    Language.EN: {
        "direct_marketing": "marketing",
        "third_party_marketing": "marketing from our partners",
        "existing_customer_offers": "offers on products you already have",
    },
}
CHANNELS: dict[Language, dict[Channel, str]] = {
    Language.DA: {
        Channel.EMAIL: "på e-mail",
        Channel.SMS: "på sms",
        Channel.PHONE: "på telefon",
        Channel.POST: "med post",
        Channel.PUSH: "som push-beskeder",
    },
    Language.SV: {
        Channel.EMAIL: "via e-post",
        Channel.SMS: "via sms",
        Channel.PHONE: "via telefon",
        Channel.POST: "via post",
        Channel.PUSH: "som pushnotiser",
    },
    Language.NB: {
        Channel.EMAIL: "på e-post",
        Channel.SMS: "på SMS",
        Channel.PHONE: "på telefon",
        Channel.POST: "i posten",
        Channel.PUSH: "som pushvarsler",
    },
    Language.EN: {
        Channel.EMAIL: "by e-mail",
        Channel.SMS: "by text message",
        Channel.PHONE: "by phone",
        Channel.POST: "by post",
        Channel.PUSH: "as push notifications",
    },
}

# a page of ours: no scripts, no third-party anything, and the token never leaves in a Referer
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
}


def what(language: Language, purpose: str, channel: Channel | None) -> str:
    name = PURPOSES[language].get(purpose, purpose.replace("_", " "))
    return f"{name} {CHANNELS[language][channel]}" if channel else name


def page(language: Language, status: int, message: str, form: bool = False) -> HTMLResponse:
    texts = TEXTS[language]
    button = (
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        f'<button type="submit">{html.escape(texts["button"])}</button></form>'
        if form
        else ""
    )
    body = (
        f'<!doctype html>\n<html lang="{language.value}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(texts['title'])}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
        "button{font-size:1.1rem;padding:.6rem 1.2rem}</style></head>"
        f"<body><main><h1>{html.escape(texts['title'])}</h1><p>{html.escape(message)}</p>{button}"
        f"<p>{html.escape(texts['service'])}</p></main></body></html>\n"
    )
    return HTMLResponse(body, status_code=status, headers=HEADERS)
