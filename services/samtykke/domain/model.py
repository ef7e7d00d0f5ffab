"""Vocabulary of the consent domain: typed ids and the closed sets the contracts use."""

from __future__ import annotations

from enum import StrEnum
from typing import NewType

# the opaque id a subject is known by downstream; typed where a keyed identifier hash could be
# taken for it (the suppression index, its change feed, projection rows)
SubjectId = NewType("SubjectId", str)
PurposeCode = NewType("PurposeCode", str)


class SubjectKind(StrEnum):
    CONSUMER = "consumer"
    EMPLOYEE = "employee"
    BUSINESS = "business"


class Country(StrEnum):
    DK = "DK"
    SE = "SE"
    NO = "NO"


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    PHONE = "phone"
    POST = "post"
    PUSH = "push"


class ConsentStatus(StrEnum):
    GRANTED = "granted"
    WITHDRAWN = "withdrawn"  # by the subject
    REVOKED = "revoked"  # by someone else, e.g. a company admin
    EXPIRED = "expired"  # lapsed unused


class ConsentAction(StrEnum):
    GRANT = "grant"
    WITHDRAW = "withdraw"
    REVOKE = "revoke"


class Mechanism(StrEnum):
    OPT_IN = "opt_in"  # blocked unless granted
    OPT_OUT = "opt_out"  # allowed unless objected
    NONE = "none"  # not a consent basis: shown for transparency only


class Source(StrEnum):
    SELF_SERVICE = "self_service"
    CUSTOMER_SERVICE = "customer_service"
    APP = "app"
    IMPORT = "import"
    COMPANY_ADMIN = "company_admin"
    SYSTEM = "system"
    USAGE_REPORT = "usage_report"
    UNSUBSCRIBE_LINK = "unsubscribe_link"  # RFC 8058 one-click link in a marketing e-mail
    SMS_KEYWORD = "sms_keyword"  # STOP / START texted to the marketing short code


class ActorKind(StrEnum):
    SUBJECT = "subject"
    AGENT = "agent"
    COMPANY_ADMIN = "company_admin"
    SYSTEM = "system"


ACTION_STATUS: dict[ConsentAction, ConsentStatus] = {
    ConsentAction.GRANT: ConsentStatus.GRANTED,
    ConsentAction.WITHDRAW: ConsentStatus.WITHDRAWN,
    ConsentAction.REVOKE: ConsentStatus.REVOKED,
}
