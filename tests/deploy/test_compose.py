"""docker-compose.yml stays consistent with the repository and with Settings.

Docker cannot run here, so the file is checked statically: the real file must
yield no problems, and each deliberate mistake below must be reported alone.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from samtykke.adapters.settings import Settings

from .compose_check import check_compose, load_compose
from .compose_service_check import (
    command_words,
    effective_settings,
    interpolate,
    published_ports,
)
from .dockerfile_check import check_dockerfile

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROJECTORS_AND_SUPPRESSION = "projector-marketing, projector-analytics, projector-customer-service, suppression"
ROLE_PASSWORD_VARIABLES = "SAMTYKKE_PROJECTION_ROLE_PASSWORD or its entry in SAMTYKKE_PROJECTION_ROLE_PASSWORDS"


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


def _mount_prometheus_config(compose: dict[str, Any], path: Path | str) -> None:
    volumes = _service(compose, "prometheus")["volumes"]
    volumes[:] = [v for v in volumes if ":/etc/prometheus/prometheus.yml" not in v]
    volumes.append(f"{path}:/etc/prometheus/prometheus.yml:ro")


# -- the real file -----------------------------------------------------------------


def test_real_compose_file_is_consistent(compose: dict[str, Any]) -> None:
    assert check_compose(compose, ROOT) == []


SAMTYKKE_PORTS = {
    "consent": 8000,
    "projector-marketing": 8101,
    "projector-analytics": 8102,
    "projector-customer-service": 8103,
    "suppression": 8200,
}


def test_platform_services_are_defined(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "kafka-tls",
        "kafka",
        "kafka-security",
        "registry",
        "postgres",
        "provision",
        *SAMTYKKE_PORTS,
        "prometheus",
        "grafana",
    }


@pytest.mark.parametrize(("name", "port"), SAMTYKKE_PORTS.items())
def test_services_publish_their_fixed_port_on_loopback(compose: dict[str, Any], name: str, port: int) -> None:
    assert _service(compose, name)["ports"] == [f"127.0.0.1:{port}:{port}"]


@pytest.mark.parametrize("name", SAMTYKKE_PORTS)
def test_samtykke_services_use_the_shared_environment(compose: dict[str, Any], name: str) -> None:
    shared = compose["x-samtykke-env"]
    assert shared.items() <= _service(compose, name)["environment"].items()


def test_projectors_share_the_web_port_base(compose: dict[str, Any]) -> None:
    for name in SAMTYKKE_PORTS:
        if name.startswith("projector-"):
            env = _service(compose, name)["environment"]
            assert env["SAMTYKKE_PROJECTION_WEB_PORT_BASE"] == 8100


def test_consent_waits_for_healthy_infrastructure(compose: dict[str, Any]) -> None:
    depends = _service(compose, "consent")["depends_on"]
    assert {name: spec["condition"] for name, spec in depends.items()} == {
        "kafka": "service_healthy",
        "kafka-security": "service_completed_successfully",
        "registry": "service_healthy",
        "postgres": "service_healthy",
    }


def test_projectors_wait_for_provisioning_to_complete(compose: dict[str, Any]) -> None:
    for name in ("projector-marketing", "projector-analytics", "projector-customer-service"):
        depends = _service(compose, name)["depends_on"]
        assert depends["provision"] == {"condition": "service_completed_successfully"}


def test_only_provisioning_holds_the_owner_login(compose: dict[str, Any]) -> None:
    logins = {
        name: urlsplit(interpolate(service["environment"]["SAMTYKKE_DATABASE_URL"])).username
        for name, service in compose["services"].items()
        if "SAMTYKKE_DATABASE_URL" in service.get("environment", {})
    }
    assert {name: user for name, user in logins.items() if user} == {
        "provision": _service(compose, "postgres")["environment"]["POSTGRES_USER"],
        "consent": "samtykke_consent",
    }


def test_keys_come_from_compose_variables(compose: dict[str, Any]) -> None:
    keys = {
        "consent": ["SAMTYKKE_IDENTIFIER_HASH_KEY", "SAMTYKKE_IDENTIFIER_ENCRYPTION_KEY"],
        "suppression": ["SAMTYKKE_IDENTIFIER_HASH_KEY"],
        "projector-analytics": ["SAMTYKKE_ANALYTICS_PSEUDONYM_KEY"],
    }
    for name, variables in keys.items():
        env = _service(compose, name)["environment"]
        for key in variables:
            assert env[key].startswith(f"${{{key}:-"), f"{name}: {key}"
    for domain in ("marketing", "analytics", "customer-service"):
        password = _service(compose, f"projector-{domain}")["environment"]["SAMTYKKE_PROJECTION_ROLE_PASSWORD"]
        variable = f"SAMTYKKE_PROJECTION_ROLE_PASSWORD_{domain.upper().replace('-', '_')}"
        assert password.startswith(f"${{{variable}:-"), domain


@pytest.mark.parametrize("name", ["projector-marketing", "projector-analytics", "projector-customer-service"])
def test_projector_web_server_binds_the_http_host(compose: dict[str, Any], name: str) -> None:
    from samtykke.projections.app import faust_settings
    from samtykke.projections.domains import DOMAINS

    service = _service(compose, name)
    settings = effective_settings(service, Settings)
    assert isinstance(settings, Settings)
    domain = DOMAINS[command_words(service)[-1]]
    assert faust_settings(domain, settings)["web_bind"] == settings.http_host == "0.0.0.0"


def test_monitoring_mounts_its_configuration(compose: dict[str, Any]) -> None:
    assert {
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
        "./deploy/prometheus/rules:/etc/prometheus/rules:ro",
    } <= set(_service(compose, "prometheus")["volumes"])
    assert {
        "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro",
        "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro",
    } <= set(_service(compose, "grafana")["volumes"])


# -- deliberate mistakes -------------------------------------------------------------


def test_unknown_samtykke_variable_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "consent")["environment"]["SAMTYKKE_CONSENT_PROT"] = "8000"
    assert _problems(compose) == ["consent: SAMTYKKE_CONSENT_PROT is not a Settings field"]


def test_value_settings_rejects_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "consent")["environment"]["SAMTYKKE_CONSENT_PORT"] = "eighty"
    assert _problems(compose) == [
        "consent: SAMTYKKE_CONSENT_PORT: Input should be a valid integer, unable to parse string as an integer"
    ]


def test_dependency_on_missing_service_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "consent")["depends_on"]["schema-registry"] = {"condition": "service_started"}
    assert _problems(compose) == ["consent: depends_on unknown service 'schema-registry'"]


def test_waiting_for_health_without_healthcheck_is_reported(compose: dict[str, Any]) -> None:
    del _service(compose, "prometheus")["healthcheck"]
    assert _problems(compose) == [
        "grafana: waits for prometheus to be healthy, but it has no healthcheck",
        "prometheus: long-running but has no healthcheck",
    ]


def test_long_running_service_without_restart_policy_is_reported(
    compose: dict[str, Any],
) -> None:
    del _service(compose, "suppression")["restart"]
    assert _problems(compose) == ["suppression: long-running but restart is 'no'"]


def test_restarting_a_one_shot_service_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "provision")["restart"] = "unless-stopped"
    assert _problems(compose) == ["provision: others wait for it to complete, but restart: unless-stopped reruns it"]


def test_projector_not_waiting_for_provisioning_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "projector-analytics")["depends_on"]["provision"] = {"condition": "service_started"}
    assert _problems(compose) == [
        "projector-analytics: runs `projections run` but does not wait for a "
        "`projections provision` service to complete successfully"
    ]


def test_unknown_subcommand_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "suppression")["command"] = ["suppression", "serv"]
    assert _problems(compose) == [
        "suppression: `samtykke suppression serv` is not a samtykke command: "
        "argument ACTION: invalid choice: 'serv' (choose from 'serve', 'import-register')",
    ]


def test_unknown_projection_domain_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "projector-marketing")["command"] = ["projections", "run", "marketting"]
    assert _problems(compose) == [
        "projector-marketing: `samtykke projections run marketting` is not a samtykke command: "
        "argument domain: invalid choice: 'marketting' "
        "(choose from 'marketing', 'analytics', 'customer_service')"
    ]


def test_projector_port_follows_its_domain_index(compose: dict[str, Any]) -> None:
    _service(compose, "projector-analytics")["command"] = ["projections", "run", "customer_service"]
    assert _problems(compose) == [
        "projector-analytics: publishes container port 8102 but listens on 8103",
        "projector-analytics: healthcheck probes port 8102 but it listens on 8103",
        "projector-analytics: its role password for customer_service differs from the one provision sets "
        f"({ROLE_PASSWORD_VARIABLES}); projectors log in with the password provisioning set on their roles",
        "projector-analytics: prometheus job 'projector' in deploy/prometheus/prometheus.yml "
        "scrapes port 8102, but it listens on 8103",
    ]


def test_web_port_base_moved_is_reported_everywhere(compose: dict[str, Any]) -> None:
    _service(compose, "projector-customer-service")["environment"]["SAMTYKKE_PROJECTION_WEB_PORT_BASE"] = 8200
    assert _problems(compose) == [
        "projector-customer-service: listens on 8203, which deploy/docker/Dockerfile does not EXPOSE",
        "projector-customer-service: publishes container port 8103 but listens on 8203",
        "projector-customer-service: healthcheck probes port 8103 but it listens on 8203",
        "projector-customer-service: prometheus job 'projector' in "
        "deploy/prometheus/prometheus.yml scrapes port 8103, but it listens on 8203",
    ]


def test_service_prometheus_does_not_scrape_is_reported(compose: dict[str, Any], tmp_path: Path) -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text(encoding="utf-8"))
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] != "suppression"]
    edited = tmp_path / "prometheus.yml"
    edited.write_text(yaml.safe_dump(config))
    _mount_prometheus_config(compose, edited)
    assert _problems(compose) == [
        f"suppression: prometheus does not scrape it: {edited} has no target suppression:8200"
    ]


def test_prometheus_config_mounted_but_missing_is_reported(compose: dict[str, Any]) -> None:
    _mount_prometheus_config(compose, "./deploy/prometheus/missing.yml")
    assert _problems(compose) == ["prometheus: bind-mounted host path ./deploy/prometheus/missing.yml does not exist"]


def test_identifier_hash_key_differing_between_services_is_reported(
    compose: dict[str, Any],
) -> None:
    _service(compose, "suppression")["environment"]["SAMTYKKE_IDENTIFIER_HASH_KEY"] = "x" * 32
    assert _problems(compose) == [
        "suppression: SAMTYKKE_IDENTIFIER_HASH_KEY differs from consent's; the suppression "
        "index matches the consent service's identifier hashes"
    ]


def test_projector_role_password_other_than_provisioned_is_reported(
    compose: dict[str, Any],
) -> None:
    env = _service(compose, "provision")["environment"]
    passwords = json.loads(interpolate(env["SAMTYKKE_PROJECTION_ROLE_PASSWORDS"]))
    env["SAMTYKKE_PROJECTION_ROLE_PASSWORDS"] = json.dumps(passwords | {"marketing": "other"})
    assert _problems(compose) == [
        "projector-marketing: its role password for marketing differs from the one provision sets "
        f"({ROLE_PASSWORD_VARIABLES}); projectors log in with the password provisioning set on their roles"
    ]


def test_projector_role_password_missing_from_provisioning_falls_back_to_the_shared_one(
    compose: dict[str, Any],
) -> None:
    env = _service(compose, "provision")["environment"]
    passwords = json.loads(interpolate(env["SAMTYKKE_PROJECTION_ROLE_PASSWORDS"]))
    env["SAMTYKKE_PROJECTION_ROLE_PASSWORDS"] = json.dumps({k: v for k, v in passwords.items() if k != "analytics"})
    env["SAMTYKKE_PROJECTION_ROLE_PASSWORD"] = passwords["analytics"]
    assert _problems(compose) == []


def test_image_tag_differing_for_the_shared_build_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "suppression")["image"] = "samtykke:suppression"
    assert _problems(compose) == [
        "suppression: tags the shared build as 'samtykke:suppression', the others as 'samtykke:dev'"
    ]


def test_published_port_other_than_the_port_setting_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "consent")["ports"] = ["127.0.0.1:8000:8001"]
    assert _problems(compose) == ["consent: publishes container port 8001 but listens on 8000"]


def test_healthcheck_on_another_port_is_reported(compose: dict[str, Any]) -> None:
    healthcheck = _service(compose, "consent")["healthcheck"]
    healthcheck["test"] = [part.replace(":8000/", ":8080/") for part in healthcheck["test"]]
    assert _problems(compose) == ["consent: healthcheck probes port 8080 but it listens on 8000"]


def test_infrastructure_port_mismatch_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "registry")["ports"] = ["127.0.0.1:18081:8081"]
    assert _problems(compose) == ["registry: publishes container port 8081 but listens on 8080"]


def test_published_service_bound_to_loopback_is_reported(compose: dict[str, Any]) -> None:
    del _service(compose, "consent")["environment"]["SAMTYKKE_HTTP_HOST"]
    assert _problems(compose) == ["consent: publishes ports but binds 127.0.0.1 only; set SAMTYKKE_HTTP_HOST=0.0.0.0"]


def test_missing_bind_mounted_file_is_reported(compose: dict[str, Any]) -> None:
    volumes = _service(compose, "consent").setdefault("volumes", [])
    volumes.append("./deploy/docker/missing.conf:/etc/samtykke.conf:ro")
    assert _problems(compose) == ["consent: bind-mounted host path ./deploy/docker/missing.conf does not exist"]


def test_existing_bind_mounted_path_is_accepted(compose: dict[str, Any]) -> None:
    volumes = _service(compose, "consent").setdefault("volumes", [])
    volumes.append("./schemas:/app/schemas:ro")
    assert _problems(compose) == []


def test_undeclared_named_volume_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "kafka")["volumes"] = ["kafka-logs:/var/lib/kafka/data"]
    assert _problems(compose) == ["kafka: named volume 'kafka-logs' is not declared under volumes"]


def test_missing_dockerfile_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "consent")["build"]["dockerfile"] = "deploy/docker/Dockerfile.api"
    assert _problems(compose) == ["consent: Dockerfile deploy/docker/Dockerfile.api does not exist"]


def test_command_repeating_the_entrypoint_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "consent")["command"] = ["samtykke", "consent", "serve"]
    assert _problems(compose) == ["consent: command repeats the entrypoint 'samtykke'; drop its first word"]


def test_endpoint_on_a_port_nobody_listens_on_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "consent")["environment"]["SAMTYKKE_KAFKA_BOOTSTRAP"] = "kafka:9095"
    assert _problems(compose) == [
        f"consent: SAMTYKKE_KAFKA_BOOTSTRAP differs from {PROJECTORS_AND_SUPPRESSION}'s; "
        "every component uses the same Kafka, registry and topics",
        "consent: SAMTYKKE_KAFKA_BOOTSTRAP: kafka does not listen on port 9095",
    ]


def test_endpoint_left_at_localhost_is_reported(compose: dict[str, Any]) -> None:
    del _service(compose, "consent")["environment"]["SAMTYKKE_REGISTRY_URL"]
    assert _problems(compose) == [
        f"consent: SAMTYKKE_REGISTRY_URL differs from {PROJECTORS_AND_SUPPRESSION}'s; "
        "every component uses the same Kafka, registry and topics",
        "consent: SAMTYKKE_REGISTRY_URL: 127.0.0.1 inside a container is the container itself, not a compose service",
    ]


def test_database_credentials_must_match_postgres(compose: dict[str, Any]) -> None:
    _service(compose, "postgres")["environment"]["POSTGRES_PASSWORD"] = "changed"
    assert _problems(compose) == [
        "provision: SAMTYKKE_DATABASE_URL: password does not match the postgres service's POSTGRES_PASSWORD",
    ]


def test_consent_login_password_must_match_its_init_script(compose: dict[str, Any]) -> None:
    _service(compose, "postgres")["environment"]["CONSENT_DATABASE_PASSWORD"] = "changed"
    assert _problems(compose) == [
        "consent: SAMTYKKE_DATABASE_URL: password does not match the postgres service's CONSENT_DATABASE_PASSWORD",
    ]


def test_login_no_init_script_creates_is_reported(compose: dict[str, Any]) -> None:
    env = _service(compose, "consent")["environment"]
    env["SAMTYKKE_DATABASE_URL"] = env["SAMTYKKE_DATABASE_URL"].replace("samtykke_consent:", "consent_app:")
    assert _problems(compose) == [
        "consent: SAMTYKKE_DATABASE_URL: user 'consent_app' is neither POSTGRES_USER "
        "nor a login deploy/postgres creates",
    ]


def test_projector_database_is_compared_without_a_login(compose: dict[str, Any]) -> None:
    env = _service(compose, "projector-marketing")["environment"]
    env["SAMTYKKE_DATABASE_URL"] = "postgresql://postgres:5432/other"
    assert _problems(compose) == [
        "projector-marketing: SAMTYKKE_DATABASE_URL differs from provision, consent, "
        "projector-analytics, projector-customer-service's; every component uses one "
        "PostgreSQL database",
        "projector-marketing: SAMTYKKE_DATABASE_URL: database does not match the postgres service's POSTGRES_DB",
    ]


def test_image_setting_naming_a_folder_outside_the_image_is_reported(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM python:3.11-slim\nWORKDIR /app\nCOPY schemas/ schemas/\n"
        "ENV SAMTYKKE_SCHEMA_DIR=/app/schemas/avro \\\n    SAMTYKKE_STATE_DIR=/app/.state\n"
    )
    assert check_dockerfile(dockerfile, tmp_path) == [
        "ENV SAMTYKKE_SCHEMA_DIR=/app/schemas/avro: schemas/avro is not in the build context",
        "ENV SAMTYKKE_STATE_DIR=/app/.state: nothing in the image creates /app/.state",
    ]


def test_unknown_image_setting_is_reported(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.11-slim\nENV SAMTYKKE_SCHEMA_DIRECTORY=/app/schemas\n")
    assert check_dockerfile(dockerfile, tmp_path) == ["ENV SAMTYKKE_SCHEMA_DIRECTORY is not a Settings field"]


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
def test_port_entries_are_read_in_every_syntax(entry: object, ports: tuple[int | None, int]) -> None:
    assert published_ports({"ports": [entry]}) == [ports]


def test_copy_source_left_out_by_dockerignore_is_reported(tmp_path: Path) -> None:
    (tmp_path / "services").mkdir()
    (tmp_path / ".dockerignore").write_text("services/\n")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.11-slim\nCOPY services/ services/\n")
    assert check_dockerfile(dockerfile, tmp_path) == ["COPY source services/ is excluded by .dockerignore"]


def test_file_without_services_is_rejected(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("version: '3'\n")
    with pytest.raises(ValueError, match="no `services` mapping"):
        load_compose(broken)


def test_kafka_advertising_an_unpublished_host_port_is_reported(compose: dict[str, Any]) -> None:
    _service(compose, "kafka")["ports"] = ["127.0.0.1:29092:19092"]
    assert _problems(compose) == ["kafka: advertises 127.0.0.1:19092 to the host, but does not publish that host port"]
