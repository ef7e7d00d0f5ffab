"""`samtykke tail TOPIC`: a downstream team's first look at a topic, one JSON object per record.

    samtykke tail consent.changes.v2 --from-beginning --max 5
    samtykke tail consent.changes.v2 --since 10m --partition 2
    samtykke tail consent.watermarks --offset -1 --follow

Each line holds the partition, offset, record timestamp (ISO 8601, UTC), the key (Avro through the
registry when it is Confluent-framed, else UTF-8 text, else hex; `key_format` says which), the
headers (UTF-8 text, else `{"base64": ...}`) and the value decoded with its writer schema from the
registry (`schema_id`), Avro times as ISO 8601. A tombstone's value is null. A value that cannot be
decoded never stops the tail: its line has `error` and the raw bytes as `value_base64`.

Reads as the configured principal (`client_options`: SASL_SSL and the `tools` user on the local
stack), with no consumer group: nothing is committed, no other reader is disturbed. Without
`--follow` it stops at the ends the partitions had when it started.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition

from samtykke.adapters.avro import AvroDecoder, RegistryError, SchemaRegistry, UndecodableMessage
from samtykke.adapters.kafka import KafkaSecurityError, TopicsMissing, client_options, topic_partitions
from samtykke.adapters.settings import Settings, get_settings

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_POLL_MS = 500


@dataclass(frozen=True, slots=True)
class Start:
    """Where each partition is read from: its end, its beginning, an offset (negative: that many
    before the end), or the first record at or after a time."""

    kind: Literal["end", "beginning", "offset", "since"] = "end"
    offset: int = 0
    since: datetime | None = None


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) or a duration back from now: 90s, 10m, 2h, 1d."""
    found = _DURATION.fullmatch(text.strip())
    if found:
        return (now or datetime.now(UTC)) - timedelta(seconds=float(found[1]) * _UNITS[found[2]])
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither an ISO 8601 time nor a duration like 10m") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def iso(at: datetime) -> str:
    """UTC, `Z`, milliseconds unless the time has finer digits (timestamp-micros)."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    spec = "milliseconds" if aware.microsecond % 1000 == 0 else "microseconds"
    return aware.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def jsonable(value: Any) -> Any:
    """A decoded Avro value as JSON: times ISO 8601, uuids text, bytes base64, decimals text."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def text_or_base64(value: bytes | None) -> str | dict[str, str] | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def header_object(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, Any]:
    """Headers by name; a name that repeats keeps every value, in order, as a list."""
    shown: dict[str, Any] = {}
    for name, value in headers:
        text = text_or_base64(value)
        if name not in shown:
            shown[name] = text
        elif isinstance(shown[name], list):
            shown[name].append(text)
        else:
            shown[name] = [shown[name], text]
    return shown


async def decode_key(decoder: AvroDecoder, key: bytes | None) -> tuple[Any, str | None]:
    """(the key, how it was read): Avro when Confluent-framed, else UTF-8 text, else hex."""
    if key is None:
        return None, None
    if key[:1] == b"\x00" and len(key) > 5:
        try:
            return jsonable(await decoder.decode(key)), "avro"
        except (UndecodableMessage, RegistryError):
            return key.hex(), "hex"
    text = text_or_base64(key)
    return (text, "utf-8") if isinstance(text, str) else (key.hex(), "hex")


async def render(record: Any, decoder: AvroDecoder) -> dict[str, Any]:
    """One consumed record (aiokafka's `ConsumerRecord`) as the JSON object printed for it."""
    key, key_format = await decode_key(decoder, record.key)
    line: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": iso(datetime.fromtimestamp(record.timestamp / 1000, UTC)),
        "timestamp_type": "log_append" if record.timestamp_type == 1 else "create",
        "key": key,
        "key_format": key_format,
        "headers": header_object(list(record.headers or ())),
        "value": None,
    }
    if record.value is None:
        return line
    try:
        line["value"] = jsonable(await decoder.decode(record.value))
        line["schema_id"] = AvroDecoder.schema_id(record.value)
    except (UndecodableMessage, RegistryError) as exc:  # a registry error is shown, never fatal, here
        line["error"] = f"{type(exc).__name__}: {exc}"
        line["value_base64"] = base64.b64encode(record.value).decode()
    return line


async def _positions(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], start: Start
) -> dict[TopicPartition, int]:
    firsts = await consumer.beginning_offsets(partitions)
    ends = await consumer.end_offsets(partitions)
    if start.kind == "beginning":
        return dict(firsts)
    if start.kind == "offset":
        wanted = {tp: ends[tp] + start.offset if start.offset < 0 else start.offset for tp in partitions}
        return {tp: min(max(wanted[tp], firsts[tp]), ends[tp]) for tp in partitions}
    if start.kind == "since":
        assert start.since is not None
        millis = int(start.since.timestamp() * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, millis))
        return {tp: ends[tp] if found.get(tp) is None else found[tp].offset for tp in partitions}
    return dict(ends)


async def tail(
    settings: Settings,
    topic: str,
    start: Start,
    out: TextIO,
    *,
    follow: bool = False,
    partition: int | None = None,
    limit: int | None = None,
) -> int:
    """Print the records as JSON lines to `out`; returns how many were printed."""
    kafka = client_options(settings)
    partitions = await topic_partitions(kafka, [topic])
    if partition is not None:
        partitions = [tp for tp in partitions if tp.partition == partition]
        if not partitions:
            raise TopicsMissing([f"{topic} partition {partition}"])
    registry = SchemaRegistry.from_settings(settings)
    decoder = AvroDecoder(registry)
    consumer = AIOKafkaConsumer(**kafka, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    printed = 0
    try:
        consumer.assign(partitions)
        positions = await _positions(consumer, partitions, start)
        for tp, offset in positions.items():
            consumer.seek(tp, offset)
        ends = await consumer.end_offsets(partitions)
        open_ = {tp for tp in partitions if follow or positions[tp] < ends[tp]}
        while open_ and (limit is None or printed < limit):
            batches = await consumer.getmany(*open_, timeout_ms=_POLL_MS)
            for tp, records in sorted(batches.items()):
                for record in records:
                    if (not follow and record.offset >= ends[tp]) or (limit is not None and printed >= limit):
                        break
                    print(json.dumps(await render(record, decoder), ensure_ascii=False), file=out, flush=True)
                    printed += 1
            if not follow:
                open_ = {tp for tp in open_ if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
        await registry.aclose()
    return printed


def run(args: argparse.Namespace) -> int:
    start = Start()
    if args.from_beginning:
        start = Start("beginning")
    elif args.offset is not None:
        start = Start("offset", offset=args.offset)
    elif args.since is not None:
        start = Start("since", since=args.since)
    try:
        asyncio.run(
            tail(
                get_settings(),
                args.topic,
                start,
                sys.stdout,
                follow=args.follow,
                partition=args.partition,
                limit=args.max,
            )
        )
    except (TopicsMissing, KafkaSecurityError) as error:
        print(f"samtykke tail: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `| head`: the reader has what it wanted; nothing left to flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("tail", help="print a topic's records as JSON lines, decoded with the schema registry")
    parser.add_argument("topic", metavar="TOPIC")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--from-beginning", action="store_true", help="from each partition's oldest record")
    where.add_argument(
        "--offset", type=int, metavar="N", help="from offset N of each partition (negative: N records before its end)"
    )
    where.add_argument(
        "--since",
        type=parse_since,
        metavar="TIME",
        help="from the first record at or after TIME: ISO 8601 (UTC unless it says) or a duration back (10m, 2h, 1d)",
    )
    parser.add_argument("--follow", action="store_true", help="keep reading new records (default: stop at the end)")
    parser.add_argument("--partition", type=int, metavar="P", help="only partition P")
    parser.add_argument("--max", type=int, metavar="N", help="stop after N records")
    parser.set_defaults(handler=run)
