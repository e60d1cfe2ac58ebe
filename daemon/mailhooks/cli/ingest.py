"""`mailhooks ingest kumomta|pmta|postfix|dsn`: a mail server's records → events → the
running daemon (SPEC §8). Exits 0 when every event was sent, 1 when not; `ingest dsn`
exits 75 (EX_TEMPFAIL) when the daemon cannot take the message now, and 78 (EX_CONFIG)
when its own config cannot be read: Postfix defers on both, where any other code would
bounce the report to the null sender, which drops it."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mailhooks.cli.common import EX_CONFIG, USAGE, CommandError, say, settings_of, shared, socket_of

if TYPE_CHECKING:
    from mailhooks.ingest.streams import Run

HELP = {
    "kumomta": "KumoMTA log records on stdin (a log file, one JSON record a line), to /sources/kumomta",
    "pmta": "PowerMTA accounting CSV on stdin: <acct-file |mailhooks ingest pmta>",
    "postfix": "Postfix's log: the journal (journalctl), or --file; --follow to keep reading",
    "dsn": "one bounce (DSN) or complaint (ARF) message on stdin, from the MTA's pipe transport",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("ingest", help="turn a mail server's records into events for the daemon")
    kinds = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    for name, text in HELP.items():
        sub = kinds.add_parser(name, help=text, description=text)
        shared(sub, socket=True)
        sub.set_defaults(run=run)
        if name == "postfix":
            sub.add_argument("--file", type=Path, metavar="PATH",
                             help="read this log file (rotation followed, as tail -F), not the journal")
            sub.add_argument("--follow", action="store_true",
                             help="keep reading as the log grows; without it, read what is there and exit")
            sub.add_argument("--state-dir", type=Path, metavar="DIR",
                             help="where the cursor is kept (default: the config's state_dir, "
                                  "$STATE_DIRECTORY, or ./.mailhooks)")
            sub.add_argument("--start", choices=("beginning", "end"),
                             help="where a first run (no cursor yet) starts: the file's beginning "
                                  "and the journal's end by default")
            sub.add_argument("--unit", default="postfix*", metavar="PATTERN",
                             help="the journal's units to read (default: postfix*); empty: every unit")
            sub.add_argument("--year", type=int, metavar="YEAR",
                             help="the year of a file's lines that carry none (default: inferred)")


def run(args: argparse.Namespace) -> int:
    # Imported here: every other command starts without them.
    from mailhooks.ingest import streams
    from mailhooks.ingest.postfix import Options, postfix

    try:
        settings = settings_of(args)
    except CommandError as error:
        if args.source == "dsn":  # an unreadable config is the host's to fix: keep the report
            raise CommandError(f"{error}; exit 78, for the MTA to keep the message", EX_CONFIG) from None
        raise
    socket = socket_of(args, settings)
    source: str = args.source

    def log(text: str) -> None:
        say(f"mailhooks ingest {source}: {text}", err=True)

    if source == "postfix":
        if args.year is not None and not 1970 <= args.year <= 9999:
            raise CommandError("--year: a year from 1970 to 9999", USAGE)
        start = args.start or ("beginning" if args.file is not None else "end")
        options = Options(file=args.file, follow=args.follow,
                          state_dir=args.state_dir or settings.state_path(), at_end=start == "end",
                          unit=args.unit or None, year=args.year)
        return _run(lambda run: postfix(run, options), socket, log)
    if source == "dsn":
        try:
            return _run(streams.dsn_message, socket, log)
        except CommandError:
            raise
        except Exception as error:  # never a traceback, and never a lost bounce
            log(f"failed ({type(error).__name__}: {error}); exit 75, for the MTA to try again")
            return streams.EX_TEMPFAIL
    return _run(streams.pmta if source == "pmta" else streams.kumomta, socket, log)


def _run(command: Callable[[Run], Awaitable[int]], socket: Path, log: Callable[[str], None]) -> int:
    from mailhooks.ingest.checkpoint import CheckpointError
    from mailhooks.ingest.follow import FollowError
    from mailhooks.ingest.journal import JournalError
    from mailhooks.ingest.streams import Run

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await command(Run(socket=socket, log=log, stop=stop))

    try:
        return asyncio.run(main())
    except (FollowError, CheckpointError) as error:  # a file that cannot be read or written
        raise CommandError(str(error), USAGE) from None
    except JournalError as error:
        raise CommandError(str(error)) from None
