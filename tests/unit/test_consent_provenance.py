"""Which ledger row an answer about an instant cites: the row that set the state, and the decision in force."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random

from hypothesis import given
from hypothesis import strategies as st

from samtykke.domain.catalog import load_catalog
from samtykke.domain.consent import (
    ConsentRecord,
    Decision,
    apply_decision,
    apply_usage,
    expire,
    is_decision,
    latest_rows,
)
from samtykke.domain.model import Channel, ConsentAction, Source

DM = load_catalog().purposes["direct_marketing"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    record: ConsentRecord
    source: Source


def decide(before: Row | None, action: ConsentAction, day: int, source: Source = Source.SELF_SERVICE) -> Row:
    decision = Decision("direct_marketing", Channel.SMS, action, T0 + timedelta(days=day))
    return Row(apply_decision(DM, before.record if before else None, decision), source)


def used(before: Row, day: int) -> Row:
    after = apply_usage(DM, before.record, T0 + timedelta(days=day))
    assert after is not None
    return Row(after, Source.USAGE_REPORT)


def cited(history: list[Row], day: int) -> tuple[Row, Row]:
    at = T0 + timedelta(days=day)
    (recorded,) = latest_rows(history, at).values()
    (decision,) = latest_rows(history, at, decisions_only=True).values()
    return recorded, decision


def test_a_usage_report_moves_the_state_but_not_the_decision() -> None:
    grant = decide(None, ConsentAction.GRANT, 0, Source.APP)
    use = used(grant, 10)
    assert cited([grant, use], 5) == (grant, grant)
    assert cited([grant, use], 11) == (use, grant)


def test_a_lapse_is_not_a_decision() -> None:
    grant = decide(None, ConsentAction.GRANT, 0)
    lapse = Row(expire(grant.record), Source.SYSTEM)
    assert not is_decision(lapse)
    assert cited([grant, lapse], 10_000) == (lapse, grant)


def test_a_withdrawal_is_the_decision_from_its_instant_on() -> None:
    grant = decide(None, ConsentAction.GRANT, 0)
    withdrawal = decide(grant, ConsentAction.WITHDRAW, 20, Source.CUSTOMER_SERVICE)
    regrant = decide(withdrawal, ConsentAction.GRANT, 30)
    history = [grant, withdrawal, regrant]
    assert cited(history, 19) == (grant, grant)
    assert cited(history, 20) == (withdrawal, withdrawal)
    assert cited(history, 40) == (regrant, regrant)
    assert latest_rows(history, T0 - timedelta(seconds=1)) == {}


@given(st.lists(st.sampled_from(["grant", "withdraw", "use"]), min_size=1, max_size=12), st.randoms())
def test_the_decision_cited_is_the_last_decision_whatever_the_ledger_order(steps: list[str], rnd: Random) -> None:
    history: list[Row] = []
    for day, step in enumerate(steps, start=1):
        last = history[-1] if history else None
        if step == "use" and last is not None and (after := apply_usage(DM, last.record, T0 + timedelta(days=day))):
            history.append(Row(after, Source.USAGE_REPORT))
        elif step != "use":
            history.append(decide(last, ConsentAction(step), day))
    shuffled = list(history)
    rnd.shuffle(shuffled)
    decisions = [row for row in history if row.source is not Source.USAGE_REPORT]
    assert latest_rows(shuffled, decisions_only=True) == ({history[0].record.key: decisions[-1]} if decisions else {})
    assert latest_rows(shuffled) == ({history[-1].record.key: history[-1]} if history else {})
