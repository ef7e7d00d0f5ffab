"""The real `samtykke` command line, asked about an argument list.

Compose services and Kubernetes containers both run the image's `samtykke`
entrypoint with arguments. These helpers tell whether the real parser accepts
those arguments and which HTTP port the command they name serves on.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, cast

from pydantic_settings import BaseSettings

from samtykke.adapters.settings import Settings
from samtykke.cli import build_parser
from samtykke.projections.domains import DOMAINS


@lru_cache(maxsize=1)
def _samtykke_parser() -> Any:
    return build_parser()


def samtykke_command_problem(words: Sequence[str]) -> str | None:
    """Why the real parser rejects `samtykke <words>`; None when it accepts them."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            _samtykke_parser().parse_args(list(words))
    except SystemExit as stop:
        if stop.code == 0:
            return "it only prints the help"
        lines = errors.getvalue().strip().splitlines() or ["rejected"]
        return lines[-1].split("error: ", 1)[-1]
    return None


def command_port(words: Sequence[str], settings: BaseSettings) -> int | None:
    """The port `samtykke <words>` serves HTTP on (/metrics, /healthz, /ready); None if none."""
    if list(words[:2]) == ["projections", "run"] and len(words) > 2 and words[2] in DOMAINS:
        return int(DOMAINS[words[2]].web_port(cast(Settings, settings)))
    fields = type(settings).model_fields
    # the most specific word first: `consent relay` serves on relay_port, `consent serve` on consent_port
    field = next((f"{word}_port" for word in reversed(words) if f"{word}_port" in fields), None)
    return int(getattr(settings, field)) if field else None
