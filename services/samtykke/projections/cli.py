"""`samtykke projections ...`: run a projector, rebuild a domain, provision roles.

samtykke projections run DOMAIN          (DOMAIN: marketing | analytics | customer_service)
samtykke projections rebuild DOMAIN      fresh tables from the start of the topics, then switch
samtykke projections provision           roles and schemas (owner login)
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from samtykke.adapters.settings import get_settings

from .domains import DOMAINS


def domain_name(value: str) -> str:
    # a type check rather than `choices`: argparse rejects an empty `nargs="*"` with choices
    if value not in DOMAINS:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(DOMAINS)}")
    return value


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry call is noise
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def run_projector(args: argparse.Namespace) -> int:
    from samtykke.adapters.safety import refuse_development_secrets

    from .app import run

    settings = get_settings()
    refuse_development_secrets(settings, ("projections", "run", args.domain))
    run(args.domain, settings)


def rebuild_domain(args: argparse.Namespace) -> int:
    from .rebuild import rebuild

    _logging()
    asyncio.run(rebuild(DOMAINS[args.domain], get_settings(), keep_old=args.keep_old))
    return 0


def provision_all(args: argparse.Namespace) -> int:
    from .provision import provision

    _logging()
    asyncio.run(provision(get_settings(), args.domains or None))
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("projections", help="the marketing, analytics and customer-service projectors")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")

    run = actions.add_parser("run", help="run one projector (Faust worker) until stopped")
    run.add_argument("domain", choices=list(DOMAINS))
    run.set_defaults(handler=run_projector)

    rebuild = actions.add_parser("rebuild", help="rebuild one domain's tables from the start of the topics")
    rebuild.add_argument("domain", choices=list(DOMAINS))
    rebuild.add_argument("--keep-old", action="store_true", help="keep the replaced schema (renamed)")
    rebuild.set_defaults(handler=rebuild_domain)

    provision = actions.add_parser("provision", help="create the roles and schemas (owner login)")
    provision.add_argument(
        "domains", nargs="*", type=domain_name, metavar="DOMAIN", help="only these domains (default: all)"
    )
    provision.set_defaults(handler=provision_all)
