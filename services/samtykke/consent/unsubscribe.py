"""RFC 8058 one-click unsubscribe: minting links for marketing mails, and the public door they open.

`POST /v1/unsubscribe-links` (scope `consent:write`) gives the sending platform a link and the two
headers to put on the mail. `POST /u/{token}` withdraws the consent it names, with no credential but
the token; `GET /u/{token}` only shows a page with a button, so a scanner following links changes
nothing. A withdrawal goes through `ConsentService.record` as source `unsubscribe_link`, actor
`subject`, credential `unsubscribe-link`.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from samtykke.adapters.auth import Principal, require
from samtykke.adapters.settings import Settings
from samtykke.domain.consent import Decision, RuleViolation, check_decision
from samtykke.domain.model import ActorKind, Channel, ConsentAction, ConsentStatus, Country, Source

from .api import Service
from .errors import Conflict, RulesBroken, SubjectNotFound
from .schemas import ERROR_RESPONSES
from .service import ConsentService
from .unsubscribe_pages import COUNTRY_LANGUAGE, TEXTS, Language, negotiate, page, what
from .unsubscribe_tokens import ExpiredToken, ForgedToken, UnsubscribeTarget, UnsubscribeTokens
from .withdrawals import Door, decide

log = logging.getLogger(__name__)
CLIENT_ID = "unsubscribe-link"
ONE_CLICK = "List-Unsubscribe=One-Click"

api = APIRouter(prefix="/v1", responses=ERROR_RESPONSES, tags=["unsubscribe"])
public = APIRouter(tags=["unsubscribe"])
AcceptLanguage = Header(None, alias="Accept-Language", max_length=500)


class UnsubscribeLinkIn(BaseModel):
    subject_id: UUID
    purpose: str = Field(min_length=1, max_length=100, examples=["direct_marketing"])
    channel: Channel | None = Field(None, examples=["email"])


class UnsubscribeLinkOut(BaseModel):
    url: str
    expires_at: datetime
    headers: dict[str, str] = Field(
        description="Put both on the mail, covered by its DKIM signature: `List-Unsubscribe` and "
        "`List-Unsubscribe-Post`."
    )


@api.post("/unsubscribe-links", response_model=UnsubscribeLinkOut, summary="Mint a one-click unsubscribe link")
async def mint_link(
    body: UnsubscribeLinkIn, svc: Service, request: Request, _: Principal = Depends(require("consent:write"))
) -> UnsubscribeLinkOut:
    subject = await svc.subject(str(body.subject_id))
    if subject.erased_at is not None:
        raise Conflict("the subject is erased and stays suppressed; there is nothing to unsubscribe from")
    now = datetime.now(UTC)
    probe = Decision(body.purpose, body.channel, ConsentAction.WITHDRAW, now)
    broken = check_decision(svc.catalog, subject.kind, ActorKind.SUBJECT, probe, "body", now, None)
    if broken:
        raise RulesBroken([RuleViolation(v.field.replace("body.", ""), v.rule) for v in broken])
    state = request.app.state
    expires_at = now + timedelta(days=state.unsubscribe_link_days)
    token = state.unsubscribe_tokens.mint(UnsubscribeTarget(subject.subject_id, body.purpose, body.channel, expires_at))
    url = f"{state.public_base_url}/u/{token}"
    return UnsubscribeLinkOut(
        url=url,
        expires_at=expires_at,
        headers={"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": ONE_CLICK},
    )


async def _open(
    svc: ConsentService, request: Request, token: str, accept_language: str | None
) -> tuple[UnsubscribeTarget, Language] | HTMLResponse:
    """The link's target and the page language, or the page saying why the link is no good."""
    asked = negotiate(accept_language)
    try:
        target = request.app.state.unsubscribe_tokens.open(token, datetime.now(UTC))
        subject = await svc.subject(target.subject_id)
    except ExpiredToken:
        return page(asked, 410, TEXTS[asked]["expired"])
    except (ForgedToken, SubjectNotFound):
        return page(asked, 404, TEXTS[asked]["invalid"])
    return target, negotiate(accept_language, COUNTRY_LANGUAGE.get(Country(subject.country), Language.EN))


@public.get("/u/{token}", response_class=HTMLResponse, summary="Ask before unsubscribing (a GET never changes)")
async def confirm(
    token: str, svc: Service, request: Request, accept_language: str | None = AcceptLanguage
) -> HTMLResponse:
    opened = await _open(svc, request, token, accept_language)
    if isinstance(opened, HTMLResponse):
        return opened
    target, language = opened
    texts, subject = TEXTS[language], what(language, target.purpose, target.channel)
    current = {c.record.key: c.record.status for c in await svc.current(target.subject_id)}
    if current.get((target.purpose, target.channel.value if target.channel else None)) is ConsentStatus.WITHDRAWN:
        return page(language, 200, texts["done"].format(what=subject))
    return page(language, 200, texts["ask"].format(what=subject), form=True)


@public.post(
    "/u/{token}",
    response_class=HTMLResponse,
    summary="One-click unsubscribe (RFC 8058): body `List-Unsubscribe=One-Click`, no credential",
    responses={404: {"description": "Not a link we made"}, 410: {"description": "The link has expired"}},
)
async def unsubscribe(
    token: str, svc: Service, request: Request, accept_language: str | None = AcceptLanguage
) -> HTMLResponse:
    # the body is not required: the POST to the link is the click (RFC 8058 senders use either encoding)
    opened = await _open(svc, request, token, accept_language)
    if isinstance(opened, HTMLResponse):
        return opened
    target, language = opened
    door = Door(
        Source.UNSUBSCRIBE_LINK,
        CLIENT_ID,
        evidence_ref=f"unsubscribe link, page language {language.value}",
        # the same link's clicks share it; the token itself cannot be recovered from it
        correlation_id="ul-" + hashlib.sha256(token.encode()).hexdigest()[:32],
    )
    try:
        recorded = await decide(
            svc, target.subject_id, ConsentAction.WITHDRAW, [(target.purpose, target.channel)], door
        )
    except Conflict:  # erased: suppressed for good, which is what the click asked for
        recorded = 0
    log.info("unsubscribe link %s: %d change(s) recorded", door.correlation_id, recorded)
    return page(language, 200, TEXTS[language]["done"].format(what=what(language, target.purpose, target.channel)))


def install(app: FastAPI, settings: Settings) -> None:
    app.state.unsubscribe_tokens = UnsubscribeTokens(
        settings.unsubscribe_token_key, settings.unsubscribe_token_retired_keys
    )
    app.state.unsubscribe_link_days = settings.unsubscribe_link_days
    app.state.public_base_url = settings.public_base_url
    app.include_router(api)
    app.include_router(public)
