"""SMS keywords: the webhook an SMS gateway calls for every text sent to the marketing short code.

The gateway signs each request: `X-Samtykke-Timestamp` (Unix seconds) and `X-Samtykke-Signature`
(`sha256=` + hex HMAC-SHA256 over `<timestamp>.<raw body>` with `sms_webhook_secret`); a request older
than `sms_webhook_max_age_seconds` is a replay. STOP withdraws SMS marketing (`domain.keywords`), START
undoes a recent STOP, HELP explains; the answer carries the text the gateway sends back. The phone
number is matched by its keyed hash and never logged: the gateway's message id is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from samtykke.adapters.problems import problem
from samtykke.adapters.settings import Settings
from samtykke.domain.consent import RuleViolation
from samtykke.domain.identifiers import InvalidIdentifier, normalise_phone
from samtykke.domain.keywords import Keyword, country_of, may_restart, parse_keyword, sms_marketing
from samtykke.domain.model import ConsentAction, Source, SubjectKind

from .api import Service
from .errors import Conflict, RulesBroken
from .ports import IdentifierKind
from .schemas import ERROR_RESPONSES
from .service import ConsentService, NewSubject
from .sms_replies import Reply, reply_text
from .unsubscribe_pages import COUNTRY_LANGUAGE, Language
from .withdrawals import Door, decide, last_changes

log = logging.getLogger(__name__)
CLIENT_ID = "sms-keyword"
SIGNATURE_HEADER = "X-Samtykke-Signature"
TIMESTAMP_HEADER = "X-Samtykke-Timestamp"

router = APIRouter(prefix="/v1", tags=["sms"], responses=ERROR_RESPONSES)


class InboundSms(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    sender: str = Field(alias="from", min_length=1, max_length=32, description="The sender's number (E.164)")
    to: str = Field(max_length=32, description="The short code it was sent to")
    text: str = Field(max_length=1600)
    message_id: str = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")


class SmsReplyOut(BaseModel):
    message_id: str
    keyword: Keyword | None
    reply: str | None = Field(description="The text to send back to the sender; null: send nothing")
    changes: int = Field(description="Consent changes recorded (0 when the state already said so)")


def signed(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _refusal(request: Request, body: bytes) -> str | None:
    """Why the request is not the gateway's (None: it is)."""
    timestamp, signature = request.headers.get(TIMESTAMP_HEADER, ""), request.headers.get(SIGNATURE_HEADER, "")
    if not timestamp.isdigit() or len(timestamp) > 12:
        return f"{TIMESTAMP_HEADER} must be Unix seconds"
    if abs(time.time() - int(timestamp)) > request.app.state.sms_max_age_seconds:
        return f"{TIMESTAMP_HEADER} is too far from now (a replay?)"
    if not hmac.compare_digest(signature.encode(), signed(request.app.state.sms_secret, timestamp, body).encode()):
        return f"{SIGNATURE_HEADER} does not match the body"
    return None


def _parse(content_type: str, body: bytes) -> InboundSms:
    try:
        if content_type.startswith("application/json"):
            fields: Any = json.loads(body)
        else:  # form-encoded, as most gateways post
            fields = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        return InboundSms.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError([e | {"loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise RulesBroken([RuleViolation("body", "must be JSON or form-encoded UTF-8")]) from exc


@router.post(
    "/sms/inbound",
    response_model=SmsReplyOut,
    summary="A text sent to the marketing short code (signed by the SMS gateway)",
    responses={401: {"description": "Missing or wrong signature, or too old a timestamp"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": InboundSms.model_json_schema(by_alias=True)}
                for media in ("application/x-www-form-urlencoded", "application/json")
            },
        }
    },
)
async def inbound(request: Request, svc: Service) -> Any:
    body = await request.body()
    if (refused := _refusal(request, body)) is not None:
        return problem(401, "unauthorized", [(SIGNATURE_HEADER, refused)])
    sms = _parse(request.headers.get("content-type", ""), body)
    try:
        number = normalise_phone(sms.sender)
    except InvalidIdentifier as exc:
        raise RulesBroken([RuleViolation("from", str(exc))]) from exc
    keyword = parse_keyword(sms.text)
    state = request.app.state
    country = country_of(number)
    language = COUNTRY_LANGUAGE[country] if country else Language.EN
    reply, changes = await answer(svc, keyword, number, sms.message_id, state.sms_restart, state.sms_notice)
    log.info("sms %r: keyword %s, %d change(s)", sms.message_id, keyword or "none", changes)
    text = reply_text(language, reply, state.sms_restart.days) if reply else None
    return JSONResponse(
        SmsReplyOut(message_id=sms.message_id, keyword=keyword, reply=text, changes=changes).model_dump()
    )


async def answer(
    svc: ConsentService, keyword: Keyword | None, number: str, message_id: str, restart: timedelta, notice: str
) -> tuple[Reply | None, int]:
    if keyword is None:
        return None, 0
    if keyword is Keyword.HELP:
        return Reply.HELP, 0
    country = country_of(number)
    subjects = await svc.find_subjects(IdentifierKind.PHONE, number, country)
    evidence = f"sms message {message_id}"
    if keyword is Keyword.STOP:
        if not subjects and country is not None:
            # not a subject yet: registered with the number alone, so the withdrawal is on record and
            # the gate blocks the number by it (it would block an unknown subject anyway)
            row = await svc.register_subject(NewSubject(SubjectKind.CONSUMER, country, None, number, None, None))
            subjects = [row.subject_id]
        door = Door(Source.SMS_KEYWORD, CLIENT_ID, evidence_ref=evidence)
        return Reply.STOPPED, await _each(svc, subjects, ConsentAction.WITHDRAW, door, None)
    door = Door(Source.SMS_KEYWORD, CLIENT_ID, evidence_ref=evidence, notice_version=notice)
    changes = await _each(svc, subjects, ConsentAction.GRANT, door, restart)
    return (Reply.STARTED if changes else Reply.NOT_STARTED), changes


async def _each(
    svc: ConsentService, subjects: list[str], action: ConsentAction, door: Door, restart: timedelta | None
) -> int:
    """Apply `action` to every subject holding the number (a recycled number may have had several)."""
    changes = 0
    for subject_id in subjects:
        row = await svc.subject(subject_id)
        targets = sms_marketing(svc.catalog, row.kind)
        if restart is not None:
            last, _ = await last_changes(svc, subject_id)
            now = datetime.now(UTC)
            targets = [t for t in targets if may_restart(last.get(t), now, restart)]
        try:
            changes += await decide(svc, subject_id, action, targets, door) if targets else 0
        except Conflict:  # erased: stays suppressed, nothing to record
            continue
    return changes


def install(app: FastAPI, settings: Settings) -> None:
    app.state.sms_secret = settings.sms_webhook_secret
    app.state.sms_max_age_seconds = settings.sms_webhook_max_age_seconds
    app.state.sms_restart = timedelta(days=settings.sms_restart_days)
    app.state.sms_notice = settings.sms_notice_version
    app.include_router(router)
