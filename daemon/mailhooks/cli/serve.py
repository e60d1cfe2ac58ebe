"""`mailhooks serve`: the daemon."""

from __future__ import annotations

import argparse
from pathlib import Path

from mailhooks.cli.common import CommandError, settings_of, shared


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("serve", help="run the daemon")
    shared(parser, socket=True)
    parser.add_argument("--http", metavar="HOST:PORT", help="also listen on TCP")
    parser.add_argument("--state-dir", type=Path, metavar="DIR", help="where the spool lives")
    parser.add_argument("--log-format", choices=("json", "console"))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from mailhooks.app import StartupError, serve

    settings = settings_of(args)
    try:
        settings = settings.with_overrides({
            "webhooks_dir": args.webhooks, "socket": args.socket,
            "http": {**(settings.http.model_dump() if settings.http else {}), "listen": args.http}
            if args.http else None,
            "state_dir": args.state_dir,
            "log": {**settings.log.model_dump(), "format": args.log_format}
            if args.log_format else None,
        })
    except ValidationError as error:
        first = error.errors()[0]
        raise CommandError(f"--{first['loc'][0]}: {first['msg']}", exit_code=2) from None
    try:
        return serve(settings)
    except StartupError as error:
        raise CommandError(str(error)) from None
