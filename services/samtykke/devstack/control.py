"""Bringing the local stack up and down, as a whole or part by part.

Installs run one after another (two Maven runs sharing ~/.m2 must not race),
then the parts start in parallel: PostgreSQL and the registry start while the
broker does. `up` returns only when every selected part answers a real client
request; a part that is already running and answering is left alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from samtykke.adapters.settings import Settings, get_settings
from samtykke.devstack.kafka import KafkaBroker
from samtykke.devstack.layout import StackLayout
from samtykke.devstack.parts import PART_NAMES, PartStatus, Reconfigurable, Report, StackError, StackPart
from samtykke.devstack.postgres import PostgresCluster
from samtykke.devstack.registry import SchemaRegistryProcess

READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 20.0


def build_parts(settings: Settings, layout: StackLayout) -> dict[str, StackPart]:
    return {
        "postgres": PostgresCluster(settings, layout),
        "kafka": KafkaBroker(settings, layout),
        "registry": SchemaRegistryProcess(settings, layout),
    }


def select_parts(names: Sequence[str] | None) -> list[str]:
    """The requested parts in start order; unknown names are an error, not a no-op."""
    if names is None:
        return list(PART_NAMES)
    unknown = sorted(set(names) - set(PART_NAMES))
    if unknown:
        raise ValueError(f"unknown stack part(s) {unknown}; choose from {list(PART_NAMES)}")
    return [name for name in PART_NAMES if name in names]


def serialised(report: Report) -> Report:
    """Progress lines come from several threads; keep each line whole."""
    lock = threading.Lock()

    def report_line(line: str) -> None:
        with lock:
            report(line)

    return report_line


def up(
    settings: Settings | None = None,
    parts: Sequence[str] | None = None,
    report: Report = print,
    timeout: float = READY_TIMEOUT_SECONDS,
) -> None:
    """Install what is missing, start what is stopped, wait until all answer."""
    settings = settings or get_settings()
    layout = StackLayout.from_settings(settings)
    layout.ensure()
    every = build_parts(settings, layout)
    selected = {name: every[name] for name in select_parts(parts)}
    report = serialised(report)
    began = time.monotonic()
    for part in selected.values():
        if not part.is_installed():
            install_began = time.monotonic()
            report(f"{part.name}: installing")
            guarded(part, partial(part.install, report))
            report(f"{part.name}: installed in {time.monotonic() - install_began:.1f}s")
    outcomes = run_in_parallel(selected.values(), lambda part: bring_up(part, report, timeout))
    raise_first_failure(outcomes, report)
    started = [name for name, outcome in outcomes.items() if outcome == "started"]
    if not started:
        report("stack: already running")
    else:
        report(f"stack: up in {time.monotonic() - began:.1f}s")
    for part in selected.values():
        report(f"  {part.name:<9} {part.endpoint}")


def bring_up(part: StackPart, report: Report, timeout: float) -> str:
    pid = part.running_pid()
    reason = part.needs_restart() if pid is not None and isinstance(part, Reconfigurable) else None
    if pid is not None and reason is not None:
        report(f"{part.name}: {reason}; restarting it (pid {pid})")
        part.stop(timeout)
        pid = None
    if pid is not None:
        if part.is_ready():
            report(f"{part.name}: already running (pid {pid})")
            return "running"
        report(f"{part.name}: running (pid {pid}) but not answering yet; waiting")
        part.wait_ready(timeout)
        return "running"
    report(f"{part.name}: starting")
    began = time.monotonic()
    part.start()
    launched = time.monotonic()
    part.wait_ready(timeout)
    ready = time.monotonic()
    report(
        f"{part.name}: started in {launched - began:.1f}s, ready after {ready - began:.1f}s (pid {part.running_pid()})"
    )
    return "started"


def down(
    settings: Settings | None = None,
    parts: Sequence[str] | None = None,
    report: Report = print,
    timeout: float = STOP_TIMEOUT_SECONDS,
) -> None:
    """Stop the selected parts, clients before the database."""
    settings = settings or get_settings()
    layout = StackLayout.from_settings(settings)
    every = build_parts(settings, layout)
    failures: list[StackError] = []
    for name in reversed(select_parts(parts)):
        part = every[name]
        pid = part.running_pid()  # also clears a stale pidfile
        if pid is None:
            report(f"{name}: not running")
            continue
        began = time.monotonic()
        try:
            guarded(part, partial(part.stop, timeout))
        except StackError as error:
            failures.append(error)
            continue
        report(f"{name}: stopped (pid {pid}) in {time.monotonic() - began:.1f}s")
    if failures:
        raise failures[0]


def status(settings: Settings | None = None) -> list[PartStatus]:
    settings = settings or get_settings()
    layout = StackLayout.from_settings(settings)
    result = []
    for name, part in build_parts(settings, layout).items():
        pid = part.running_pid()
        result.append(
            PartStatus(
                name=name,
                running=pid is not None,
                pid=pid,
                endpoint=part.endpoint,
                ready=pid is not None and part.is_ready(),
                log_path=part.log_path,
            )
        )
    return result


def start_part(name: str, settings: Settings | None = None, report: Report = print) -> None:
    up(settings, [name], report=report)


def stop_part(name: str, settings: Settings | None = None, report: Report = print) -> None:
    down(settings, [name], report=report)


def guarded(part: StackPart, action: Callable[[], object]) -> None:
    """Any failure inside a part surfaces as a StackError naming the part and its log."""
    try:
        action()
    except StackError:
        raise
    except Exception as error:
        raise StackError(part.name, f"{type(error).__name__}: {error}", part.log_path) from error


def run_in_parallel(parts: Iterable[StackPart], action: Callable[[StackPart], str]) -> dict[str, str | StackError]:
    chosen = list(parts)
    outcomes: dict[str, str | StackError] = {}

    def run(part: StackPart) -> None:
        try:
            guarded(part, lambda: outcomes.__setitem__(part.name, action(part)))
        except StackError as error:
            outcomes[part.name] = error

    with ThreadPoolExecutor(max_workers=max(1, len(chosen))) as pool:
        list(pool.map(run, chosen))
    # keep start order so the first failure reported is deterministic
    return {part.name: outcomes[part.name] for part in chosen}


def raise_first_failure(outcomes: dict[str, str | StackError], report: Report) -> None:
    failures = [outcome for outcome in outcomes.values() if isinstance(outcome, StackError)]
    # the first failure is raised; the others must not vanish silently
    for other in failures[1:]:
        report(f"{other.part}: also failed: {other.message} (log: {other.log_path})")
    if failures:
        raise failures[0]
