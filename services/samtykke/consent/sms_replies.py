"""What the marketing short code texts back, in the language of the number's country.

Short on purpose: one SMS segment where the alphabet allows. The replies are the notice a START
re-grant is recorded under (`sms_notice_version`): change a text, raise that version.
"""

from __future__ import annotations

from enum import StrEnum

from .unsubscribe_pages import Language


class Reply(StrEnum):
    STOPPED = "stopped"
    STARTED = "started"
    NOT_STARTED = "not_started"
    HELP = "help"


REPLIES: dict[Language, dict[Reply, str]] = {
    Language.DA: {
        Reply.STOPPED: "Du modtager ikke længere markedsføring på sms. Beskeder om dit abonnement får du stadig. "
        "Fortrudt? Send START inden for {days} dage.",
        Reply.STARTED: "Du modtager igen markedsføring på sms. Send STOP for at afmelde.",
        Reply.NOT_STARTED: "Vi kan ikke tilmelde dig på sms. Giv samtykke på Mine sider.",
        Reply.HELP: "Send STOP for at afmelde markedsføring på sms, START for at fortryde en afmelding. "
        "Beskeder om dit abonnement får du altid.",
    },
    Language.SV: {
        Reply.STOPPED: "Du får inte längre marknadsföring via sms. Meddelanden om ditt abonnemang får du "
        "fortfarande. Ångrar du dig? Skicka START inom {days} dagar.",
        Reply.STARTED: "Du får marknadsföring via sms igen. Skicka STOPP för att avregistrera dig.",
        Reply.NOT_STARTED: "Vi kan inte registrera dig via sms. Ge ditt samtycke på Mina sidor.",
        Reply.HELP: "Skicka STOPP för att stoppa marknadsföring via sms, START för att ångra ett stopp. "
        "Meddelanden om ditt abonnemang får du alltid.",
    },
    Language.NB: {
        Reply.STOPPED: "Du får ikke lenger markedsføring på SMS. Meldinger om abonnementet ditt får du fortsatt. "
        "Angrer du? Send START innen {days} dager.",
        Reply.STARTED: "Du får markedsføring på SMS igjen. Send STOPP for å melde deg av.",
        Reply.NOT_STARTED: "Vi kan ikke melde deg på via SMS. Gi samtykke på Min side.",
        Reply.HELP: "Send STOPP for å stoppe markedsføring på SMS, START for å angre en avmelding. "
        "Meldinger om abonnementet ditt får du alltid.",
    },
    Language.EN: {
        Reply.STOPPED: "You will get no more marketing texts. Messages about your subscription still come. "
        "Changed your mind? Text START within {days} days.",
        Reply.STARTED: "You will get marketing texts again. Text STOP to unsubscribe.",
        Reply.NOT_STARTED: "We cannot sign you up by text. Give your consent on My pages.",
        Reply.HELP: "Text STOP to stop marketing texts, START to undo a STOP. "
        "Messages about your subscription always come.",
    },
}


def reply_text(language: Language, reply: Reply, restart_days: int) -> str:
    text = REPLIES[language][reply]
    if reply is Reply.STOPPED and restart_days == 0:  # no START to offer
        text = text.rsplit(".", 2)[0] + "."
    return text.format(days=restart_days)
