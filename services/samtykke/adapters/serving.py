"""Starting an HTTP service process: the refusal of development secrets, logging, then uvicorn."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from samtykke.adapters.safety import refuse_development_secrets
from samtykke.adapters.settings import Settings


def serve_http(create_app: Callable[[Settings], Any], settings: Settings, command: Sequence[str], port: int) -> None:
    """Serve `create_app(settings)` on `port`, as `samtykke <command>`: refused first if it would hold a
    development secret it uses where that matters (`adapters.safety`)."""
    import uvicorn

    refuse_development_secrets(settings, command)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry call is noise
    uvicorn.run(create_app(settings), host=settings.http_host, port=port, log_level="info", access_log=False)
