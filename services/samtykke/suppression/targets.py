"""What a check names — a subject id, an E.164 phone or an e-mail — parsed, validated and keyed.

Phones and e-mails are normalised exactly as the consent service does and replaced at once by
their keyed hash (`IdentifierHasher`, the same digest as `identifier_hash`), so the clear value
lives only for the length of a parse.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from samtykke.domain.identifiers import IdentifierHasher, InvalidIdentifier, normalise_email, normalise_phone

_SUBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
KINDS = ("subject_id", "phone", "email")


class Target(NamedTuple):
    by_subject: bool  # True: `key` is a subject id; False: a keyed identifier hash
    key: str


class EntryProblem(ValueError):
    """An entry breaks a rule; `field` names the part of the entry (e.g. `phone`)."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(rule)
        self.field = field
        self.rule = rule


class TargetParser:
    def __init__(self, hash_key: bytes) -> None:
        self.keyed = IdentifierHasher(hash_key)

    def parse(self, kind: str, value: Any) -> Target:
        if not isinstance(value, str):
            raise EntryProblem(kind, "must be a string")
        if kind == "subject_id":
            if not _SUBJECT_ID.match(value):
                raise EntryProblem(kind, "must be a subject id (UUID)")
            return Target(True, value.lower())
        try:
            if kind == "phone":
                return Target(False, self.keyed("phone", normalise_phone(value)))
            if kind == "email":
                return Target(False, self.keyed("email", normalise_email(value)))
        except InvalidIdentifier as exc:
            raise EntryProblem(kind, str(exc)) from exc
        raise EntryProblem(kind, f"unknown identifier kind; use one of {', '.join(KINDS)}")

    def parse_entry(self, entry: Any) -> Target:
        """A JSON entry: an object with exactly one of subject_id, phone, email."""
        if not isinstance(entry, dict):
            raise EntryProblem("", "must be an object with one of subject_id, phone, email")
        if len(entry) != 1:
            raise EntryProblem("", "give exactly one of subject_id, phone, email")
        ((kind, value),) = entry.items()
        if kind not in KINDS:
            raise EntryProblem(str(kind)[:40], "unknown field; use one of subject_id, phone, email")
        return self.parse(kind, value)
