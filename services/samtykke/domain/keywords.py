"""SMS keywords: what a text sent to the marketing short code asks for, and which consents it touches.

Pure rules shared by the SMS webhook and its tests. A message is read by its first word, folded
(case, width, accents as typed) and stripped of punctuation, so `Stopp!`, ` stop ` and `STOP tack`
all stop; a word we do not know asks for nothing (the gateway gets no reply to send).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from .catalog import PurposeCatalog
from .model import Channel, ConsentStatus, Country, PurposeCode, Source, SubjectKind


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


# The forms people text in Denmark, Sweden and Norway (and English, which all three see on short codes).
_STOP_WORDS = {
    "en": {"stop", "stopall", "unsubscribe"},
    "da": {"stop", "afmeld", "afmelding", "frameld"},
    "sv": {"stopp", "avsluta", "avanmäl", "avanmal", "sluta"},
    "nb": {"stopp", "avslutt", "avmeld", "avmelding", "stans"},
}
KEYWORDS: dict[Keyword, frozenset[str]] = {
    Keyword.STOP: frozenset().union(*_STOP_WORDS.values()),
    Keyword.START: frozenset({"start", "starta", "ja", "yes"}),
    Keyword.HELP: frozenset({"help", "hjælp", "hjaelp", "hjälp", "hjalp", "hjelp", "info"}),
}
_BY_WORD = {word: keyword for keyword, words in KEYWORDS.items() for word in words}
_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$")

# Country calling codes of the countries a subject can belong to (the number decides, not the gateway).
CALLING_CODES: dict[str, Country] = {"+45": Country.DK, "+46": Country.SE, "+47": Country.NO}


def parse_keyword(text: str) -> Keyword | None:
    """The keyword a message starts with, whatever its case, width, spacing or trailing punctuation."""
    words = unicodedata.normalize("NFKC", text).casefold().split()
    if not words:
        return None
    return _BY_WORD.get(_PUNCTUATION.sub("", words[0]))


def country_of(e164: str) -> Country | None:
    """The country of a number in E.164 form, if it is one of ours."""
    return next((country for code, country in CALLING_CODES.items() if e164.startswith(code)), None)


def sms_marketing(catalog: PurposeCatalog, kind: SubjectKind) -> list[tuple[PurposeCode, Channel]]:
    """What a bare STOP covers: every marketing purpose the subject can hold on the SMS channel.

    The short code does not say which purpose a text was sent under, and a person who answers STOP
    expects no more marketing texts at all, the operator's own and third parties' alike (and objects to
    the existing-customer offers too). Service messages rest on the contract, not on consent: untouched.
    A business's purposes are decided by its company admin, never by a text from one phone.
    """
    if kind is SubjectKind.BUSINESS:
        return []
    return [
        (purpose.code, Channel.SMS)
        for purpose in catalog.purposes.values()
        if purpose.decidable and purpose.marketing and Channel.SMS in purpose.channels.get(kind, ())
    ]


@dataclass(frozen=True, slots=True)
class LastChange:
    """How one (subject, purpose, channel) was last recorded."""

    status: ConsentStatus
    source: Source
    recorded_at: datetime


def may_restart(last: LastChange | None, now: datetime, window: timedelta) -> bool:
    """START undoes a STOP sent by text within `window`, and nothing else.

    A grant needs the person to have seen what they agree to; a keyword reply cannot show a notice.
    Undoing one's own recent STOP restores the consent given before under its notice, so only that is
    allowed; everything else is granted where a notice can be shown (self-service, customer service).
    """
    return (
        last is not None
        and last.status is ConsentStatus.WITHDRAWN
        and last.source is Source.SMS_KEYWORD
        and now - last.recorded_at <= window
    )
