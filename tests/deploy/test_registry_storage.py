"""The schema registry keeps its schemas in PostgreSQL in Docker Compose, as in the local stack.

Records on Kafka name their schema by id; a registry that started empty after a restart would leave
every consumer unable to decode the log. The local stack's durability is tested on the real registry
(tests/integration/test_stack.py); this checks that the compose file asks for the same.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_registry_uses_sql_storage_in_its_own_database() -> None:
    services = compose()["services"]
    registry = services["registry"]["environment"]
    assert registry["APICURIO_STORAGE_KIND"] == "sql"
    assert registry["APICURIO_STORAGE_SQL_KIND"] == "postgresql"
    assert registry["APICURIO_DATASOURCE_URL"] == "jdbc:postgresql://postgres:5432/samtykke_registry"
    assert services["registry"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_registry_database_and_login_are_made_by_the_postgres_init_script() -> None:
    services = compose()["services"]
    mounts = services["postgres"]["volumes"]
    assert "./deploy/postgres:/docker-entrypoint-initdb.d:ro" in mounts
    script = (ROOT / "deploy" / "postgres" / "10-registry.sh").read_text()
    registry = services["registry"]["environment"]
    assert f"CREATE ROLE {registry['APICURIO_DATASOURCE_USERNAME']} LOGIN" in script
    database = registry["APICURIO_DATASOURCE_URL"].rsplit("/", 1)[1]
    assert re.search(rf"CREATE DATABASE {database} OWNER {registry['APICURIO_DATASOURCE_USERNAME']}", script)
    # one variable sets the password on both sides
    assert registry["APICURIO_DATASOURCE_PASSWORD"] == services["postgres"]["environment"]["REGISTRY_DATABASE_PASSWORD"]
