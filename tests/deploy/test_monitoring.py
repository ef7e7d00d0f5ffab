"""The monitoring files: Prometheus config and rules (through promtool) and Grafana dashboards.

promtool is required, not optional: `make test` installs it (`make monitoring-tools`).
Metric names in rules and dashboards are checked against the series the services'
metrics classes really expose, so a renamed metric cannot leave a silent panel or alert.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from .monitoring_check import (
    alerts_without_cases,
    dashboard_expressions,
    dashboard_problems,
    metric_names_in,
    recorded_names,
    rule_expressions,
    rules,
    service_metric_names,
    unknown_metrics,
)

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_FILE = PROMETHEUS / "rules" / "samtykke.yml"
RULE_TESTS = PROMETHEUS / "tests" / "samtykke_test.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
COMPOSE_TARGETS = {
    "prometheus": ["localhost:9090"],
    "consent": ["consent:8000"],
    "projector": ["projector-marketing:8101", "projector-analytics:8102", "projector-customer-service:8103"],
    "suppression": ["suppression:8200"],
}


def load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


@lru_cache(maxsize=1)
def _rule_file() -> dict[str, Any]:
    return load_yaml(RULE_FILE)


@pytest.fixture
def rule_file() -> dict[str, Any]:
    return copy.deepcopy(_rule_file())


@pytest.fixture
def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


@lru_cache(maxsize=1)
def known_names() -> set[str]:
    return service_metric_names() | {"up"} | recorded_names(_rule_file())


def provisioned_datasource_uid() -> str:
    sources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert [s["type"] for s in sources] == ["prometheus"]
    return str(sources[0]["uid"])


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    assert executable, "promtool is missing: run `make monitoring-tools` (Debian package prometheus)"
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=60, check=False)


# -- promtool --------------------------------------------------------------------------


def test_scrape_config_is_valid(tmp_path: Path) -> None:
    # the file names the rules by their in-container path; check it against the repository's
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(PROMETHEUS / "rules" / "*.yml")]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    result = promtool("check", "config", str(checked))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert str(RULE_FILE) in result.stdout


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", *map(str, sorted((PROMETHEUS / "rules").glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


# -- scrape config and rules -----------------------------------------------------------


def test_scrape_config_targets_the_compose_services() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    jobs = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]] for job in config["scrape_configs"]
    }
    assert jobs == COMPOSE_TARGETS


def test_every_alert_fires_and_stays_quiet_in_the_unit_tests(rule_file: dict[str, Any]) -> None:
    assert alerts_without_cases(rule_file, load_yaml(RULE_TESTS)) == []


def test_every_alert_says_how_bad_and_what_to_do(rule_file: dict[str, Any]) -> None:
    alerts = [rule for rule in rules(rule_file) if "alert" in rule]
    assert alerts
    for alert in alerts:
        assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        assert alert["annotations"]["runbook"], alert["alert"]


def test_rules_reference_only_exposed_metrics(rule_file: dict[str, Any]) -> None:
    assert unknown_metrics(rule_expressions(rule_file), known_names()) == []


# -- dashboards ------------------------------------------------------------------------


def test_dashboards_reference_only_exposed_metrics(dashboards: dict[str, dict[str, Any]]) -> None:
    assert set(dashboards) == {"propagation.json", "suppression.json", "consent-api.json"}
    for dashboard in dashboards.values():
        assert unknown_metrics(dashboard_expressions(dashboard), known_names()) == []


def test_dashboards_have_unique_uids_and_use_the_provisioned_datasource(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    assert dashboard_problems(dashboards, provisioned_datasource_uid()) == []


def test_dashboard_provider_reads_the_mounted_folder() -> None:
    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "samtykke.yml")["providers"]
    assert [(p["type"], p["options"]["path"]) for p in providers] == [("file", "/var/lib/grafana/dashboards")]


# -- the checker itself, on deliberate mistakes ----------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('histogram_quantile(0.99, sum by (domain, le) (rate(a_bucket{le!="+Inf"}[$__rate_interval])))', {"a_bucket"}),
        ("sum(rate(b_total[5m])) > 0 and on () (sum(rate(c_total[5m])) or vector(0)) == 0", {"b_total", "c_total"}),
        ("d unless d offset 10m", {"d"}),
        ('label_replace(count by (job) (up{job="x"}) < 3, "job", "y", "", "")', {"up"}),
        ("level:e:p99_5m > 1e3", {"level:e:p99_5m"}),
    ],
)
def test_metric_names_are_found_in_promql(expr: str, names: set[str]) -> None:
    assert metric_names_in(expr) == names


def test_unknown_metric_in_a_dashboard_is_reported(dashboards: dict[str, dict[str, Any]]) -> None:
    dashboard = dashboards["propagation.json"]
    panel = dashboard["panels"][1]
    panel["targets"][0]["expr"] = "sum(rate(samtykke_projection_propagaton_seconds_bucket[5m]))"
    assert unknown_metrics(dashboard_expressions(dashboard), known_names()) == [
        f"samtykke-propagation: {panel['title']}: samtykke_projection_propagaton_seconds_bucket "
        "is not exposed by any service"
    ]


def test_histogram_family_name_without_suffix_is_reported(rule_file: dict[str, Any]) -> None:
    # a histogram family has no series of its own name, only _bucket, _count and _sum
    alert = next(rule for rule in rules(rule_file) if rule.get("alert") == "SamtykkeSuppressionStale")
    alert["expr"] = "samtykke_suppression_propagation_seconds > 1"
    assert unknown_metrics(rule_expressions(rule_file), known_names()) == [
        "SamtykkeSuppressionStale: samtykke_suppression_propagation_seconds is not exposed by any service"
    ]


def test_wrong_datasource_and_duplicate_uid_are_reported(dashboards: dict[str, dict[str, Any]]) -> None:
    dashboards["suppression.json"]["uid"] = dashboards["propagation.json"]["uid"]
    panel = dashboards["consent-api.json"]["panels"][0]
    panel["targets"][0]["datasource"] = {"type": "prometheus", "uid": "other"}
    assert dashboard_problems(dashboards, provisioned_datasource_uid()) == [
        f"consent-api.json: {panel['title']!r}: datasource {{'type': 'prometheus', 'uid': 'other'}} "
        "is not uid prometheus",
        "suppression.json: uid samtykke-propagation is also used by propagation.json",
    ]


def test_alert_without_quiet_case_is_reported(rule_file: dict[str, Any]) -> None:
    unit_tests = load_yaml(RULE_TESTS)
    for case in unit_tests["tests"]:
        case["alert_rule_test"] = [
            check
            for check in case.get("alert_rule_test", [])
            if check["alertname"] != "SamtykkeRelayFailing" or check["exp_alerts"]
        ]
    assert alerts_without_cases(rule_file, unit_tests) == ["SamtykkeRelayFailing: no quiet case"]
