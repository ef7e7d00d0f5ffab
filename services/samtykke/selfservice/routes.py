"""The self-service doors: the portal's API to mint a link, and the pages the link opens.

`POST /v1/self-service/links` (scope `selfservice:mint`) gives the operator's portal a link for one
subject and one page, valid for minutes. `GET /s/{token}` swaps the link for a session cookie and
redirects to `/my-consents`; `GET /my-consents` shows the page; `POST /my-consents` records one toggle
(CSRF-checked) and redirects back, so a reload never submits twice.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from samtykke.adapters.auth import Principal, require
from samtykke.adapters.settings import Settings
from samtykke.consent.api import Service
from samtykke.consent.errors import Conflict, RulesBroken, SubjectNotFound
from samtykke.consent.schemas import ERROR_RESPONSES
from samtykke.consent.service import ConsentService
from samtykke.consent.unsubscribe_pages import COUNTRY_LANGUAGE, Language, negotiate
from samtykke.domain.consent import RuleViolation
from samtykke.domain.model import Country

from .access import ExpiredAccess, ForgedAccess, Grant, Page, SelfServiceAccess
from .pages import message, render
from .texts import NOTICE_VERSION
from .toggles import Flip, UnknownToggle, flip
from .view import read_page

log = logging.getLogger(__name__)
SESSION_COOKIE = "samtykke_selfservice"
LANGUAGE_COOKIE = "samtykke_lang"
PAGE_PATH = "/my-consents"

api = APIRouter(prefix="/v1", responses=ERROR_RESPONSES, tags=["self-service"])
public = APIRouter(tags=["self-service"], include_in_schema=False)


class SelfServiceLinkIn(BaseModel):
    subject_id: UUID
    page: Page = Field(
        description="`consumer` or `employee`: the subject's own page; `company`: a business subject's page "
        "for its company admin. Must match the subject's kind."
    )
    actor_ref: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="The portal's reference of the person (e.g. the company admin's user id); kept in the ledger.",
    )


class SelfServiceLinkOut(BaseModel):
    url: str
    expires_at: datetime


@api.post("/self-service/links", response_model=SelfServiceLinkOut, summary="Mint a short-lived self-service link")
async def mint_link(
    body: SelfServiceLinkIn, svc: Service, request: Request, _: Principal = Depends(require("selfservice:mint"))
) -> SelfServiceLinkOut:
    subject = await svc.subject(str(body.subject_id))
    if subject.erased_at is not None:
        raise Conflict("the subject is erased; there is no page to show")
    if subject.kind is not body.page.subject_kind:
        raise RulesBroken([RuleViolation("page", f"a {subject.kind.value} has no '{body.page.value}' page")])
    state = request.app.state
    expires_at = datetime.now(UTC) + timedelta(minutes=state.selfservice_link_minutes)
    token = state.selfservice_access.mint_link(Grant(subject.subject_id, body.page, expires_at, body.actor_ref))
    return SelfServiceLinkOut(url=f"{state.public_base_url}/s/{token}", expires_at=expires_at)


def _access(request: Request) -> SelfServiceAccess:
    access: SelfServiceAccess = request.app.state.selfservice_access
    return access


async def _language(svc: ConsentService, request: Request, session: Grant | None) -> Language:
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    if chosen in Language.__members__.values():
        return Language(chosen)
    fallback = Language.EN
    if session is not None:
        fallback = COUNTRY_LANGUAGE.get(Country((await svc.subject(session.subject_id)).country), Language.EN)
    return negotiate(request.headers.get("Accept-Language", "")[:500], fallback)


def _session(request: Request) -> Grant | None:
    try:
        return _access(request).open_session(request.cookies.get(SESSION_COOKIE, ""), datetime.now(UTC))
    except (ForgedAccess, ExpiredAccess):
        return None


@public.get("/s/{token}")
async def open_link(token: str, svc: Service, request: Request) -> Response:
    now = datetime.now(UTC)
    try:
        link = _access(request).open_link(token, now)
        await svc.subject(link.subject_id)
    except ExpiredAccess:
        return message(await _language(svc, request, None), "expired", 410)
    except (ForgedAccess, SubjectNotFound):
        return message(await _language(svc, request, None), "invalid", 404)
    expires_at = now + timedelta(minutes=request.app.state.selfservice_session_minutes)
    _, cookie = _access(request).start_session(link, expires_at)
    response = RedirectResponse(PAGE_PATH, status_code=303, headers={"Referrer-Policy": "no-referrer"})
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int((expires_at - now).total_seconds()),
        httponly=True,
        secure=request.app.state.public_base_url.startswith("https://"),
        samesite="lax",
    )
    return response


@public.get(PAGE_PATH)
async def show(svc: Service, request: Request, lang: str | None = None, saved: int | None = None) -> Response:
    if lang in Language.__members__.values():
        response = RedirectResponse(PAGE_PATH, status_code=303)
        response.set_cookie(LANGUAGE_COOKIE, str(lang), max_age=365 * 86400, samesite="lax")
        return response
    session = _session(request)
    if session is None:
        return message(await _language(svc, request, None), "session", 401)
    language = await _language(svc, request, session)
    try:
        view = await read_page(svc, request.app.state.pool, session.subject_id, session.page)
    except SubjectNotFound:
        return message(language, "invalid", 404)
    flash = "saved" if saved == 1 else "stale_form" if saved == 0 else None
    return render(language, view, _access(request).csrf_token(session), flash)


@public.post(PAGE_PATH)
async def change(svc: Service, request: Request) -> Response:
    session = _session(request)
    if session is None:
        return message(await _language(svc, request, None), "session", 401)
    form = await request.form()
    language = await _language(svc, request, session)
    if not _access(request).csrf_ok(session, str(form.get("csrf", ""))):
        return message(language, "refused", 403)
    shown = str(form.get("lang", ""))
    if form.get("notice") != NOTICE_VERSION or shown not in Language.__members__.values():
        # the page changed since it was shown: record nothing the subject has not seen
        return RedirectResponse(f"{PAGE_PATH}?saved=0", status_code=303)
    correlation_id = "ss-" + hashlib.sha256(session.session_id.encode()).hexdigest()[:32]
    try:
        recorded = await flip(
            svc, session, Flip.parse(str(form.get("toggle", ""))), shown, NOTICE_VERSION, correlation_id
        )
    except UnknownToggle:
        return message(language, "refused", 400)
    except (RulesBroken, Conflict) as exc:
        log.info("self-service change refused (%s): %s", correlation_id, type(exc).__name__)
        return message(language, "refused", 409)
    log.info("self-service %s: %d change(s) recorded", correlation_id, recorded)
    return RedirectResponse(f"{PAGE_PATH}?saved=1", status_code=303)


def install(app: FastAPI, settings: Settings) -> None:
    app.state.selfservice_access = SelfServiceAccess(settings.selfservice_key)
    app.state.selfservice_link_minutes = settings.selfservice_link_minutes
    app.state.selfservice_session_minutes = settings.selfservice_session_minutes
    app.state.public_base_url = settings.public_base_url
    app.include_router(api)
    app.include_router(public)
