"""The purpose catalog: what can be consented to, on which basis, by whom, and for how long.

The catalog is data (`purposes.json`, versioned); this module gives it types and rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .model import Channel, Mechanism, PurposeCode, SubjectKind


@dataclass(frozen=True, slots=True)
class Purpose:
    code: PurposeCode
    title: str
    legal_basis: str
    mechanism: Mechanism
    per_channel: bool
    channels: dict[SubjectKind, tuple[Channel, ...]]
    data_categories: tuple[str, ...]
    lapse_days: int | None
    retention_days: int | None
    marketing: bool
    traffic_data: bool

    @property
    def decidable(self) -> bool:
        """Non-consent bases (contract, legal duty) are shown but never decided on."""
        return self.mechanism is not Mechanism.NONE

    def applies_to(self, kind: SubjectKind) -> bool:
        return kind in self.channels

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "title": self.title,
            "legal_basis": self.legal_basis,
            "mechanism": self.mechanism.value,
            "per_channel": self.per_channel,
            "channels": {k.value: [c.value for c in v] for k, v in self.channels.items()},
            "data_categories": list(self.data_categories),
            "lapse_days": self.lapse_days,
            "retention_days": self.retention_days,
            "marketing": self.marketing,
            "traffic_data": self.traffic_data,
        }


@dataclass(frozen=True, slots=True)
class PurposeCatalog:
    version: str
    purposes: dict[PurposeCode, Purpose]

    def get(self, code: str) -> Purpose | None:
        return self.purposes.get(PurposeCode(code))

    def traffic_data_purposes(self) -> list[Purpose]:
        return [p for p in self.purposes.values() if p.traffic_data and p.decidable]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PurposeCatalog:
        purposes = {}
        for item in raw["purposes"]:
            purpose = Purpose(
                code=PurposeCode(item["code"]),
                title=item["title"],
                legal_basis=item["legal_basis"],
                mechanism=Mechanism(item["mechanism"]),
                per_channel=bool(item["per_channel"]),
                channels={
                    SubjectKind(kind): tuple(Channel(c) for c in chans) for kind, chans in item["channels"].items()
                },
                data_categories=tuple(item["data_categories"]),
                lapse_days=item["lapse_days"],
                retention_days=item["retention_days"],
                marketing=bool(item["marketing"]),
                traffic_data=bool(item["traffic_data"]),
            )
            purposes[purpose.code] = purpose
        return cls(version=str(raw["version"]), purposes=purposes)


def load_catalog() -> PurposeCatalog:
    """The catalog shipped with the package (seeds)."""
    text = resources.files(__package__).joinpath("purposes.json").read_text("utf-8")
    return PurposeCatalog.from_dict(json.loads(text))
