"""The platform's own services, started as background processes beside the local stack.

Each entry says how to run a service (`samtykke <args>`) and where it answers `/ready`;
`samtykke up` starts them after the stack, `samtykke down` stops them first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from samtykke.adapters.settings import Settings
from samtykke.devstack.layout import StackLayout
from samtykke.devstack.parts import Report
from samtykke.devstack.process import DetachedProcess, answers_ok, samtykke_command, wait_until


@dataclass(frozen=True)
class PlatformService:
    name: str
    args: tuple[str, ...]
    ready_url: Callable[[Settings], str]


def _projector_ready(index: int, settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.projection_web_port_base + index}/ready"


PLATFORM_SERVICES: tuple[PlatformService, ...] = (
    PlatformService("consent", ("consent", "serve"), lambda s: f"http://{s.http_host}:{s.consent_port}/ready"),
    *(
        PlatformService(domain, ("projections", "run", domain), partial(_projector_ready, n))
        for n, domain in enumerate(("marketing", "analytics", "customer_service"), start=1)
    ),
    PlatformService(
        "suppression", ("suppression", "serve"), lambda s: f"http://{s.http_host}:{s.suppression_port}/ready"
    ),
)


def _process(service: PlatformService, layout: StackLayout) -> DetachedProcess:
    marker = f"samtykke.cli {' '.join(service.args)}"
    return DetachedProcess(service.name, layout.pid_path(service.name), layout.log_path(service.name), marker)


def start_services(settings: Settings, report: Report = print, timeout: float = 60.0) -> None:
    from samtykke.projections.provision import provision

    layout = StackLayout.from_settings(settings)
    layout.ensure()
    asyncio.run(provision(settings))  # the projectors' roles and schemas, idempotently
    for service in PLATFORM_SERVICES:
        process = _process(service, layout)
        url = service.ready_url(settings)
        if process.running_pid() is not None and answers_ok(url):
            report(f"{service.name}: already running")
            continue
        started = time.monotonic()
        process.spawn(samtykke_command(*service.args), cwd=layout.state_dir.parent)
        wait_until(service.name, partial(answers_ok, url), process.is_alive, timeout, process.log_path)
        report(f"{service.name}: ready in {time.monotonic() - started:.1f}s at {url.removesuffix('/ready')}")


def stop_services(settings: Settings, report: Report = print) -> None:
    layout = StackLayout.from_settings(settings)
    for service in reversed(PLATFORM_SERVICES):
        process = _process(service, layout)
        if process.running_pid() is not None:
            process.stop(timeout=20)
            report(f"{service.name}: stopped")
