"""A real Prometheus scrapes the running platform: consent changes driven through the API must
show up as propagation, decision and change counts, and the rule groups must evaluate cleanly."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from samtykke.adapters.settings import Settings

from .conftest import PROMETHEUS_DIR, PrometheusServer, finite, reachable

ADMIN = {"Authorization": "Bearer dev-admin"}
MARKETING = {"Authorization": "Bearer dev-marketing"}
DOMAINS = ("analytics", "customer_service", "marketing")
SEND = {"purpose": "direct_marketing", "channel": "sms"}
PROPAGATED = "sum by (domain) (samtykke_projection_propagation_seconds_count)"
SUPPRESSION_PROPAGATED = "sum(samtykke_suppression_propagation_seconds_count)"
CHANGES = "sum(samtykke_consent_changes_total)"
DECISIONS = "sum by (result) (samtykke_suppression_decisions_total)"
QUANTILE = "histogram_quantile(0.99, sum by ({by}) (rate({metric}_bucket[1m])))"


@dataclass(frozen=True)
class Counts:
    propagated: dict[str, float]
    suppression_propagated: float
    changes: float
    decisions: dict[str, float]

    @classmethod
    def read(cls, prometheus: PrometheusServer) -> Counts:
        return cls(
            propagated=prometheus.query(PROPAGATED),
            suppression_propagated=sum(prometheus.query(SUPPRESSION_PROPAGATED).values()),
            changes=sum(prometheus.query(CHANGES).values()),
            decisions=prometheus.query(DECISIONS),
        )


def every_target_up(prometheus: PrometheusServer) -> bool:
    up = prometheus.query("up")
    return len(up) == prometheus.targets() and all(value == 1 for value in up.values())


@pytest.fixture(scope="module")
def before(prometheus: PrometheusServer) -> Counts:
    """The counters at the first scrape of every target, before this module's traffic."""
    prometheus.wait_for("every target up", lambda: every_target_up(prometheus))
    return Counts.read(prometheus)


def service_url(host: str, port: int) -> str:
    return f"http://{reachable(host)}:{port}"


def record(consent: httpx.Client, subject: str, action: str) -> None:
    body = {"decisions": [SEND | {"action": action}], "source": "self_service", "actor": {"kind": "subject"}}
    response = consent.post(f"/v1/subjects/{subject}/consents", json=body)
    assert response.status_code == httpx.codes.CREATED, response.text


def register(consent: httpx.Client) -> str:
    response = consent.post("/v1/subjects", json={"kind": "consumer", "country": "DK"})
    assert response.status_code == httpx.codes.CREATED, response.text
    return str(response.json()["subject_id"])


def decide_until(suppression: httpx.Client, subject: str, result: str, timeout: float = 15.0) -> None:
    """Ask the gate until the subject's latest change has reached it (each ask is a decision)."""
    deadline = time.monotonic() + timeout
    while True:
        response = suppression.post("/v1/check", json=SEND | {"subject_id": subject})
        assert response.status_code == httpx.codes.OK, response.text
        if response.json()["result"] == result:
            return
        assert time.monotonic() < deadline, f"{subject}: still {response.json()} after {timeout:.0f}s"
        time.sleep(0.05)


def propagated_to_every_domain(prometheus: PrometheusServer, since: Counts) -> bool:
    now = prometheus.query(PROPAGATED)
    return all(now.get(f"domain={d}", 0) > since.propagated.get(f"domain={d}", 0) for d in DOMAINS)


@pytest.fixture(scope="module")
def traffic(platform: Settings, prometheus: PrometheusServer, before: Counts) -> Counts:
    """A subject who grants and keeps, one who grants and withdraws; the gate asked about both.

    The withdrawal waits until Prometheus has scraped the grants' propagation, so that it is an
    increase within the scraped history (a series' first sample gives rate() nothing)."""
    with (
        httpx.Client(base_url=service_url(platform.http_host, platform.consent_port), headers=ADMIN) as consent,
        httpx.Client(base_url=service_url(platform.http_host, platform.suppression_port), headers=MARKETING) as gate,
    ):
        kept, withdrawn = register(consent), register(consent)
        for subject in (kept, withdrawn):
            record(consent, subject, "grant")
        decide_until(gate, withdrawn, "allowed")
        prometheus.wait_for("the grants' propagation scraped", lambda: propagated_to_every_domain(prometheus, before))
        record(consent, withdrawn, "withdraw")
        decide_until(gate, kept, "allowed")
        decide_until(gate, withdrawn, "blocked")
    return before


def test_every_compose_job_is_scraped(prometheus: PrometheusServer, before: Counts) -> None:
    jobs = {series.split("=", 1)[1] for series in prometheus.query("count by (job) (up)")}
    compose = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert jobs == {job["job_name"] for job in compose["scrape_configs"]}


def test_propagation_to_every_domain_is_counted(prometheus: PrometheusServer, traffic: Counts) -> None:
    prometheus.wait_for("propagation counted in every domain", lambda: propagated_to_every_domain(prometheus, traffic))


def assert_suppression_exposes_propagation(prometheus: PrometheusServer) -> None:
    # unlabelled, so a service that has it exposes it from its first scrape
    assert prometheus.query("count(samtykke_suppression_propagation_seconds_count)"), (
        "the suppression service does not expose samtykke_suppression_propagation_seconds: "
        "is it running code older than that metric? restart it"
    )


def test_propagation_to_suppression_is_counted(prometheus: PrometheusServer, traffic: Counts) -> None:
    assert_suppression_exposes_propagation(prometheus)
    prometheus.wait_for(
        "suppression propagation counted",
        lambda: sum(prometheus.query(SUPPRESSION_PROPAGATED).values()) > traffic.suppression_propagated,
    )


def test_consent_changes_are_counted(prometheus: PrometheusServer, traffic: Counts) -> None:
    # two grants and a withdrawal at least; others may use the platform meanwhile
    prometheus.wait_for(
        "consent changes counted", lambda: sum(prometheus.query(CHANGES).values()) >= traffic.changes + 3
    )


def test_decisions_are_counted_by_result(prometheus: PrometheusServer, traffic: Counts) -> None:
    def grew() -> bool:
        now = prometheus.query(DECISIONS)
        return all(now.get(r, 0) > traffic.decisions.get(r, 0) for r in ("result=allowed", "result=blocked"))

    prometheus.wait_for("allowed and blocked decisions counted", grew)
    assert set(prometheus.query(DECISIONS)) <= {"result=allowed", "result=blocked"}


def finite_for(prometheus: PrometheusServer, expr: str, expected: set[str]) -> bool:
    values = prometheus.query(expr)
    return expected <= set(values) and all(finite(values[key]) for key in expected)


def test_propagation_quantiles_per_domain_are_finite(prometheus: PrometheusServer, traffic: Counts) -> None:
    domains = {f"domain={d}" for d in DOMAINS}
    projection = QUANTILE.format(by="domain, le", metric="samtykke_projection_propagation_seconds")
    prometheus.wait_for("p99 propagation per domain", lambda: finite_for(prometheus, projection, domains))
    recorded = "domain:samtykke_projection_propagation_seconds:p99_5m"
    prometheus.wait_for("the recording rule's p99 per domain", lambda: finite_for(prometheus, recorded, domains))


def test_propagation_quantile_to_suppression_is_finite(prometheus: PrometheusServer, traffic: Counts) -> None:
    assert_suppression_exposes_propagation(prometheus)
    suppression = QUANTILE.format(by="le", metric="samtykke_suppression_propagation_seconds")
    prometheus.wait_for("p99 propagation to suppression", lambda: finite_for(prometheus, suppression, {""}))


def test_rule_groups_are_loaded_and_healthy(prometheus: PrometheusServer) -> None:
    rule_files = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
    expected = {
        group["name"]: len(group["rules"])
        for path in rule_files
        for group in yaml.safe_load(path.read_text())["groups"]
    }

    def loaded() -> dict[str, list[str]]:
        groups = prometheus.get("/api/v1/rules")["groups"]
        return {g["name"]: [r["health"] for r in g["rules"]] for g in groups if Path(g["file"]) in rule_files}

    prometheus.wait_for(
        "every rule evaluated",
        lambda: (
            all(health and set(health) == {"ok"} for health in loaded().values()) and set(loaded()) == set(expected)
        ),
    )
    assert {name: len(health) for name, health in loaded().items()} == expected
