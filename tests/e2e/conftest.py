"""End-to-end fixtures: the whole platform as a user runs it, and a real Prometheus scraping it.

`platform` starts the services beside the stack (or reuses running ones). `prometheus`
runs the `prometheus` binary on a free port with deploy/prometheus/prometheus.yml's
jobs pointed at the local ports from Settings, and the repository's rule files.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from samtykke.adapters.settings import Settings, get_settings
from samtykke.devstack.platform import start_services
from tests.ports import free_port

from ..conftest import StackEndpoints

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
# compose host name -> the local service, by Settings (projectors always listen on loopback)
LOCAL_HOSTS: dict[str, Callable[[Settings], tuple[str, int]]] = {
    "consent": lambda s: (s.http_host, s.consent_port),
    "projector-marketing": lambda s: ("127.0.0.1", s.projection_web_port_base + 1),
    "projector-analytics": lambda s: ("127.0.0.1", s.projection_web_port_base + 2),
    "projector-customer-service": lambda s: ("127.0.0.1", s.projection_web_port_base + 3),
    "suppression": lambda s: (s.http_host, s.suppression_port),
}


@pytest.fixture(scope="session")
def platform(stack: StackEndpoints) -> Settings:
    """The consent service, the three projectors and the suppression service, ready."""
    settings = get_settings()
    start_services(settings)
    return settings


def reachable(host: str) -> str:
    return "127.0.0.1" if host in {"", "0.0.0.0", "::"} else host


def local_target(target: str, settings: Settings, own_address: str) -> str:
    host = target.rsplit(":", 1)[0]
    if host == "localhost":
        return own_address
    service_host, port = LOCAL_HOSTS[host](settings)
    return f"{reachable(service_host)}:{port}"


def render_config(settings: Settings, own_address: str) -> dict[str, Any]:
    """The compose scrape config with the same jobs, scraped every second on the local ports."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules" / "*.yml")]
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [local_target(t, settings, own_address) for t in static["targets"]]
    return config


class PrometheusServer:
    """A Prometheus process of this test session and its HTTP query API."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, config: dict[str, Any], log: Path) -> None:
        self.process = process
        self.config = config
        self.client = httpx.Client(base_url=url, timeout=5)
        self.log = log

    def get(self, path: str, **params: str) -> Any:
        response = self.client.get(path, params=params)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> dict[str, float]:
        """Instant query: the value of each series, keyed by its labels (`k=v,...`, no name)."""
        result = self.get("/api/v1/query", query=expr)["result"]
        return {labels(series["metric"]): float(series["value"][1]) for series in result}

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not within {timeout:.0f}s")
            time.sleep(0.2)

    def targets(self) -> int:
        return sum(len(s["targets"]) for job in self.config["scrape_configs"] for s in job["static_configs"])

    def answers(self) -> bool:
        try:
            return self.client.get("/-/ready").status_code == httpx.codes.OK
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def labels(metric: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(metric.items()) if k != "__name__")


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


@pytest.fixture(scope="module")
def prometheus(platform: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    executable = shutil.which("prometheus")
    assert executable, "prometheus is missing: run `make monitoring-tools` (Debian package prometheus)"
    home = tmp_path_factory.mktemp("prometheus")
    address = f"127.0.0.1:{free_port()}"
    config = render_config(platform, address)
    config_file = home / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    log = home / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                executable,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address={address}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(process, f"http://{address}", config, log)
    try:
        server.wait_for("prometheus ready", server.answers)
        yield server
    finally:
        server.stop()
