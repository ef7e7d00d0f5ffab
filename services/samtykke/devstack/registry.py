"""Apicurio Registry as the Avro schema registry, served on its Confluent-compatible API.

3.0.9 is the newest Apicurio on Maven Central that runs on Java 17 in the
`legacy-jar` layout (a runner jar plus lib/). It keeps its schemas in the stack's
PostgreSQL (Apicurio's SQL storage), in a database and role of its own, so a
restart keeps every schema id: a record on Kafka names its schema by that id, and
a registry restarted empty would leave every consumer unable to decode the log.
The registry creates its tables itself at first start.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import shutil
import tarfile
import time
from pathlib import Path

import asyncpg
import httpx

from samtykke.adapters.settings import Settings
from samtykke.devstack.layout import HostPort, StackLayout, database_address, registry_address
from samtykke.devstack.parts import Report, StackError
from samtykke.devstack.postgres import database_answers
from samtykke.devstack.process import DetachedProcess, port_is_open, wait_until

APICURIO_VERSION = "3.0.9"
ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
ARCHIVE_NAME = f"apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"
RUNNER_JAR = f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar"
MAVEN_CENTRAL = "https://repo.maven.apache.org/maven2"
ARCHIVE_PATH = f"io/apicurio/apicurio-registry-app/{APICURIO_VERSION}/{ARCHIVE_NAME}"
# the registry's own database and login in the stack's PostgreSQL (a local development
# secret, like the stack's own login; deployments give the registry theirs)
STORAGE_DATABASE = "samtykke_registry"
STORAGE_ROLE = "samtykke_registry"
STORAGE_PASSWORD = "dev-only-registry-password"
DATABASE_WAIT_SECONDS = 90.0


async def ensure_storage_database(owner_url: str) -> None:
    """The registry's role and database, created idempotently through the stack's owner login."""
    owner = await asyncpg.connect(owner_url)
    try:
        if not await owner.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", STORAGE_ROLE):
            await owner.execute(f'CREATE ROLE "{STORAGE_ROLE}" LOGIN')
        statement = await owner.fetchval(
            "SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)", STORAGE_ROLE, STORAGE_PASSWORD
        )
        await owner.execute(statement)
        if not await owner.fetchval("SELECT true FROM pg_database WHERE datname = $1", STORAGE_DATABASE):
            # the owner login must be a member of the role to hand it the database
            await owner.execute(f'GRANT "{STORAGE_ROLE}" TO CURRENT_USER')
            await owner.execute(f'CREATE DATABASE "{STORAGE_DATABASE}" OWNER "{STORAGE_ROLE}"')
    finally:
        await owner.close()


def _contained_members(archive: tarfile.TarFile, folder: Path) -> list[tarfile.TarInfo]:
    """Regular files, folders and links that stay inside `folder`; anything else refused."""
    root = folder.resolve()
    source = os.fsdecode(archive.name) if archive.name else "the archive"
    members = []
    for member in archive.getmembers():
        target = (root / member.name).resolve()
        # a symbolic link points from its own folder, a hard link names a member of the archive
        link = (target.parent / member.linkname) if member.issym() else (root / member.linkname)
        link = link.resolve() if member.issym() or member.islnk() else root
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise StackError("registry", f"{source}: {member.name} is not a file or folder", None)
        if not target.is_relative_to(root) or not link.is_relative_to(root):
            raise StackError("registry", f"{source}: {member.name} would land outside {root}", None)
        members.append(member)
    return members


def maven_local_repository() -> Path:
    # Maven's default location; the account database rather than $HOME, since
    # only the settings module reads the environment
    return Path(pwd.getpwuid(os.geteuid()).pw_dir) / ".m2" / "repository"


class SchemaRegistryProcess:
    name = "registry"

    def __init__(self, settings: Settings, layout: StackLayout) -> None:
        self.owner_url = settings.database_url
        self.database = database_address(settings)
        self.url = settings.registry_url.rstrip("/")
        self.address: HostPort = registry_address(settings)
        self.home = layout.state_dir / "apicurio" / APICURIO_VERSION
        self.runner_jar = self.home / RUNNER_JAR
        self.archive = layout.downloads_dir / ARCHIVE_NAME
        self.log_path = layout.log_path(self.name)
        self.process = DetachedProcess(
            self.name, layout.pid_path(self.name), self.log_path, marker=str(self.runner_jar)
        )

    @property
    def endpoint(self) -> str:
        return self.url

    def is_installed(self) -> bool:
        return self.runner_jar.is_file() and (self.home / "lib").is_dir()

    def install(self, report: Report) -> None:
        for tool in ("java",):  # the archive comes over HTTPS, no Maven needed
            if shutil.which(tool) is None:
                raise StackError(self.name, f"{tool} is required (Java 17+ and Maven)", self.log_path)
        archive = self._locate_archive(report)
        report(f"registry: unpacking into {self.home}")
        self._unpack(archive)
        if not self.is_installed():
            raise StackError(self.name, f"{self.archive} holds no {RUNNER_JAR}", self.log_path)

    def running_pid(self) -> int | None:
        return self.process.running_pid()

    def start(self) -> None:
        if port_is_open(self.address):
            raise StackError(
                self.name,
                f"port {self.address} is already taken by a process this "
                "stack did not start; stop it or change SAMTYKKE_REGISTRY_URL",
                self.log_path,
            )
        self._prepare_storage()
        self.process.spawn(
            [
                "java",
                "-Xms64m",
                "-Xmx384m",
                f"-Dquarkus.http.host={self.address.host}",
                f"-Dquarkus.http.port={self.address.port}",
                "-jar",
                str(self.runner_jar),
            ],
            cwd=self.home,
        )

    def _prepare_storage(self) -> None:
        """The registry's database and role, then its storage settings in the file Quarkus reads
        from the working directory (so the password is in no process's command line)."""
        deadline = time.monotonic() + DATABASE_WAIT_SECONDS
        # the stack starts its parts together: PostgreSQL may still be coming up
        while not asyncio.run(database_answers(self.owner_url)):
            if time.monotonic() > deadline:
                raise StackError(self.name, "PostgreSQL (its storage) did not answer", self.log_path)
            time.sleep(0.5)
        asyncio.run(ensure_storage_database(self.owner_url))
        config = self.home / "config"
        config.mkdir(exist_ok=True)
        properties = config / "application.properties"
        properties.write_text(
            "\n".join(
                [
                    "# written by `samtykke stack up` on every start",
                    "apicurio.storage.kind=sql",
                    "apicurio.storage.sql.kind=postgresql",
                    f"apicurio.datasource.url=jdbc:postgresql://{self.database.host}:{self.database.port}/"
                    f"{STORAGE_DATABASE}",
                    f"apicurio.datasource.username={STORAGE_ROLE}",
                    f"apicurio.datasource.password={STORAGE_PASSWORD}",
                    "",
                ]
            )
        )
        properties.chmod(0o600)

    def is_ready(self) -> bool:
        if not port_is_open(self.address):
            return False
        base = f"http://{self.address}"
        try:
            with httpx.Client(timeout=5.0) as client:
                health = client.get(f"{base}/health/ready")
                # the ccompat API is what the services use: it must answer too
                subjects = client.get(f"{self.url}/subjects")
        except httpx.HTTPError:
            return False
        return health.status_code == 200 and subjects.status_code == 200

    def wait_ready(self, timeout: float) -> None:
        wait_until(self.name, self.is_ready, self.process.is_alive, timeout, self.log_path)

    def stop(self, timeout: float) -> None:
        self.process.stop(timeout)

    def _locate_archive(self, report: Report) -> Path:
        if self.archive.is_file():
            return self.archive
        cached = maven_local_repository() / ARCHIVE_PATH
        if cached.is_file():
            # once Maven holds the archive, its copy goal would also read the pom,
            # whose parent (io.apicurio:apicurio-registry:3.0.9) Central does not serve
            report(f"registry: using {cached}")
            return cached
        report(f"registry: fetching {ARTIFACT} from Maven Central")
        # Maven's dependency plugin insists on reading the artifact's pom, whose parent
        # (io.apicurio:apicurio-registry:3.0.9) Central does not serve; the archive itself
        # is there, so fetch it over HTTPS and check it against Central's published SHA-1.
        self.archive.parent.mkdir(parents=True, exist_ok=True)
        partial = self.archive.with_suffix(".partial")
        digest = hashlib.sha1()
        try:
            with httpx.Client(timeout=120.0, follow_redirects=True) as client:
                expected = client.get(f"{MAVEN_CENTRAL}/{ARCHIVE_PATH}.sha1").raise_for_status().text.split()[0]
                with client.stream("GET", f"{MAVEN_CENTRAL}/{ARCHIVE_PATH}") as response, partial.open("wb") as out:
                    response.raise_for_status()
                    for chunk in response.iter_bytes(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise StackError(self.name, f"downloading {ARTIFACT} failed: {exc}", self.log_path) from exc
        if digest.hexdigest() != expected:
            partial.unlink(missing_ok=True)
            raise StackError(self.name, f"{ARCHIVE_NAME}: SHA-1 mismatch with Maven Central", self.log_path)
        partial.rename(self.archive)
        return self.archive

    def _unpack(self, archive_path: Path) -> None:
        staging = self.home.with_name(self.home.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with tarfile.open(archive_path) as archive:
            if hasattr(tarfile, "data_filter"):
                # the "data" filter refuses absolute paths and links leaving the folder
                archive.extractall(staging, filter="data")
            else:  # Python 3.11 before 3.11.4 (Debian 12's): the same refusal, by hand
                archive.extractall(staging, members=_contained_members(archive, staging))
        # move into place only when complete, so a broken unpack is never "installed"
        shutil.rmtree(self.home, ignore_errors=True)
        staging.rename(self.home)
