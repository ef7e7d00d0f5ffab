"""CRM files for the import tests: subjects with several decisions each, in the order a CRM exports
them (a subject's rows together, in the order they occurred), and bad rows of known kinds, each with
the field and rule the report must name."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from samtykke.domain.catalog import load_catalog
from samtykke.domain.model import SubjectKind

CATALOG = load_catalog()
COLUMNS = (
    "subject_ref",
    "kind",
    "country",
    "account_id",
    "phone",
    "email",
    "national_id",
    "purpose",
    "channel",
    "status",
    "occurred_at",
    "source",
    "notice_version",
    "evidence",
)
# every decidable (purpose, channel) each kind of subject has
KEYS = {
    kind: [
        (p.code, channel.value if channel else "")
        for p in CATALOG.purposes.values()
        if p.decidable and p.applies_to(kind)
        for channel in (p.channels[kind] if p.per_channel else (None,))
    ]
    for kind in SubjectKind
}
STATUSES = ("granted", "granted", "withdrawn", "revoked")
START = datetime(2023, 1, 1, tzinfo=UTC)

# (what is wrong, the cells that make it so, the field and the rule the report must name)
BAD_ROWS: list[tuple[str, dict[str, str], str, str]] = [
    ("unknown purpose", {"purpose": "telepathy"}, "purpose", "unknown purpose: not in the catalog"),
    (
        "channel not offered",
        {"purpose": "third_party_marketing", "channel": "push"},
        "channel",
        "'push' is not a channel of 'third_party_marketing' for a consumer",
    ),
    ("bad status", {"status": "maybe"}, "status", "Input should be 'granted', 'withdrawn' or 'revoked'"),
    (
        "malformed date",
        {"occurred_at": "2024-13-45T00:00:00Z"},
        "occurred_at",
        "Input should be a valid datetime or date, month value is outside expected range of 1-12",
    ),
    ("missing subject_ref", {"subject_ref": ""}, "subject_ref", "Field required"),
    ("bad phone", {"phone": "12"}, "phone", "must be E.164: '+' followed by 8 to 15 digits"),
    ("date without a zone", {"occurred_at": "2024-05-01T10:00:00"}, "occurred_at", "Input should have timezone info"),
    ("future date", {"occurred_at": "2099-01-01T00:00:00Z"}, "occurred_at", "must not be in the future"),
    (
        "channel on a purpose without channels",
        {"purpose": "personalised_offers", "channel": "sms"},
        "channel",
        "'personalised_offers' has no channels: omit channel",
    ),
    (
        "employee without account",
        {"kind": "employee", "purpose": "direct_marketing", "channel": "sms"},
        "account_id",
        "a employee belongs to a business account",
    ),
]


@dataclass
class CrmFile:
    header: tuple[str, ...] = COLUMNS
    rows: list[dict[str, str]] = field(default_factory=list)
    # row number (the line it starts on, the header being 1) -> (field, rule) for each bad row
    bad: dict[int, tuple[str, str]] = field(default_factory=dict)

    def csv_bytes(self) -> bytes:
        out = io.StringIO()
        writer = csv.DictWriter(out, self.header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return out.getvalue().encode("utf-8")

    @property
    def good(self) -> int:
        return len(self.rows) - len(self.bad)

    def row_of(self, subject_ref: str) -> int:
        return next(n for n, row in enumerate(self.rows, start=2) if row["subject_ref"] == subject_ref)


def _subject(n: int, rng: random.Random) -> dict[str, str]:
    kind = rng.choices(list(SubjectKind), weights=(8, 1, 1))[0]
    country = rng.choice(("DK", "SE", "NO"))
    phone = {"DK": f"+45{20000000 + n}", "SE": f"+4670{1000000 + n}", "NO": f"+47{40000000 + n}"}[country]
    cells = {
        "subject_ref": f"CRM-{n:07d}",
        "kind": kind.value,
        "country": country,
        "account_id": f"ACC-{n % 97:04d}" if kind is not SubjectKind.CONSUMER else "",
        "phone": phone if kind is not SubjectKind.BUSINESS else "",
        "email": f"person{n}@example.{country.lower()}",
        # a CPR number for some Danes: a valid date, and unique by its serial
        "national_id": f"{1 + n % 28:02d}{1 + n // 28 % 12:02d}{n % 100:02d}{n % 10_000:04d}"
        if country == "DK"
        else "",
    }
    return cells


def crm_file(good_rows: int, seed: int = 7) -> CrmFile:
    """`good_rows` decisions (1-5 per subject), every one of which the import must record."""
    rng = random.Random(seed)
    crm, n = CrmFile(), 0
    while len(crm.rows) < good_rows:
        n += 1
        subject = _subject(n, rng)
        kind = SubjectKind(subject["kind"])
        at = START + timedelta(days=rng.randrange(0, 600), seconds=rng.randrange(86_400))
        for _ in range(min(rng.randint(1, 5), good_rows - len(crm.rows))):
            purpose, channel = rng.choice(KEYS[kind])
            at += timedelta(days=rng.randrange(1, 60), microseconds=rng.randrange(1_000_000))
            crm.rows.append(
                subject
                | {
                    "purpose": purpose,
                    "channel": channel,
                    "status": rng.choice(STATUSES),
                    "occurred_at": at.isoformat(),
                    "source": rng.choice(("import", "customer_service", "self_service")),
                    "notice_version": rng.choice(("notice-2022", "notice-2024", "")),
                    "evidence": f"crm-archive/{n}/{len(crm.rows)}" if rng.random() < 0.3 else "",
                }
            )
    return crm


def with_bad_rows(crm: CrmFile, each: int = 5, seed: int = 11) -> CrmFile:
    """`each` bad rows of every kind in `BAD_ROWS`, between subjects, spread over the file."""
    rng = random.Random(seed)
    bad = [(what, cells, f, rule) for what, cells, f, rule in BAD_ROWS for _ in range(each)]
    rng.shuffle(bad)
    rows = list(crm.rows)
    # positions where a new subject starts, so no good subject's rows are split
    starts = [i for i in range(1, len(rows)) if rows[i]["subject_ref"] != rows[i - 1]["subject_ref"]]
    for k, (_, cells, _, _) in enumerate(bad):
        template = _subject(900_000 + k, random.Random(k)) | {"kind": "consumer", "account_id": ""}
        template |= {"purpose": "direct_marketing", "channel": "email", "status": "granted"}
        template |= {
            "occurred_at": "2024-03-01T12:00:00+01:00",
            "source": "import",
            "notice_version": "",
            "evidence": "",
        }
        rows.insert(starts[(k + 1) * len(starts) // (len(bad) + 2)] + k, template | cells)
    out = CrmFile(crm.header, rows)
    marks = iter(bad)
    for number, row in enumerate(rows, start=2):
        if row["subject_ref"].startswith("CRM-09") or row["subject_ref"] == "":
            _, _, f, rule = next(marks)
            out.bad[number] = (f, rule)
    return out
