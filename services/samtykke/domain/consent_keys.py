"""The key and partition of a consent's records on `consent.changes`.

A record is keyed by the consent it describes, `<subject_id>/<purpose>/<channel or ->`, so log
compaction keeps the latest state of every consent (and a tombstone removes one). The partition
is chosen from the subject id alone, so every consent of one subject shares a partition and the
subject's changes stay ordered:

    partition = (murmur2(utf8(subject_id)) & 0x7fffffff) % partitions

which is exactly what Kafka's default partitioner (Java client, librdkafka's `murmur2_random`)
does for a record whose key is the subject id: any other producer can reproduce it, and records
keyed by the subject id alone (`consent.subjects`) land on the same partition number.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

NO_CHANNEL_KEY = "-"
_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ConsentKey:
    subject_id: str
    purpose: str
    channel: str | None

    def __str__(self) -> str:
        return f"{self.subject_id}/{self.purpose}/{self.channel or NO_CHANNEL_KEY}"


def consent_key(subject_id: str, purpose: str, channel: str | None) -> str:
    return str(ConsentKey(subject_id, purpose, channel or None))


def parse_consent_key(key: str) -> ConsentKey:
    """The consent a record key names; ValueError when it is not a consent key."""
    parts = key.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError("a consent key is <subject_id>/<purpose>/<channel or ->")
    subject_id, purpose, channel = parts
    return ConsentKey(subject_id, purpose, None if channel == NO_CHANNEL_KEY else channel)


def subject_of_key(key: str) -> str:
    """The subject a record key belongs to: a consent key's first part, or a subject id itself."""
    return key.split("/", 1)[0]


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), as a signed 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for k in struct.unpack_from(f"<{whole // 4}I", data):  # the little-endian 4-byte words
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def subject_partition(key: str, partitions: int) -> int:
    """The partition of a record keyed by `key` (a consent key or a subject id): its subject's."""
    return _subject_hash(subject_of_key(key)) % partitions


# a subject's records come together (its SubjectChanged beside its changes, a batch of its decisions):
# the relay hashes each subject once while it is recent, not once per record (~11 us in Python)
@functools.lru_cache(maxsize=1 << 16)
def _subject_hash(subject_id: str) -> int:
    return murmur2(subject_id.encode("utf-8")) & 0x7FFFFFFF
