"""National do-not-contact registers: which sends they cover, snapshots, and freshness.

A register file is a snapshot published on a date; a send may rely on it only for a
freshness window after that date (NIX: two months). Snapshots hold keyed hashes of
normalised phone numbers, never the numbers themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from .model import Channel, Country


class Register(StrEnum):
    NIX = "NIX"  # NIX-Telefon, Sweden
    ROBINSON = "ROBINSON"  # Robinsonlisten, Denmark
    RESERVASJON = "RESERVASJON"  # Reservasjonsregisteret, Norway


class Standing(StrEnum):
    LISTED = "listed"
    CLEAR = "clear"
    STALE = "stale"  # no snapshot, or one past its freshness window: we cannot tell


# Which subjects (by country) and which marketing channels each register covers.
REGISTER_SCOPE: dict[Register, tuple[Country, frozenset[Channel]]] = {
    Register.NIX: (Country.SE, frozenset({Channel.PHONE})),
    Register.ROBINSON: (Country.DK, frozenset({Channel.PHONE, Channel.POST})),
    Register.RESERVASJON: (Country.NO, frozenset({Channel.PHONE, Channel.POST})),
}
REGISTER_COUNTRY: dict[Register, Country] = {r: scope[0] for r, scope in REGISTER_SCOPE.items()}

_COVERING: dict[tuple[str, str], tuple[Register, ...]] = {}
for _register, (_country, _channels) in REGISTER_SCOPE.items():
    for _channel in _channels:
        _COVERING[(_country.value, _channel.value)] = (*_COVERING.get((_country.value, _channel.value), ()), _register)


def registers_covering(country: str, channel: str | None) -> tuple[Register, ...]:
    """The registers a marketing send to a subject of `country` on `channel` must respect."""
    if channel is None:
        return ()
    return _COVERING.get((country, channel), ())


@dataclass(frozen=True, slots=True)
class RegisterSnapshot:
    register: Register
    published: date
    phone_hashes: frozenset[str]

    def fresh_until(self, freshness_days: int) -> float:
        """Epoch seconds at which this snapshot stops being usable (UTC midnight)."""
        end = datetime.combine(self.published + timedelta(days=freshness_days), time.min, tzinfo=UTC)
        return end.timestamp()


@dataclass(frozen=True, slots=True)
class RegisterEvidence:
    """Which snapshot a decision relied on, and what it said: proof for the send."""

    register: Register
    standing: Standing
    published: date | None
    fresh_until: float | None


@dataclass(slots=True)
class RegisterBook:
    """The snapshot in use per register, with each register's freshness window in days."""

    freshness_days: dict[str, int]
    snapshots: dict[Register, RegisterSnapshot] = field(default_factory=dict)

    def install(self, snapshot: RegisterSnapshot) -> RegisterSnapshot | None:
        """Use `snapshot` from now on; returns the one it replaces."""
        previous = self.snapshots.get(snapshot.register)
        self.snapshots[snapshot.register] = snapshot
        return previous

    def fresh_until(self, register: Register) -> float | None:
        snapshot = self.snapshots.get(register)
        if snapshot is None:
            return None
        return snapshot.fresh_until(self.freshness_days.get(register.value, 0))

    def is_fresh(self, register: Register, at: float) -> bool:
        until = self.fresh_until(register)
        return until is not None and at < until

    def evidence(self, register: Register, phone_hash: str | None, at: float) -> RegisterEvidence:
        snapshot = self.snapshots.get(register)
        if phone_hash is None:
            # register files list phone numbers only: a subject without one cannot be listed
            return RegisterEvidence(register, Standing.CLEAR, None, None)
        if snapshot is None:
            return RegisterEvidence(register, Standing.STALE, None, None)
        until = self.fresh_until(register)
        if until is None or at >= until:
            return RegisterEvidence(register, Standing.STALE, snapshot.published, until)
        standing = Standing.LISTED if phone_hash in snapshot.phone_hashes else Standing.CLEAR
        return RegisterEvidence(register, standing, snapshot.published, until)
