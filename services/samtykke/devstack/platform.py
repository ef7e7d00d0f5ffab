"""The platform's own services, started as background processes beside the local stack.

Each entry says how to run a service (`samtykke <args>`), where it answers `/ready` and which
Kafka principal it logs in as; `samtykke up` starts them after the stack, `samtykke down` stops
them first. Against the local stack's users (no Kafka password in the settings) each child gets
its own principal through `SAMTYKKE_KAFKA_USERNAME` in its environment only, and reads that
user's password from the stack's credentials file itself: no password on a command line or in an
environment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial

from samtykke.adapters.settings import Settings
from samtykke.devstack.acls import CONSENT, PROJECTION_DOMAINS, SUPPRESSION, projector_principal
from samtykke.devstack.layout import StackLayout
from samtykke.devstack.parts import Report
from samtykke.devstack.process import (
    DetachedProcess,
    answers_ok,
    samtykke_command,
    settings_environment,
    wait_until,
)


@dataclass(frozen=True)
class PlatformService:
    name: str
    args: tuple[str, ...]
    ready_url: Callable[[Settings], str]
    principal: str  # its Kafka user on the local stack (`devstack.acls`)


def _projector_ready(index: int, settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.projection_web_port_base + index}/ready"


PLATFORM_SERVICES: tuple[PlatformService, ...] = (
    PlatformService("consent", ("consent", "serve"), lambda s: f"http://{s.http_host}:{s.consent_port}/ready", CONSENT),
    *(
        PlatformService(
            domain, ("projections", "run", domain), partial(_projector_ready, n), projector_principal(domain)
        )
        for n, domain in enumerate(PROJECTION_DOMAINS, start=1)
    ),
    PlatformService(
        "suppression",
        ("suppression", "serve"),
        lambda s: f"http://{s.http_host}:{s.suppression_port}/ready",
        SUPPRESSION,
    ),
)

_KAFKA_PASSWORD_VARIABLES = ("SAMTYKKE_KAFKA_PASSWORD", "SAMTYKKE_KAFKA_PASSWORD_FILE")


def service_environment(service: PlatformService, settings: Settings) -> dict[str, str] | None:
    """The child's environment: this one with the service's own Kafka user when the settings use
    the local stack's users (SCRAM, OAUTHBEARER tokens of its issuer, or its client certificates); None
    (inherit unchanged) when they name a credential of their own."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    own = (
        settings.kafka_password,
        settings.kafka_password_file,
        settings.kafka_cert_file,
        settings.kafka_oauth_token_url,
    )
    if any(value is not None for value in own):
        return None
    env = settings_environment(settings, ())
    for name in _KAFKA_PASSWORD_VARIABLES:
        env.pop(name, None)
    env["SAMTYKKE_KAFKA_USERNAME"] = service.principal
    return env


def _process(service: PlatformService, layout: StackLayout) -> DetachedProcess:
    marker = f"samtykke.cli {' '.join(service.args)}"
    return DetachedProcess(service.name, layout.pid_path(service.name), layout.log_path(service.name), marker)


def start_services(
    settings: Settings, report: Report = print, timeout: float = 60.0, only: Collection[str] | None = None
) -> None:
    """Start the services not running yet (all, or those named in `only`) and wait until ready."""
    from samtykke.projections.provision import provision

    layout = StackLayout.from_settings(settings)
    layout.ensure()
    asyncio.run(provision(settings))  # the projectors' roles and schemas, idempotently
    for service in PLATFORM_SERVICES:
        if only is not None and service.name not in only:
            continue
        process = _process(service, layout)
        url = service.ready_url(settings)
        if process.running_pid() is not None and answers_ok(url):
            report(f"{service.name}: already running")
            continue
        started = time.monotonic()
        process.spawn(
            samtykke_command(*service.args), cwd=layout.state_dir.parent, env=service_environment(service, settings)
        )
        wait_until(service.name, partial(answers_ok, url), process.is_alive, timeout, process.log_path)
        report(f"{service.name}: ready in {time.monotonic() - started:.1f}s at {url.removesuffix('/ready')}")


def stop_services(settings: Settings, report: Report = print) -> None:
    layout = StackLayout.from_settings(settings)
    for service in reversed(PLATFORM_SERVICES):
        process = _process(service, layout)
        if process.running_pid() is not None:
            process.stop(timeout=20)
            report(f"{service.name}: stopped")
