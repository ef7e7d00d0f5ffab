"""`python -m benchmarks …`: every benchmark, each printing its figures beside a same-run baseline.

    python -m benchmarks consent        consent API writes beside a bare asyncpg INSERT loop
    python -m benchmarks e2e            commit -> every domain and the suppression decision, beside the raw floor
    python -m benchmarks projections    projector throughput and latency beside a raw consumer
    python -m benchmarks suppression    bulk and single checks beside a PostgreSQL `= ANY($1)` lookup
    python -m benchmarks gate-memory    the gate index's bytes per subject and ns per check, in-process
    python -m benchmarks registers      a register import into a large index: event-loop stalls and index age
    python -m benchmarks compaction     topic size and rebuild of every read model, before and after compaction
    python -m benchmarks import         a CRM export imported beside a raw COPY, then the platform catching up

Run from a checkout: the benchmarks live beside `tests/`, outside the runtime package.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from samtykke.adapters.settings import get_settings

Handler = Callable[[argparse.Namespace], int]


def consent(args: argparse.Namespace) -> int:
    from benchmarks import consent_api

    consent_api.main(get_settings(), args.seconds, args.clients)
    return 0


def e2e(args: argparse.Namespace) -> int:
    from benchmarks import e2e as end_to_end

    settings = get_settings()
    rates = [float(r) for r in args.rates.split(",") if r] if not args.replay_only else []
    return end_to_end.main(
        settings,
        rates,
        args.seconds,
        args.per_request,
        args.saturation,
        args.replay,
        args.out or settings.state_dir / "bench",
    )


def projections(args: argparse.Namespace) -> int:
    from benchmarks.projections import main

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main(get_settings(), events=args.events, rate=args.rate, seconds=args.seconds)
    return 0


def suppression(args: argparse.Namespace) -> int:
    from benchmarks import suppression as benchmark

    print(benchmark.main(get_settings(), args.subjects, args.single_rate, args.single_seconds))
    return 0


def gate_memory(args: argparse.Namespace) -> int:
    from benchmarks import gate_memory as benchmark

    print(benchmark.main(args.subjects))
    return 0


def registers(args: argparse.Namespace) -> int:
    from benchmarks import registers as benchmark

    print(benchmark.main(args.subjects))
    return 0


def compaction(args: argparse.Namespace) -> int:
    from benchmarks import compaction as benchmark

    return benchmark.main(get_settings(), args.events, args.changes, args.per_subject)


def bulk_import(args: argparse.Namespace) -> int:
    from benchmarks import imports as benchmark

    settings = get_settings()
    return benchmark.main(settings, args.subjects, args.per_subject, args.out or settings.state_dir / "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="samtykke benchmarks")
    actions = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")

    writes = actions.add_parser("consent", help="consent API writes vs bare asyncpg INSERTs")
    writes.add_argument("--seconds", type=float, default=10.0, help="duration of each measure")
    writes.add_argument("--clients", type=int, default=16, help="concurrent clients")
    writes.set_defaults(handler=consent)

    whole = actions.add_parser("e2e", help="the whole platform at a steady change rate, beside the raw floor")
    whole.add_argument("--rates", default="1000", help="changes/s, comma-separated (default 1000)")
    whole.add_argument("--seconds", type=float, default=20.0, help="duration of each rate")
    whole.add_argument(
        "--per-request",
        type=int,
        default=5,
        choices=range(1, 11),
        metavar="1-10",
        help="decisions per consent API request (one subject's preference update)",
    )
    whole.add_argument(
        "--saturation", action="store_true", help="walk the rates upwards, stop at the first not sustained (p99 > 1 s)"
    )
    whole.add_argument(
        "--replay",
        type=int,
        default=0,
        metavar="EVENTS",
        help="also time rebuilding every read model from this many events",
    )
    whole.add_argument("--replay-only", action="store_true", help="only the replay")
    whole.add_argument("--out", type=Path, default=None, help="results folder (default .state/bench)")
    whole.set_defaults(handler=e2e)

    projectors = actions.add_parser("projections", help="projector throughput and latency beside a raw consumer")
    projectors.add_argument("--events", type=int, default=100_000, help="backlog size")
    projectors.add_argument("--rate", type=float, default=200.0, help="steady changes/s for latency")
    projectors.add_argument("--seconds", type=float, default=20.0, help="duration of the steady phase")
    projectors.set_defaults(handler=projections)

    gate = actions.add_parser("suppression", help="bulk and single checks beside a PostgreSQL = ANY($1) baseline")
    gate.add_argument("--subjects", type=int, default=1_000_000, help="indexed subjects = bulk list size")
    gate.add_argument("--single-rate", type=int, default=2000, help="single checks per second (open loop)")
    gate.add_argument("--single-seconds", type=float, default=10.0, help="duration of the single-check run")
    gate.set_defaults(handler=suppression)

    memory = actions.add_parser("gate-memory", help="the gate index's bytes per subject and ns per check")
    memory.add_argument("--subjects", type=int, default=200_000, help="indexed subjects")
    memory.set_defaults(handler=gate_memory)

    imports = actions.add_parser("registers", help="a register import into a large index, beside parsing alone")
    imports.add_argument("--subjects", type=int, default=1_000_000, help="indexed subjects, all listed by the file")
    imports.set_defaults(handler=registers)

    compacted = actions.add_parser(
        "compaction", help="size and rebuild time of consent.changes before/after compaction"
    )
    compacted.add_argument("--events", type=int, default=1_000_000, help="ConsentChanged events in the history")
    compacted.add_argument("--changes", type=int, default=5, help="changes of every consent")
    compacted.add_argument("--per-subject", type=int, default=5, help="consents of every subject")
    compacted.set_defaults(handler=compaction)

    bulk = actions.add_parser("import", help="samtykke consent import beside a raw COPY, then the catch-up")
    bulk.add_argument("--subjects", type=int, default=1_000_000, help="subjects in the CRM file")
    bulk.add_argument("--per-subject", type=int, default=1, help="decisions of every subject")
    bulk.add_argument("--out", type=Path, default=None, help="folder for the file and logs (default .state/bench)")
    bulk.set_defaults(handler=bulk_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
