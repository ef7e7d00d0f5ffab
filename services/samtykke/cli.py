"""The `samtykke` command.

Each command group registers itself in `build_parser` and handles its
subcommands with one function each, so a new group (a service, the demo, a
rebuild) is one `add_*_commands` function plus its handlers.

    samtykke up | down                          the whole platform (stack + services) and the demo
    samtykke stack up | down | status
    samtykke stack start PART | stop PART      (PART: postgres, kafka, registry)
    samtykke consent serve                     the consent service (API, sweeper, outbox relay)
    samtykke consent relay                     the outbox relay as a process of its own
    samtykke consent rekey                     re-encrypt stored identifiers under the current key
    samtykke consent migrate-topic             fill a new changes topic from the ledger's current state
    samtykke consent import FILE               import decisions from a CRM file (CSV or NDJSON)
    samtykke demo                              one consent change, shown decoded from Kafka
    samtykke docs export | check               the AsyncAPI and OpenAPI documents in schemas/, from the code
    samtykke tail TOPIC                        a topic's records as JSON lines, decoded with the registry
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence

from samtykke import devstack
from samtykke.adapters.settings import get_settings

Handler = Callable[[argparse.Namespace], int]
# command groups that live beside their service: each module has `register(commands)`
SERVICE_COMMANDS = ("samtykke.projections.cli", "samtykke.suppression.cli", "samtykke.docs", "samtykke.tail")


def stack_up(args: argparse.Namespace) -> int:
    devstack.up(get_settings(), parts=args.parts or None)
    return 0


def stack_down(args: argparse.Namespace) -> int:
    devstack.down(get_settings(), parts=args.parts or None)
    return 0


def stack_start(args: argparse.Namespace) -> int:
    devstack.start_part(args.part, get_settings())
    return 0


def stack_stop(args: argparse.Namespace) -> int:
    devstack.stop_part(args.part, get_settings())
    return 0


def stack_status(args: argparse.Namespace) -> int:
    rows = devstack.status(get_settings())
    for row in rows:
        state = "running" if row.running else "stopped"
        pid = f"pid {row.pid}" if row.pid is not None else "-"
        ready = "ready" if row.ready else "not ready"
        print(f"{row.name:<9} {state:<8} {pid:<11} {ready:<9} {row.endpoint}")
    # a script can test `samtykke stack status` for "everything answers"
    return 0 if all(row.ready for row in rows) else 3


def part_name(value: str) -> str:
    # a type check rather than `choices`: argparse rejects an empty `nargs="*"` with choices
    if value not in devstack.PART_NAMES:
        choices = ", ".join(devstack.PART_NAMES)
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {choices}")
    return value


def add_stack_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stack = commands.add_parser("stack", help="the local Kafka, schema registry and PostgreSQL")
    actions = stack.add_subparsers(dest="action", required=True, metavar="ACTION")

    up = actions.add_parser("up", help="install what is missing, start all, wait until ready")
    up.add_argument("parts", nargs="*", type=part_name, metavar="PART", help="only these parts (default: all)")
    up.set_defaults(handler=stack_up)

    down = actions.add_parser("down", help="stop everything the stack started")
    down.add_argument("parts", nargs="*", type=part_name, metavar="PART", help="only these parts (default: all)")
    down.set_defaults(handler=stack_down)

    status = actions.add_parser("status", help="each part: running, pid, endpoint, ready")
    status.set_defaults(handler=stack_status)

    for name, handler, text in (("start", stack_start, "start one part"), ("stop", stack_stop, "stop one part")):
        action = actions.add_parser(name, help=text)
        action.add_argument("part", choices=devstack.PART_NAMES)
        action.set_defaults(handler=handler)


def platform_up(args: argparse.Namespace) -> int:
    from samtykke import demo
    from samtykke.devstack.platform import start_services

    settings = get_settings()
    devstack.up(settings)
    start_services(settings)  # provisions the projectors' roles and schemas first
    return demo.main(settings) if args.demo else 0


def platform_down(args: argparse.Namespace) -> int:
    from samtykke.devstack.platform import stop_services

    settings = get_settings()
    stop_services(settings)
    devstack.down(settings)
    return 0


def consent_serve(args: argparse.Namespace) -> int:
    from samtykke.consent.app import serve

    serve(get_settings())
    return 0


def consent_relay(args: argparse.Namespace) -> int:
    from samtykke.consent.relay_service import serve

    serve(get_settings())
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from samtykke import demo

    return demo.main(get_settings())


def consent_rekey(args: argparse.Namespace) -> int:
    import asyncio

    from samtykke.consent.rekey import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    report = asyncio.run(run(get_settings()))
    print(f"re-encrypted {report.values} identifiers of {report.subjects} subjects under the current key")
    return 0


def consent_migrate_topic(args: argparse.Namespace) -> int:
    import asyncio

    from samtykke.consent.topic_migration import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    report = asyncio.run(run(settings))
    print(
        f"enqueued {report.consents} consents of {report.subjects} subjects for {settings.topic_changes}; "
        "the consent service's relay publishes them"
    )
    return 0


def batch_size(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of rows from 1 to 1000000")
    return int(value)


def consent_import(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from samtykke.consent.imports import FileRefused, ImportFormat
    from samtykke.consent.imports_jobs import DEFAULT_BATCH, import_file, report_path
    from samtykke.consent.imports_store import ImportBusy

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    path = Path(args.file)
    fmt = ImportFormat(args.format) if args.format else ImportFormat.of_path(path.name)
    if fmt is None:
        print(
            f"import: cannot tell the format of {path.name}: name it .csv or .ndjson, or give --format", file=sys.stderr
        )
        return 2
    rejects = Path(args.rejects) if args.rejects else report_path(path, fmt)
    try:
        summary = asyncio.run(import_file(get_settings(), path, fmt, rejects, args.batch_size or DEFAULT_BATCH))
    except (FileRefused, ImportBusy, OSError) as error:
        print(f"import: {path.name}: {error}", file=sys.stderr)
        return 1
    print(summary.line())
    print(f"rejected rows: {rejects}")
    return 0


def run_benchmark(args: argparse.Namespace) -> int:
    """`samtykke bench NAME …` is `python -m benchmarks NAME …` in the checkout this package runs from:
    the benchmarks live beside the tests, outside the package an operator installs."""
    import subprocess
    from pathlib import Path

    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "benchmarks" / "__main__.py").exists():
        print(
            "bench: the benchmarks are in the source checkout (benchmarks/), not in an installed package",
            file=sys.stderr,
        )
        return 2
    return subprocess.run([sys.executable, "-m", "benchmarks", *args.arguments], cwd=checkout, check=False).returncode


def add_platform_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = commands.add_parser("up", help="start the stack and every service (writes no data)")
    up.add_argument("--demo", action="store_true", help="then run the demo (one change on the demo subject)")
    up.set_defaults(handler=platform_up)
    commands.add_parser("down", help="stop every service and the stack").set_defaults(handler=platform_down)
    commands.add_parser("demo", help="one consent change, shown decoded from Kafka").set_defaults(handler=run_demo)
    bench = commands.add_parser(
        "bench", help="run a benchmark from the checkout: samtykke bench import|e2e|consent|… (docs/benchmarks.md)"
    )
    bench.add_argument("arguments", nargs=argparse.REMAINDER, help="the benchmark and its options")
    bench.set_defaults(handler=run_benchmark)

    consent = commands.add_parser("consent", help="the consent service")
    consent_actions = consent.add_subparsers(dest="action", required=True, metavar="ACTION")
    consent_actions.add_parser(
        "serve", help="HTTP API + lifecycle sweeper (+ outbox relay unless SAMTYKKE_CONSENT_RELAY=false)"
    ).set_defaults(handler=consent_serve)
    consent_actions.add_parser(
        "relay", help="the outbox relay alone (/metrics, /healthz, /ready on SAMTYKKE_RELAY_PORT)"
    ).set_defaults(handler=consent_relay)
    consent_actions.add_parser(
        "rekey", help="re-encrypt stored identifiers under the current key (after a key rotation)"
    ).set_defaults(handler=consent_rekey)
    consent_actions.add_parser(
        "migrate-topic",
        help="enqueue one record per documented consent for the changes topic (fills a new topic, e.g. .v2)",
    ).set_defaults(handler=consent_migrate_topic)
    bulk = consent_actions.add_parser(
        "import",
        help="import decisions from a CRM file (CSV or NDJSON, docs/import.md); a re-run adds nothing, "
        "an interrupted run resumes",
    )
    bulk.add_argument("file", help="the file; its format from its name (.csv, .ndjson) unless --format")
    bulk.add_argument("--format", choices=["csv", "ndjson"], help="the file's format")
    bulk.add_argument("--rejects", help="where the rejected-rows report goes (default: FILE.rejects.csv|ndjson)")
    bulk.add_argument("--batch-size", type=batch_size, help="rows per transaction (default 10000)")
    bulk.set_defaults(handler=consent_import)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samtykke", description="Samtykke consent platform")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_platform_commands(commands)
    add_stack_commands(commands)
    for module in SERVICE_COMMANDS:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except devstack.StackError as error:
        print(f"stack: {error.part} failed: {error.message}", file=sys.stderr)
        if error.log_path is not None:
            print(f"  log: {error.log_path}", file=sys.stderr)
            for line in error.log_tail(10):
                print(f"  | {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
