"""The suppression gate's memory per indexed subject, and the cost of one check, beside baselines.

Folds N synthetic operator subjects into a `SuppressionIndex` the way the topic feed does, one
event at a time, and measures with tracemalloc what the index holds afterwards. Each subject is
a consumer with a UUID id, a Nordic country, one phone hash, an e-mail hash for every second
one, and 1-5 consents (grants of opt-in purposes carry a valid-until, as the catalog lapses
them). Every string an event carries is a fresh object, as the Avro decoder hands them over.
Printed beside it, from the same run: the bytes of a plain dict of N UUID strings -> None (what
keeping nothing but the ids costs) and the ns of a plain dict lookup per id, next to the ns of a
check by subject id (`decide`), by phone hash (`decide_hash`) and through the gate's bulk path
(`decide_many`, the campaign list), in CPU time. Deterministic: a fixed seed; tracemalloc counts bytes.

    python -m benchmarks gate-memory [--subjects 200000]
"""

from __future__ import annotations

import gc
import random
import time
import tracemalloc
import uuid
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from samtykke.domain.catalog import load_catalog
from samtykke.domain.events import ConsentChanged, SubjectChanged
from samtykke.domain.identifiers import IdentifierHasher
from samtykke.domain.model import SubjectId, SubjectKind
from samtykke.domain.registers import RegisterBook
from samtykke.domain.suppression import Reason, SuppressionRules
from samtykke.suppression.gate import SuppressionGate
from samtykke.suppression.index import SuppressionIndex
from samtykke.suppression.metrics import SuppressionMetrics
from samtykke.suppression.targets import Target

KEY = b"benchmark-identifier-key"
SEED = 11
COUNTRIES = ("NO", "SE", "DK")
CATALOG = load_catalog()
CONSUMER_KEYS = [
    (p, c.value if c else None)
    for p in CATALOG.purposes.values()
    if p.decidable and p.applies_to(SubjectKind.CONSUMER)
    for c in (p.channels[SubjectKind.CONSUMER] or [None])
]
TIMING_ROUNDS = 5


def fresh(text: str) -> str:
    """A new str object with the same text, as decoding a message makes one per event."""
    return text.encode().decode()


def subject_events(n: int, seed: int = SEED) -> Iterator[SubjectChanged | ConsentChanged]:
    """N subjects' events, a subject record and then its consents, the same for the same seed."""
    rng, hasher = random.Random(seed), IdentifierHasher(KEY)
    at = datetime(2026, 6, 1, tzinfo=UTC)
    for i in range(n):
        sid, country = str(uuid.UUID(int=rng.getrandbits(128), version=4)), rng.choice(COUNTRIES)
        email = hasher("email", f"user{i}@example.com") if i % 2 else None
        yield SubjectChanged(
            "e", fresh(sid), fresh("consumer"), fresh(country), None, hasher("phone", f"+4740{i:06d}"), email, None,
            False, 1, at, phone_since=at,
        )  # fmt: skip
        for purpose, channel in rng.sample(CONSUMER_KEYS, rng.randint(1, 5)):
            status = "granted" if rng.random() < 0.8 else "withdrawn"
            lapse = purpose.lapse_days if status == "granted" else None
            yield ConsentChanged(
                "e", fresh(sid), fresh("consumer"), None, fresh(country), fresh(purpose.code),
                fresh(channel) if channel else None, fresh(status), None, rng.randint(1, 3), at, at,
                at + timedelta(days=lapse, seconds=rng.randint(0, 86_400)) if lapse else None,
                "import", "system", "b1", None, None,
            )  # fmt: skip


def build(n: int) -> SuppressionIndex:
    index = SuppressionIndex(SuppressionRules(CATALOG), RegisterBook({"NIX": 60, "ROBINSON": 92, "RESERVASJON": 31}))
    for event in subject_events(n):
        if isinstance(event, SubjectChanged):
            index.apply_subject(event, 0.0)
        else:
            index.apply_consent(event, 0.0)
    return index


def traced(make: Callable[[], object]) -> tuple[object, int]:
    """What `make` returns and the bytes still allocated for it once it has returned."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    made = make()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return made, held


def best_ns(run: Callable[[], int]) -> float:
    """The fastest of a few rounds, in CPU ns of this thread per item: the time other processes run
    in does not count, and what they still cost (caches, the other core) only slows a round."""
    best = float("inf")
    for _ in range(TIMING_ROUNDS):
        started = time.thread_time_ns()
        items = run()
        best = min(best, (time.thread_time_ns() - started) / items)
    return best


def main(subjects: int) -> str:
    index_made, index_bytes = traced(lambda: build(subjects))
    index = index_made if isinstance(index_made, SuppressionIndex) else build(subjects)
    ids = [SubjectId(e.subject_id) for e in subject_events(subjects) if isinstance(e, SubjectChanged)]
    phones = [e.phone_hash for e in subject_events(subjects) if isinstance(e, SubjectChanged) and e.phone_hash]
    plain, plain_bytes = traced(lambda: {fresh(i): None for i in ids})
    assert isinstance(plain, dict)
    random.Random(SEED).shuffle(ids)
    random.Random(SEED).shuffle(phones)
    gc.collect()
    gc.freeze()  # as the service does once caught up: the collector then leaves the index alone

    sms = CATALOG.get("direct_marketing")
    assert sms is not None
    plan = index.rules.plan(sms, "sms")
    phone_plan = index.rules.plan(sms, "phone")  # register-covered in every country: the long path
    at = datetime(2026, 9, 1, tzinfo=UTC).timestamp()
    decide, decide_hash, lookup = index.decide, index.decide_hash, plain.get

    def by_id() -> int:
        for s in ids:
            decide(s, plan, at)
        return len(ids)

    def by_id_register() -> int:
        for s in ids:
            decide(s, phone_plan, at)
        return len(ids)

    def by_hash() -> int:
        for h in phones:
            decide_hash(h, plan, at)
        return len(phones)

    def dict_lookup() -> int:
        for s in ids:
            lookup(s)
        return len(ids)

    gate = SuppressionGate(index, lambda: 0.0, lambda: True, 60.0, False, SuppressionMetrics(CollectorRegistry()))
    targets = [Target(True, s) for s in ids]

    def bulk() -> int:
        snap, tally = gate.snapshot(at), Tally[tuple[Reason, ...]]()
        for _ in gate.decide_many(targets, plan, snap, tally):
            pass
        return len(targets)

    runs = {"lookup": dict_lookup, "id": by_id, "register": by_id_register, "hash": by_hash, "bulk": bulk}
    timings = {name: best_ns(run) for name, run in runs.items()}
    per_subject, per_id = index_bytes / subjects, plain_bytes / subjects
    rows = [
        f"suppression gate memory and check cost: {subjects:,} subjects folded in-process (seed {SEED}; "
        f"1 phone, e-mail for half, 1-5 consents each)",
        f"  index, bytes per subject (tracemalloc)                            {per_subject:8.0f}",
        f"  baseline, same run: dict of N UUID str -> None, bytes per subject {per_id:8.0f}  "
        f"(index = {per_subject / per_id:.1f}x)",
        f"  index for {5_000_000:,} such subjects (linear estimate)           "
        f"{per_subject * 5_000_000 / 2**30:8.2f} GiB",
        f"  check by subject id, direct_marketing/sms, CPU ns               {timings['id']:8.0f}",
        f"  check by subject id, direct_marketing/phone (registers), CPU ns {timings['register']:8.0f}",
        f"  check by phone hash, direct_marketing/sms, CPU ns               {timings['hash']:8.0f}",
        f"  bulk path, gate.decide_many by subject id, CPU ns per id        {timings['bulk']:8.0f}",
        f"  baseline, same run: plain dict lookup per id, CPU ns            {timings['lookup']:8.0f}",
    ]
    return "\n".join(rows)
