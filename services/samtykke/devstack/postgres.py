"""PostgreSQL 15 from Debian's packages, as a private cluster of this checkout.

PostgreSQL refuses to run as root, so when the stack runs as root every server
command goes through `runuser -u postgres`. That user cannot enter a checkout in a
private folder (a home folder, `mktemp -d`), so a root stack keeps the cluster, its
socket and its log in `/var/lib/postgresql/samtykke/<key>/` (a random key kept in
`.state/postgres-cluster`, so every state folder has its own, and clusters of state
folders that are gone are removed); a non-root stack keeps them in `.state/postgres/`,
with the log in `.state/logs/`. pg_ctl manages the postmaster and
its pidfile; this module adds the config, the login role and the database named
in `settings.database_url`, created idempotently on every start.
"""

from __future__ import annotations

import os
import pwd
import shutil
import uuid
from pathlib import Path

import asyncpg

from samtykke.adapters.settings import Settings
from samtykke.devstack.layout import HostPort, StackLayout, database_address, without_password
from samtykke.devstack.parts import Report, StackError
from samtykke.devstack.process import (
    port_is_open,
    process_command_line,
    process_is_alive,
    run_blocking,
    run_logged,
    wait_until,
)

BIN_DIR = Path("/usr/lib/postgresql/15/bin")
# Debian's home of the postgres user: root stacks keep their clusters under it
ROOT_CLUSTERS = Path("/var/lib/postgresql/samtykke")
CONFIG_NAME = "samtykke.conf"
# local socket: only the server's own OS user (peer); TCP: password (scram)
HBA_RULES = "local all all peer\nhost all all 127.0.0.1/32 scram-sha-256\n"


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


async def database_answers(url: str, timeout: float = 5.0) -> bool:
    try:
        connection = await asyncpg.connect(url, timeout=timeout)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    try:
        return bool(await connection.fetchval("SELECT 1") == 1)
    finally:
        await connection.close()


class PostgresCluster:
    name = "postgres"

    def __init__(self, settings: Settings, layout: StackLayout) -> None:
        self.url = settings.database_url
        self.target = database_address(settings)
        self.as_root = os.geteuid() == 0
        if self.as_root:
            self.cluster_key = layout.state_dir / "postgres-cluster"
            self.home = ROOT_CLUSTERS / self._key()
            self.log_path = self.home / "postgres.log"
        else:
            self.home = layout.state_dir / "postgres"
            self.log_path = layout.log_path(self.name)
        self.data_dir = self.home / "data"
        self.socket_dir = self.home / "socket"
        self.os_user = "postgres" if self.as_root else pwd.getpwuid(os.geteuid()).pw_name

    def _key(self) -> str:
        """This state folder's cluster: a random key kept in the state folder, so a new clone (even at
        a path an old one had) gets a cluster of its own and never another checkout's data."""
        try:
            return self.cluster_key.read_text().strip()
        except FileNotFoundError:
            return uuid.uuid4().hex[:16]  # written by the install that makes the cluster

    def _forget_orphans(self, report: Report) -> None:
        """Clusters of state folders that are gone (a removed clone) and that no server runs."""
        for home in ROOT_CLUSTERS.glob("*/"):
            owner = home / "state-folder"
            if home == self.home or not owner.is_file() or Path(owner.read_text().strip()).is_dir():
                continue
            if not (home / "data" / "postmaster.pid").exists():
                report(f"postgres: removing {home}, the cluster of a state folder that is gone")
                shutil.rmtree(home, ignore_errors=True)

    @property
    def endpoint(self) -> str:
        return without_password(self.url)

    def is_installed(self) -> bool:
        tools = ("initdb", "pg_ctl", "postgres", "psql")
        binaries = all((BIN_DIR / tool).is_file() for tool in tools)
        return binaries and (self.data_dir / "PG_VERSION").is_file()

    def install(self, report: Report) -> None:
        if not (BIN_DIR / "pg_ctl").is_file():
            if not self.as_root:
                raise StackError(
                    self.name,
                    f"PostgreSQL 15 is missing ({BIN_DIR}); install it with `sudo apt-get install postgresql`",
                    self.log_path,
                )
            report("postgres: installing the Debian postgresql package")
            run_logged(self.name, ["apt-get", "update"], self.log_path, step="apt-get update")
            # `env` sets the frontend for apt only, without touching our own environment
            run_logged(
                self.name,
                ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "postgresql"],
                self.log_path,
                step="apt-get install postgresql",
            )
            if not (BIN_DIR / "pg_ctl").is_file():
                raise StackError(self.name, f"the postgresql package did not provide {BIN_DIR}", self.log_path)
        if not (self.data_dir / "PG_VERSION").is_file():
            report(f"postgres: creating a cluster in {self.data_dir}")
            if self.as_root:
                self._forget_orphans(report)
                self.cluster_key.parent.mkdir(parents=True, exist_ok=True)
                self.cluster_key.write_text(self.home.name + "\n")
            self._prepare_home()
            if self.as_root:
                (self.home / "state-folder").write_text(f"{self.cluster_key.parent}\n")
            run_logged(
                self.name,
                [
                    *self._as_server_user(),
                    str(BIN_DIR / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--encoding=UTF8",
                    "--locale=C",
                    "--auth-local=peer",
                    "--auth-host=reject",
                    "--no-sync",
                ],
                self.log_path,
                cwd=self.home,
                step="initdb",
            )
            (self.data_dir / "pg_hba.conf").write_text(HBA_RULES)

    def running_pid(self) -> int | None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError, PermissionError):
            return None
        # pg_ctl clears a stale postmaster.pid itself on the next start
        alive = process_is_alive(pid) and str(self.data_dir) in process_command_line(pid)
        return pid if alive else None

    def start(self) -> None:
        if port_is_open(HostPort(self.target.host, self.target.port)):
            raise StackError(
                self.name,
                f"port {self.target.port} is already taken by a process "
                "this stack did not start; stop it or change SAMTYKKE_DATABASE_URL",
                self.log_path,
            )
        self._prepare_home()
        self._write_config()
        run_logged(
            self.name,
            [
                *self._as_server_user(),
                str(BIN_DIR / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                "90",
                "start",
            ],
            self.log_path,
            cwd=self.home,
            timeout=120,
            step="pg_ctl start",
        )
        self._ensure_role_and_database()

    def is_ready(self) -> bool:
        return run_blocking(database_answers(self.url))

    def wait_ready(self, timeout: float) -> None:
        wait_until(self.name, self.is_ready, lambda: self.running_pid() is not None, timeout, self.log_path)

    def stop(self, timeout: float) -> None:
        if self.running_pid() is None:
            return
        run_logged(
            self.name,
            [
                *self._as_server_user(),
                str(BIN_DIR / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(timeout)),
                "stop",
            ],
            self.log_path,
            cwd=self.home,
            timeout=timeout + 10,
            step="pg_ctl stop",
        )

    def _as_server_user(self) -> list[str]:
        return ["runuser", "-u", self.os_user, "--"] if self.as_root else []

    def _prepare_home(self) -> None:
        """Folders and the log file must belong to the server's OS user."""
        for folder in (self.home, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.touch(exist_ok=True)
        if self.as_root:
            for path in (self.home, self.socket_dir, self.log_path):
                shutil.chown(path, user=self.os_user, group=self.os_user)

    def _write_config(self) -> None:
        # rewritten on every start so a changed port in the settings applies
        config = "\n".join(
            [
                "# written by `samtykke stack up` on every start; edit the settings instead",
                "listen_addresses = '127.0.0.1'",
                f"port = {self.target.port}",
                f"unix_socket_directories = {sql_literal(str(self.socket_dir))}",
                "max_connections = 200",
                # a throwaway dev cluster: durability traded for speed
                "fsync = off",
                "synchronous_commit = off",
                "full_page_writes = off",
                "",
            ]
        )
        (self.data_dir / CONFIG_NAME).write_text(config)
        if self.as_root:
            shutil.chown(self.data_dir / CONFIG_NAME, user=self.os_user, group=self.os_user)
        main_config = self.data_dir / "postgresql.conf"
        include = f"include '{CONFIG_NAME}'"
        if include not in main_config.read_text():
            with main_config.open("a") as handle:
                handle.write(f"\n{include}\n")

    def _ensure_role_and_database(self) -> None:
        role, database = sql_literal(self.target.user), sql_literal(self.target.database)
        # fed through stdin so the password shows up neither in argv nor in a file;
        # \gexec runs the generated statement only when the WHERE found nothing
        script = "\n".join(
            [
                f"SELECT format('CREATE ROLE %I LOGIN', {role}) "
                f"WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {role}) \\gexec",
                f"ALTER ROLE {sql_identifier(self.target.user)} LOGIN CREATEDB CREATEROLE "
                f"PASSWORD {sql_literal(self.target.password)};",
                f"SELECT format('CREATE DATABASE %I OWNER %I', {database}, {role}) "
                f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {database}) \\gexec",
                "",
            ]
        )
        run_logged(
            self.name,
            [
                *self._as_server_user(),
                str(BIN_DIR / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.target.port),
                "-d",
                "postgres",
                "-f",
                "-",
            ],
            self.log_path,
            cwd=self.home,
            stdin_text=script,
            step=f"creating role {self.target.user} and database {self.target.database}",
        )
