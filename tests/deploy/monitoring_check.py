"""Static checks of the monitoring files: Prometheus rules and Grafana dashboards.

Each check returns a list of problems (empty when all is well), so a test can
assert the real files have none and that a deliberate mistake is reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry

from samtykke.reference import service_registries

# series Prometheus itself adds to every scraped target
SCRAPE_SERIES = frozenset({"up"})
# the names of the series a family exposes, by family type (counters lose `_total` in the family name)
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}
PROMQL_WORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "and",
        "or",
        "unless",
        "inf",
        "nan",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(\s*\()?")


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry's families can expose, labelled children or not."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def service_metric_names() -> set[str]:
    """The series the consent, projector and suppression services expose, HTTP included: the
    registries as each composition root fills them (the same the generated metrics table lists)."""
    return set().union(*(exposed_names(registry) for registry in service_registries().values()))


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords or label names)."""
    text = _VARIABLE.sub("", _STRING.sub('""', expr))
    text = _GROUPING.sub("", _RANGE.sub("", _MATCHERS.sub("", text)))
    return {
        match.group(1)
        for match in _IDENTIFIER.finditer(text)
        if match.group(2) is None and match.group(1) not in PROMQL_WORDS
    }


def rules(rule_file: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for group in rule_file["groups"]:
        yield from group["rules"]


def recorded_names(rule_file: dict[str, Any]) -> set[str]:
    return {str(rule["record"]) for rule in rules(rule_file) if "record" in rule}


def rule_expressions(rule_file: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for rule in rules(rule_file):
        yield str(rule.get("alert") or rule["record"]), str(rule["expr"])


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panels(panel)


def dashboard_expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"{dashboard['uid']}: {panel['title']}", str(target["expr"])


def unknown_metrics(expressions: Iterable[tuple[str, str]], known: set[str]) -> list[str]:
    return [
        f"{where}: {name} is not exposed by any service"
        for where, expr in expressions
        for name in sorted(metric_names_in(expr) - known)
    ]


def dashboard_problems(dashboards: dict[str, dict[str, Any]], datasource_uid: str) -> list[str]:
    """Unique dashboard uids; every panel and query on the provisioned Prometheus datasource."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for file, dashboard in dashboards.items():
        uid = dashboard.get("uid")
        if not uid:
            problems.append(f"{file}: no uid")
        elif uid in seen:
            problems.append(f"{file}: uid {uid} is also used by {seen[uid]}")
        else:
            seen[uid] = file
        problems += _panel_problems(file, dashboard, datasource_uid)
    return problems


def _panel_problems(file: str, dashboard: dict[str, Any], datasource_uid: str) -> list[str]:
    problems: list[str] = []
    for panel in panels(dashboard):
        if panel.get("type") == "row":
            continue
        where = f"{file}: {panel.get('title')!r}"
        if panel.get("type") not in {"timeseries", "stat"}:
            problems.append(f"{where}: panel type {panel.get('type')!r}")
        if not panel.get("targets"):
            problems.append(f"{where}: no queries")
        sources = [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]
        for source in sources:
            if not isinstance(source, dict) or source.get("uid") != datasource_uid:
                problems.append(f"{where}: datasource {source!r} is not uid {datasource_uid}")
    return problems


def alerts_without_cases(rule_file: dict[str, Any], unit_tests: dict[str, Any]) -> list[str]:
    """Alerts the promtool unit tests never see firing, or never see quiet."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in unit_tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = [str(rule["alert"]) for rule in rules(rule_file) if "alert" in rule]
    return [f"{name}: no firing case" for name in alerts if name not in firing] + [
        f"{name}: no quiet case" for name in alerts if name not in quiet
    ]
