"""The reference tables in `docs/`, rendered from the code: every setting and every metric.

    configuration   docs/configuration.md: every SAMTYKKE_* setting, from `Settings`' fields
    metrics         docs/operations.md: every series the services expose, from their registries

Each table sits between `<!-- BEGIN generated: NAME -->` and `<!-- END generated: NAME -->`; the prose
around it is written by hand. This module only renders: `samtykke docs export | check` (docs.py) reads
and writes the files. The registries are built the way each service's composition root builds them,
without starting anything. The tables describe the code's defaults, never this machine: a default
that depends on where the command runs is written as a fixed text, so every checkout renders the
same bytes.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import annotated_types
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from samtykke.adapters.settings import Settings

PACKAGE = Path(__file__).resolve().parent
ENV_PREFIX = "SAMTYKKE_"
# defaults computed from the working directory: the same words in every checkout
FIXED_DEFAULTS = {"state_dir": "`.state/` of the checkout (outside one: of the working directory)"}
TYPE_NAMES: dict[object, str] = {
    str: "text",
    int: "integer",
    float: "number",
    bool: "boolean",
    Path: "path",
    SecretStr: "secret text",
}
SAMPLE_SUFFIX_LABELS = {"le", "quantile"}
EVERY_SERVICE = "every service"


class MarkersMissing(ValueError):
    """A document lacks the BEGIN/END pair of a table it must hold."""


def begin_marker(table: str) -> str:
    return f"<!-- BEGIN generated: {table} -->"


def end_marker(table: str) -> str:
    return f"<!-- END generated: {table} -->"


def cell(text: str) -> str:
    """A markdown table cell: one line, pipes escaped (also inside code spans, as GFM reads them)."""
    return " ".join(text.split()).replace("|", "\\|")


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


# --- configuration ---------------------------------------------------------------------------------


def type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " or ".join(f"`{value}`" for value in args)
    if origin is dict:
        return f"JSON object: {type_name(args[0])} → {type_name(args[1])}"
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        present = [arg for arg in args if arg is not type(None)]
        return f"{' or '.join(type_name(arg) for arg in present)}, optional"
    return TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def constraints(info: FieldInfo) -> list[str]:
    """The field's validation bounds, as a reader of the table needs them."""
    found = []
    for item in info.metadata:
        if isinstance(item, annotated_types.Ge):
            found.append(f"≥ {item.ge}")
        elif isinstance(item, annotated_types.Gt):
            found.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Le):
            found.append(f"≤ {item.le}")
        elif isinstance(item, annotated_types.Lt):
            found.append(f"< {item.lt}")
        elif isinstance(item, annotated_types.MinLen):
            found.append(f"≥ {item.min_length} characters")
        elif isinstance(item, annotated_types.MaxLen):
            found.append(f"≤ {item.max_length} characters")
        elif getattr(item, "pattern", None):
            found.append(f"matching `{item.pattern}`")
    return found


def default_text(name: str, info: FieldInfo) -> str:
    if name in FIXED_DEFAULTS:
        return FIXED_DEFAULTS[name]
    value = info.get_default(call_default_factory=True, validated_data={})
    if isinstance(value, Path):
        inside = value.resolve().is_relative_to(PACKAGE)
        return f"`{value.resolve().relative_to(PACKAGE.parent)}/` in the package" if inside else f"`{value}`"
    if isinstance(value, dict | list):
        return f"`{json.dumps(value)}`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if value is None:
        return "unset"
    return f"`{value}`"


def configuration_table(settings: type[Settings] = Settings) -> str:
    rows = []
    for name, info in settings.model_fields.items():
        bounds = constraints(info)
        kind = type_name(info.annotation) + (f" ({', '.join(bounds)})" if bounds else "")
        rows.append([f"`{ENV_PREFIX}{name.upper()}`", kind, default_text(name, info), info.description or "—"])
    return table(["variable", "type", "default", "description"], rows)


# --- metrics ---------------------------------------------------------------------------------------


def service_registries() -> dict[str, CollectorRegistry]:
    """Each service's registry as its composition root fills it; nothing is started or connected."""
    from fastapi import FastAPI

    from samtykke.adapters.metrics import instrument_http, service_registry
    from samtykke.consent.metrics import ConsentMetrics
    from samtykke.projections.metrics import ProjectionMetrics
    from samtykke.suppression.metrics import SuppressionMetrics
    from samtykke.suppression.register_feed import RegisterMetrics

    consent, suppression = service_registry(), service_registry()
    ConsentMetrics(consent)
    instrument_http(FastAPI(), consent, "consent")
    SuppressionMetrics(suppression)
    RegisterMetrics(suppression)
    instrument_http(FastAPI(), suppression, "suppression")
    return {"consent": consent, "projectors": ProjectionMetrics("marketing").registry, "suppression": suppression}


@dataclass(slots=True)
class Series:
    name: str
    kind: str
    labels: tuple[str, ...]
    help: str
    services: list[str] = field(default_factory=list)


def declared_labels(registry: CollectorRegistry) -> dict[str, tuple[str, ...]]:
    """Label names by family name. prometheus_client shows them publicly only on samples, and a
    labelled metric has no sample before its first child: the metric objects hold them."""
    found = {}
    for collector in list(registry._collector_to_names):
        labels = getattr(collector, "_labelnames", None)
        if labels is not None:
            found[str(getattr(collector, "_name", ""))] = tuple(labels)
    return found


def exposed_name(name: str, kind: str) -> str:
    return name + {"counter": "_total", "info": "_info"}.get(kind, "")


def collect_series(registries: Mapping[str, CollectorRegistry]) -> list[Series]:
    """Every family of every registry once, in the order the code declares them; the process and
    platform series every service shares come last."""
    series: dict[str, Series] = {}
    for service, registry in registries.items():
        declared = declared_labels(registry)
        for family in registry.collect():
            sampled = dict.fromkeys(label for sample in family.samples for label in sample.labels)
            labels = declared.get(family.name) or tuple(k for k in sampled if k not in SAMPLE_SUFFIX_LABELS)
            entry = series.setdefault(family.name, Series(family.name, family.type, labels, family.documentation))
            entry.services.append(service)
    everywhere = [s for s in series.values() if len(s.services) == len(registries)]
    return [s for s in series.values() if s not in everywhere] + everywhere


def metrics_table(registries: Mapping[str, CollectorRegistry] | None = None) -> str:
    registries = registries if registries is not None else service_registries()
    rows = [
        [
            f"`{exposed_name(s.name, s.kind)}`",
            s.kind,
            ", ".join(f"`{label}`" for label in s.labels) or "—",
            EVERY_SERVICE if len(s.services) == len(registries) else ", ".join(s.services),
            s.help,
        ]
        for s in collect_series(registries)
    ]
    return table(["series", "type", "labels", "exposed by", "help"], rows)


# --- documents -------------------------------------------------------------------------------------

TABLES: dict[str, Callable[[], str]] = {"configuration": configuration_table, "metrics": metrics_table}
# the documents under docs/ holding generated tables, and which
DOCUMENTS: dict[str, tuple[str, ...]] = {"configuration.md": ("configuration",), "operations.md": ("metrics",)}


def splice(text: str, name: str, rendered: str, document: str) -> str:
    """`text` with the block of table `name` replaced by `rendered`."""
    begin, end = begin_marker(name), end_marker(name)
    lines = text.split("\n")
    starts = [n for n, line in enumerate(lines) if line.strip() == begin]
    ends = [n for n, line in enumerate(lines) if line.strip() == end]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise MarkersMissing(
            f"{document}: needs exactly one `{begin}` line followed by one `{end}` line around its {name} table"
        )
    return "\n".join([*lines[: starts[0] + 1], rendered, *lines[ends[0] :]])


def skeleton(names: Iterable[str]) -> str:
    """A missing document: only its blocks, for the prose to be written around them."""
    return "\n\n".join(f"{begin_marker(name)}\n{end_marker(name)}" for name in names) + "\n"


def reference_documents(current: Mapping[str, str | None]) -> dict[str, str]:
    """Each document's full text with its tables as the code renders them now, by name under docs/.
    `current` holds the documents' texts (None: missing); the text outside the blocks is kept."""
    rendered: dict[str, str] = {}
    documents = {}
    for document, names in DOCUMENTS.items():
        text = current.get(document) or skeleton(names)
        for name in names:
            if name not in rendered:
                rendered[name] = TABLES[name]()
            text = splice(text, name, rendered[name], document)
        documents[document] = text
    return documents
