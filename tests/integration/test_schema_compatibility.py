"""Every .avsc in schemas/avro is FULL_TRANSITIVE compatible with all its earlier versions.

The registry is the judge: the history is registered in order under FULL_TRANSITIVE (it
refuses an incompatible version), then the current source is checked against all of it.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from samtykke.adapters.avro import RegistryError, SchemaRegistry
from samtykke.adapters.settings import PACKAGED_SCHEMAS

SCHEMAS = PACKAGED_SCHEMAS
NAMES = sorted(p.stem for p in SCHEMAS.glob("*.avsc"))


def history(name: str) -> list[Path]:
    versions = SCHEMAS.glob(f"history/{name}.v*.avsc")
    return sorted(versions, key=lambda p: int(re.findall(r"\.v(\d+)\.avsc$", p.name)[0]))


def test_every_schema_has_a_history_ending_in_the_current_source() -> None:
    assert {"ConsentChanged", "SubjectChanged", "Watermark"} <= set(NAMES)
    for name in NAMES:
        versions = history(name)
        assert versions, f"{name}: add schemas/avro/history/{name}.v1.avsc"
        current = json.loads((SCHEMAS / f"{name}.avsc").read_text())
        assert json.loads(versions[-1].read_text()) == current, (
            f"{name}.avsc changed: copy it to history as v{len(versions) + 1}"
        )


async def _registered(stack: Any, name: str) -> tuple[SchemaRegistry, str]:
    registry = SchemaRegistry(stack.registry_url)
    subject = f"compat-{uuid.uuid4().hex}-{name}"
    first, *later = history(name)
    await registry.register(subject, first.read_text())
    await registry.set_compatibility(subject, "FULL_TRANSITIVE")
    for version in later:  # refused (HTTP 409) if it breaks any earlier version
        await registry.register(subject, version.read_text())
    return registry, subject


@pytest.mark.parametrize("name", NAMES)
async def test_current_schema_is_full_transitive_compatible(stack: Any, name: str) -> None:
    registry, subject = await _registered(stack, name)
    try:
        assert await registry.is_compatible(subject, (SCHEMAS / f"{name}.avsc").read_text())
    finally:
        await registry.aclose()


async def test_an_incompatible_change_is_refused(stack: Any) -> None:
    """The check can fail: dropping a field without a default breaks FULL compatibility."""
    registry, subject = await _registered(stack, "ConsentChanged")
    broken = json.loads((SCHEMAS / "ConsentChanged.avsc").read_text())
    broken["fields"] = [f for f in broken["fields"] if f["name"] != "purpose"]
    try:
        assert not await registry.is_compatible(subject, json.dumps(broken))
        with pytest.raises(RegistryError):
            await registry.register(subject, json.dumps(broken))
    finally:
        await registry.aclose()
