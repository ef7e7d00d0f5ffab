"""`samtykke suppression …`: serve the service, import a register file through its API.

samtykke suppression serve
samtykke suppression import-register FILE --register NIX --published 2026-11-01 [--force] [--url URL] [--key KEY]

The service checks the file before it publishes it to every replica: a suspicious file (undecodable,
empty, mostly invalid, or dropping much of the list in use) is refused with the rule it breaks;
`--force` publishes it anyway.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

from samtykke.adapters.settings import get_settings
from samtykke.domain.registers import Register


def serve(args: argparse.Namespace) -> int:
    from .app import serve as run

    run(get_settings())
    return 0


def import_register(args: argparse.Namespace) -> int:
    settings = get_settings()
    url = args.url or f"http://{settings.http_host}:{settings.suppression_port}"
    path = Path(args.file)
    headers = {"Authorization": f"Bearer {args.key}", "Content-Type": "text/plain"}
    with httpx.Client(base_url=url, headers=headers, timeout=600) as client, path.open("rb") as body:
        params = {"published": args.published} | ({"force": "true"} if args.force else {})
        response = client.post(f"/v1/registers/{args.register}/imports", params=params, content=body)
        if response.status_code != 202:
            problems = (
                response.json().get("problems", [])
                if response.headers.get("content-type", "").startswith("application/json")
                else []
            )
            rules = "; ".join(p["rule"] for p in problems) or response.text
            hint = " (--force publishes it anyway)" if response.status_code == 422 else ""
            print(f"import refused: {response.status_code} {rules}{hint}", file=sys.stderr)
            return 1
        job = response.json()
        while job["state"] == "running":
            time.sleep(0.5)
            job = client.get(f"/v1/registers/imports/{job['job_id']}").json()
            print(f"\r{args.register}: {job['read']:,} rows read, {job['invalid']:,} invalid", end="", flush=True)
    print(
        f"\r{args.register} published {job['published']}: {job['state']}; read {job['read']:,}, "
        f"listed {job['listed']:,}, matched {job['matched']:,}, invalid {job['invalid']:,}"
        + (" (forced)" if job.get("forced") else "")
        + (f"; {job['error']}" if job.get("error") else "")
        + (f" (first invalid lines: {job['invalid_lines'][:10]})" if job["invalid"] else "")
    )
    return 0 if job["state"] == "done" else 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("suppression", help="the suppression service")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("serve", help="HTTP API over the in-memory index fed from Kafka").set_defaults(handler=serve)

    load = actions.add_parser("import-register", help="import a national register file through the API")
    load.add_argument("file", help="one phone number per line (E.164 or the register country's national form)")
    load.add_argument("--register", required=True, choices=[r.value for r in Register])
    load.add_argument("--published", required=True, help="publication date of the file, YYYY-MM-DD")
    load.add_argument("--url", default=None, help="suppression service URL (default: the local one)")
    load.add_argument("--key", default="dev-registers", help="API key with the registers:import scope")
    load.add_argument("--force", action="store_true", help="publish even if the file breaks a refusal rule")
    load.set_defaults(handler=import_register)
