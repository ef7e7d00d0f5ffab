"""Avro in the Confluent wire format (magic byte, 4-byte schema id, body) through a schema registry.

`SchemaRegistry` speaks the Confluent REST API (Apicurio's `/apis/ccompat/v7` included).
`AvroEncoder` registers the writer schema once and then encodes without I/O;
`AvroDecoder` fetches writer schemas by id (cached) and resolves them to the reader schema.

A schema id the registry does not know is `UnknownSchemaId`, a *retriable* registry error, never
poison: the registry may have been restarted empty, or not yet hold what a writer registered.
A consumer retries with backoff (its readers go stale meanwhile) instead of skipping the record.
"""

from __future__ import annotations

import io
import json
import ssl
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import httpx

from samtykke.adapters.settings import Settings

MAGIC = 0
_HEADER = struct.Struct(">bI")
_CONTENT_TYPE = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


class RegistryError(RuntimeError):
    """The registry refused or could not be reached; retriable when `retriable` is true."""

    def __init__(self, message: str, retriable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.status = status  # the HTTP status of a refusal; None when unreachable


class UnknownSchemaId(RegistryError):
    """A record is framed with a schema id the registry does not know (yet, or any more).

    Transient: the writer re-registers (`AvroEncoder.ensure_registered`) or the registry's storage
    comes back; a reader retries with backoff and never dead-letters the record."""

    def __init__(self, schema_id: int) -> None:
        super().__init__(f"unknown schema id {schema_id}", retriable=True, status=404)
        self.schema_id = schema_id


class UndecodableMessage(ValueError):
    """Bytes that are not a Confluent-framed Avro record we can read (a poison message)."""


def load_schema(schema_dir: Path, name: str) -> str:
    return (schema_dir / f"{name}.avsc").read_text("utf-8")


def registry_client(settings: Settings) -> httpx.AsyncClient:
    """An HTTP client for the registry as the settings say: basic auth (`registry_username`,
    `registry_password`) or a bearer token (`registry_token`), and a CA bundle for an `https://`
    registry with a private CA (`registry_ca_file`). The local stack's registry needs none."""
    auth: httpx.Auth | None = None
    headers: dict[str, str] = {}
    if settings.registry_username is not None and settings.registry_password is not None:
        auth = httpx.BasicAuth(settings.registry_username, settings.registry_password.get_secret_value())
    if settings.registry_token is not None:
        headers["Authorization"] = f"Bearer {settings.registry_token.get_secret_value()}"
    verify: ssl.SSLContext | bool = True
    if settings.registry_ca_file is not None:
        if not settings.registry_ca_file.is_file():
            raise ValueError(f"SAMTYKKE_REGISTRY_CA_FILE: no such file {settings.registry_ca_file}")
        verify = ssl.create_default_context(cafile=str(settings.registry_ca_file))
    return httpx.AsyncClient(timeout=10.0, auth=auth, headers=headers, verify=verify)


class SchemaRegistry:
    def __init__(self, url: str, client: httpx.AsyncClient | None = None) -> None:
        self._url = url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=10.0)

    @classmethod
    def from_settings(cls, settings: Settings) -> SchemaRegistry:
        return cls(settings.registry_url, registry_client(settings))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = await self._client.request(method, self._url + path, json=body, headers=_CONTENT_TYPE)
        except httpx.HTTPError as exc:
            raise RegistryError(f"schema registry unreachable: {exc}", retriable=True) from exc
        if response.status_code >= 400:
            raise RegistryError(
                f"schema registry {method} {path}: {response.status_code} {response.text[:300]}",
                retriable=response.status_code >= 500,
                status=response.status_code,
            )
        return response.json()

    async def register(self, subject: str, schema: str) -> int:
        result = await self._call("POST", f"/subjects/{subject}/versions", {"schema": schema})
        return int(result["id"])

    async def schema_by_id(self, schema_id: int) -> str:
        result = await self._call("GET", f"/schemas/ids/{schema_id}")
        return str(result["schema"])

    async def set_compatibility(self, subject: str, level: str) -> None:
        await self._call("PUT", f"/config/{subject}", {"compatibility": level})

    async def is_compatible(self, subject: str, schema: str) -> bool:
        result = await self._call("POST", f"/compatibility/subjects/{subject}/versions/latest", {"schema": schema})
        return bool(result["is_compatible"])


class AvroEncoder:
    """Encodes records of one schema for one topic's value subject (`<topic>-value`)."""

    def __init__(self, registry: SchemaRegistry, topic: str, schema: str) -> None:
        self._registry = registry
        self.subject = f"{topic}-value"
        self._schema_text = schema
        self._parsed = fastavro.parse_schema(json.loads(schema))
        self._header: bytes | None = None
        self.schema_id: int | None = None

    async def register(self) -> int:
        schema_id = await self._registry.register(self.subject, self._schema_text)
        self._header = _HEADER.pack(MAGIC, schema_id)
        self.schema_id = schema_id
        return schema_id

    async def ensure_registered(self) -> int:
        """Register again when the registry no longer knows our id, or knows it as another schema
        (a registry restarted empty hands ids out afresh); returns the id in use. For a writer to
        call periodically: records framed with a forgotten id would hold every reader back."""
        if self.schema_id is not None:
            try:
                known = await self._registry.schema_by_id(self.schema_id)
            except RegistryError as exc:
                if exc.status != 404:
                    raise
            else:
                if fastavro.parse_schema(json.loads(known)) == self._parsed:
                    return self.schema_id
        return await self.register()

    @property
    def ready(self) -> bool:
        return self._header is not None

    def encode(self, record: dict[str, Any]) -> bytes:
        if self._header is None:
            raise RuntimeError("register() the schema before encoding")
        buffer = io.BytesIO()
        buffer.write(self._header)
        fastavro.schemaless_writer(buffer, self._parsed, record)
        return buffer.getvalue()


def without_logical_types(schema: Any) -> Any:
    """The schema with every `logicalType` dropped: its values decode as their underlying types
    (timestamp-millis as epoch milliseconds, uuid as a string), which the events' `from_record`
    convert themselves, at a fraction of fastavro's cost of making datetimes and UUIDs first."""
    if isinstance(schema, dict):
        return {k: without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [without_logical_types(v) for v in schema]
    return schema


class AvroDecoder:
    """Decodes Confluent-framed records of any registered writer schema into the reader schema.

    `logical_types=False` (the services' event paths) leaves timestamps as epoch milliseconds and
    uuids as strings."""

    def __init__(self, registry: SchemaRegistry, reader_schema: str | None = None, logical_types: bool = True) -> None:
        self._registry = registry
        self._shape: Callable[[Any], Any] = (lambda schema: schema) if logical_types else without_logical_types
        self._reader = fastavro.parse_schema(self._shape(json.loads(reader_schema))) if reader_schema else None
        # per writer schema id: (writer, reader to resolve into, or None when they are the same:
        # fastavro would otherwise compare the two parsed schemas on every message)
        self._writers: dict[int, tuple[Any, Any]] = {}

    async def decode(self, data: bytes | None) -> dict[str, Any]:
        schema_id = self.schema_id(data)
        schemas = self._writers.get(schema_id)
        if schemas is None:
            try:
                text = await self._registry.schema_by_id(schema_id)
            except RegistryError as exc:
                if exc.status == 404:
                    raise UnknownSchemaId(schema_id) from exc
                raise
            writer = fastavro.parse_schema(self._shape(json.loads(text)))
            schemas = self._writers[schema_id] = (writer, None if writer == self._reader else self._reader)
        return self.decode_with(*schemas, data=data)  # type: ignore[arg-type]

    def decode_with(self, writer: Any, reader: Any = None, *, data: bytes) -> dict[str, Any]:
        try:
            record = fastavro.schemaless_reader(io.BytesIO(data[_HEADER.size :]), writer, reader)
        except Exception as exc:  # fastavro raises assorted errors on corrupt bodies
            raise UndecodableMessage(f"corrupt Avro body: {type(exc).__name__}: {exc}") from exc
        if not isinstance(record, dict):
            raise UndecodableMessage("Avro body is not a record")
        return record

    @staticmethod
    def schema_id(data: bytes | None) -> int:
        if data is None or len(data) < _HEADER.size:
            raise UndecodableMessage("message too short for the Confluent wire format")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise UndecodableMessage(f"unknown magic byte {magic}")
        return int(schema_id)
