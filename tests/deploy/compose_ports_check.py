"""The ports compose services listen on, and what publishes, probes and scrapes them.

`listening_ports` tells which ports a service listens on inside its container
(a samtykke service from its settings and command, Kafka from its listeners,
other images from their defaults). The checks compare published ports,
healthchecks, Kafka's advertised listeners and Prometheus' scrape targets with
those ports.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic_settings import BaseSettings

from samtykke.adapters.settings import Settings

from .command_check import command_port, samtykke_command_problem
from .compose_service_check import (
    Service,
    command_words,
    effective_settings,
    environment,
    healthcheck_ports,
    image_name,
    is_samtykke_service,
    mounts,
    published_container_ports,
    published_ports,
    samtykke_processes,
    services,
)
from .settings_check import env_prefix

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# ports an image listens on when nothing in its environment says otherwise
IMAGE_DEFAULT_PORTS = {
    "postgres": 5432,
    "apicurio/apicurio-registry": 8080,
    "prom/prometheus": 9090,
    "grafana/grafana": 3000,
}
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"


def listening_ports(service: Service, settings_cls: type[BaseSettings] = Settings) -> set[int] | None:
    """Ports the service listens on inside its container; None when that cannot be told."""
    if is_samtykke_service(service, env_prefix(settings_cls)):
        settings = effective_settings(service, settings_cls)
        words = command_words(service)
        if settings is None or samtykke_command_problem(words) is not None:
            return None  # reported by check_samtykke_environment or check_commands
        port = command_port(words, settings)
        return {port} if port is not None else set()
    if image_name(service) == "apache/kafka":
        listeners = environment(service).get("KAFKA_LISTENERS", "").split(",")
        return {int(address.rsplit(":", 1)[1]) for address in listeners if ":" in address}
    default = IMAGE_DEFAULT_PORTS.get(image_name(service))
    return {default} if default else None


def _shown(ports: set[int]) -> str:
    return ", ".join(map(str, sorted(ports))) or "no port (its command serves no HTTP)"


def check_ports(compose: Mapping[str, Any], settings_cls: type[BaseSettings] = Settings) -> list[str]:
    """Published container ports and healthcheck ports are ports the service listens on."""
    problems: list[str] = []
    for name, service in services(compose).items():
        listening = listening_ports(service, settings_cls)
        if listening is None:
            continue
        published = published_container_ports(service)
        for port in published:
            if port not in listening:
                problems.append(f"{name}: publishes container port {port} but listens on {_shown(listening)}")
        for port in sorted(healthcheck_ports(service) - listening):
            problems.append(f"{name}: healthcheck probes port {port} but it listens on {_shown(listening)}")
        samtykke = is_samtykke_service(service, env_prefix(settings_cls))
        settings = effective_settings(service, settings_cls) if samtykke else None
        host = getattr(settings, "http_host", None)
        if published and host in LOOPBACK_HOSTS:
            problems.append(f"{name}: publishes ports but binds {host} only; set SAMTYKKE_HTTP_HOST=0.0.0.0")
    return problems


def check_kafka_advertised_listeners(compose: Mapping[str, Any]) -> list[str]:
    """A listener advertised to the host is published on the same host port.

    Clients on the host bootstrap through the published port and then connect to
    the advertised address, so the two ports must be equal.
    """
    problems: list[str] = []
    for name, service in services(compose).items():
        if image_name(service) != "apache/kafka":
            continue
        host_ports = {host for host, _ in published_ports(service) if host is not None}
        advertised = environment(service).get("KAFKA_ADVERTISED_LISTENERS", "").split(",")
        for address in advertised:
            url = urlsplit(address.strip())
            if url.hostname in LOOPBACK_HOSTS and url.port not in host_ports:
                problems.append(
                    f"{name}: advertises {url.hostname}:{url.port} to the host, but does not publish that host port"
                )
    return problems


# -- Prometheus ----------------------------------------------------------------------


def prometheus_configs(compose: Mapping[str, Any], root: Path) -> Iterator[tuple[str, Path]]:
    """(service, host file) of each Prometheus configuration compose mounts and that exists.

    A mounted file that is missing is reported by check_volumes.
    """
    for name, service in services(compose).items():
        for mount in mounts(service):
            path = root / mount.source
            if mount.kind == "bind" and mount.target == PROMETHEUS_CONFIG and path.is_file():
                yield name, path


def scrape_targets(config: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(job, host, port) of every static target."""
    found: list[tuple[str, str, int]] = []
    for job in config.get("scrape_configs") or []:
        for static in job.get("static_configs") or []:
            for target in static.get("targets") or []:
                host, _, port = str(target).rpartition(":")
                found.append((str(job.get("job_name")), host, int(port)))
    return found


def check_prometheus_targets(
    compose: Mapping[str, Any], root: Path, settings_cls: type[BaseSettings] = Settings
) -> list[str]:
    """Every samtykke service that serves /metrics is scraped, on the port it listens on."""
    known = services(compose)
    problems: list[str] = []
    for prometheus, path in prometheus_configs(compose, root):
        shown_path = path.relative_to(root) if path.is_relative_to(root) else path
        targets = scrape_targets(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        scraped = {host for _, host, _ in targets}
        for job, host, port in targets:
            listening = listening_ports(known[host], settings_cls) if host in known else None
            if listening is not None and port not in listening:
                problems.append(
                    f"{host}: {prometheus} job {job!r} in {shown_path} scrapes port {port}, "
                    f"but it listens on {_shown(listening)}"
                )
        for name, words, settings in samtykke_processes(compose, settings_cls):
            serves = command_port(words, settings)
            if serves is not None and name not in scraped:
                problems.append(f"{name}: {prometheus} does not scrape it: {shown_path} has no target {name}:{serves}")
    return problems
