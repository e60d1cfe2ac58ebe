"""The `mailhooks` command: the only code that parses argv, prints and exits.

One module per command; each has `register(subparsers)` and sets `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from mailhooks import __version__
from mailhooks.cli.common import CommandError, Parser
from mailhooks.text import visible

# One module per command, in the order `mailhooks --help` lists them.
COMMANDS = (
    "validate", "listing", "explain", "diff", "new", "toggle", "edit", "delete",
    "serve", "send", "ingest", "status", "deliveries", "test_command", "preview", "listen", "resume",
)
# The commands whose module is not named after them.
MODULE_OF = {
    "list": "listing", "enable": "toggle", "disable": "toggle", "replay": "deliveries",
    "test": "test_command",
}


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with `command` only that command's (its module alone is
    imported: `ingest dsn`, started once per bounce by the MTA, starts in half the time)."""
    top = Parser(
        prog="mailhooks", description="Email events to webhooks, configured as YAML in git."
    )
    top.add_argument("--version", action="version", version=f"mailhooks {__version__}")
    subparsers = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    module = MODULE_OF.get(command or "", command)
    for name in COMMANDS if module not in COMMANDS else (module,):
        import_module(f"mailhooks.cli.{name}").register(subparsers)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    args = parser(given[0] if given else None).parse_args(given)
    try:
        code: int = args.run(args)
    except CommandError as error:
        print(visible(f"mailhooks {args.command}: {error}"), file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return code
