"""docker-compose.yml stays consistent with the repository and with Settings.

Docker cannot run here, so the file is checked statically: the real file must
yield no problems, and each deliberate mistake below must be reported alone.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

try:  # tests/unit as a plain folder on sys.path (pytest's default), or as a package
    from compose_check import (
        check_compose,
        check_dockerfile,
        interpolate,
        load_compose,
        published_ports,
    )
except ImportError:
    from .compose_check import (  # type: ignore[no-redef]
        check_compose,
        check_dockerfile,
        interpolate,
        load_compose,
        published_ports,
    )

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"


@lru_cache(maxsize=1)
def _parsed() -> dict[str, Any]:
    return load_compose(COMPOSE_FILE)


@pytest.fixture
def compose() -> dict[str, Any]:
    """A private copy of the parsed file, free to break."""
    return copy.deepcopy(_parsed())


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"][name]
    return service


def _problems(compose: dict[str, Any]) -> list[str]:
    """Problems the in-memory edits introduced, beyond any the real file already has
    (those fail test_real_compose_file_is_consistent on their own)."""
    baseline = check_compose(_parsed(), ROOT)
    return [problem for problem in check_compose(compose, ROOT) if problem not in baseline]


# -- the real file -----------------------------------------------------------------


def test_real_compose_file_is_consistent(compose: dict[str, Any]) -> None:
    assert check_compose(compose, ROOT) == []


def test_platform_services_are_defined(compose: dict[str, Any]) -> None:
    assert {"kafka", "registry", "postgres", "consent"} <= set(compose["services"])


def test_consent_uses_the_shared_samtykke_environment(compose: dict[str, Any]) -> None:
    shared = compose["x-samtykke-env"]
    consent_env = _service(compose, "consent")["environment"]
    assert shared.items() <= consent_env.items()
    assert consent_env["SAMTYKKE_CONSENT_PORT"] == 8000


def test_consent_waits_for_healthy_infrastructure(compose: dict[str, Any]) -> None:
    depends = _service(compose, "consent")["depends_on"]
    assert {name: spec["condition"] for name, spec in depends.items()} == {
        "kafka": "service_healthy",
        "registry": "service_healthy",
        "postgres": "service_healthy",
    }


def test_identifier_keys_come_from_compose_variables(compose: dict[str, Any]) -> None:
    env = compose["x-samtykke-env"]
    for key in ("SAMTYKKE_IDENTIFIER_HASH_KEY", "SAMTYKKE_IDENTIFIER_ENCRYPTION_KEY"):
        assert env[key].startswith(f"${{{key}:-")


# -- deliberate mistakes -------------------------------------------------------------


def test_unknown_samtykke_variable_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "consent")["environment"]["SAMTYKKE_CONSENT_PROT"] = "8000"
    assert _problems(compose) == ["consent: SAMTYKKE_CONSENT_PROT is not a Settings field"]


def test_value_settings_rejects_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "consent")["environment"]["SAMTYKKE_CONSENT_PORT"] = "eighty"
    assert _problems(compose) == [
        "consent: SAMTYKKE_CONSENT_PORT: Input should be a valid integer, "
        "unable to parse string as an integer"
    ]


def test_dependency_on_missing_service_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "consent")["depends_on"]["schema-registry"] = {"condition": "service_started"}
    assert _problems(compose) == ["consent: depends_on unknown service 'schema-registry'"]


def test_waiting_for_health_without_healthcheck_is_reported(compose: dict[str, Any]) -> None:
    del _service(compose, "registry")["healthcheck"]
    assert _problems(compose) == [
        "consent: waits for registry to be healthy, but it has no healthcheck"
    ]


def test_published_port_other_than_the_port_setting_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "consent")["ports"] = ["127.0.0.1:8000:8001"]
    assert _problems(compose) == ["consent: publishes container port 8001 but listens on 8000"]


def test_healthcheck_on_another_port_is_reported(compose: dict[str, Any]) -> None:
    healthcheck = _service(compose, "consent")["healthcheck"]
    healthcheck["test"] = [part.replace(":8000/", ":8080/") for part in healthcheck["test"]]
    assert _problems(compose) == [
        "consent: healthcheck probes port 8080 but it listens on 8000"
    ]


def test_infrastructure_port_mismatch_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "registry")["ports"] = ["127.0.0.1:18081:8081"]
    assert _problems(compose) == ["registry: publishes container port 8081 but listens on 8080"]


def test_published_service_bound_to_loopback_is_reported(compose: dict[str, Any]) -> None:
    del _service(compose, "consent")["environment"]["SAMTYKKE_HTTP_HOST"]
    assert _problems(compose) == [
        "consent: publishes ports but binds 127.0.0.1 only; set SAMTYKKE_HTTP_HOST=0.0.0.0"
    ]


def test_missing_bind_mounted_file_is_reported(compose: dict[str, Any]) -> None:
    volumes = _service(compose, "consent").setdefault("volumes", [])
    volumes.append("./deploy/docker/missing.conf:/etc/samtykke.conf:ro")
    assert _problems(compose) == [
        "consent: bind-mounted host path ./deploy/docker/missing.conf does not exist"
    ]


def test_existing_bind_mounted_path_is_accepted(compose: dict[str, Any]) -> None:
    volumes = _service(compose, "consent").setdefault("volumes", [])
    volumes.append("./schemas:/app/schemas:ro")
    assert _problems(compose) == []


def test_undeclared_named_volume_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "kafka")["volumes"] = ["kafka-logs:/var/lib/kafka/data"]
    assert _problems(compose) == [
        "kafka: named volume 'kafka-logs' is not declared under volumes"
    ]


def test_missing_dockerfile_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "consent")["build"]["dockerfile"] = "deploy/docker/Dockerfile.api"
    assert _problems(compose) == [
        "consent: Dockerfile deploy/docker/Dockerfile.api does not exist"
    ]


def test_command_repeating_the_entrypoint_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "consent")["command"] = ["samtykke", "consent", "serve"]
    assert _problems(compose) == [
        "consent: command repeats the entrypoint 'samtykke'; drop its first word"
    ]


def test_endpoint_on_a_port_nobody_listens_on_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "consent")["environment"]["SAMTYKKE_KAFKA_BOOTSTRAP"] = "kafka:9094"
    assert _problems(compose) == [
        "consent: SAMTYKKE_KAFKA_BOOTSTRAP: kafka does not listen on port 9094"
    ]


def test_endpoint_left_at_localhost_is_reported(compose: dict[str, Any]) -> None:
    del _service(compose, "consent")["environment"]["SAMTYKKE_REGISTRY_URL"]
    assert _problems(compose) == [
        "consent: SAMTYKKE_REGISTRY_URL: 127.0.0.1 inside a container is the container "
        "itself, not a compose service"
    ]


def test_database_credentials_must_match_postgres(compose: dict[str, Any]) -> None:
    _service(compose, "postgres")["environment"]["POSTGRES_PASSWORD"] = "changed"
    assert _problems(compose) == [
        "consent: SAMTYKKE_DATABASE_URL: password does not match the postgres service's "
        "POSTGRES_PASSWORD"
    ]


# -- the pieces ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "resolved"),
    [
        ("${SAMTYKKE_IDENTIFIER_HASH_KEY:-dev-key}", "dev-key"),
        ("${UNSET-fallback}", "fallback"),
        ("${UNSET}", ""),
        ("${UNSET:+only-when-set}", ""),
        ("$$literal", "$literal"),
        (8000, "8000"),
    ],
)
def test_interpolation_uses_compose_defaults(text: object, resolved: str) -> None:
    assert interpolate(text) == resolved


@pytest.mark.parametrize(
    ("entry", "ports"),
    [
        ("8000", (None, 8000)),
        ("18000:8000", (18000, 8000)),
        ("127.0.0.1:18081:8080", (18081, 8080)),
        ("127.0.0.1::8000", (None, 8000)),
        ("8000/tcp", (None, 8000)),
        ({"target": 8000, "published": "18000"}, (18000, 8000)),
    ],
)
def test_port_entries_are_read_in_every_syntax(
    entry: object, ports: tuple[int | None, int]
) -> None:
    assert published_ports({"ports": [entry]}) == [ports]


def test_copy_source_left_out_by_dockerignore_is_reported(tmp_path: Path) -> None:
    (tmp_path / "services").mkdir()
    (tmp_path / ".dockerignore").write_text("services/\n")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.11-slim\nCOPY services/ services/\n")
    assert check_dockerfile(dockerfile, tmp_path) == [
        "COPY source services/ is excluded by .dockerignore"
    ]


def test_file_without_services_is_rejected(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("version: '3'\n")
    with pytest.raises(ValueError, match="no `services` mapping"):
        load_compose(broken)


def test_kafka_advertising_an_unpublished_host_port_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "kafka")["ports"] = ["127.0.0.1:29092:19092"]
    assert _problems(compose) == [
        "kafka: advertises 127.0.0.1:19092 to the host, but does not publish that host port"
    ]
