"""What every command shares: the same --config, --webhooks/DIR and --socket, settings
and paths resolved the same way, and errors as one line on stderr.

Exit codes: 0 as each command says, 1 for a command that ran and found a problem (an
invalid file, a refused event, an unreachable daemon), 2 for a usage or I/O error (a
bad flag, a directory or config file that cannot be read).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NoReturn

from mailhooks.config_file import ConfigError, load_settings
from mailhooks.reasons import os_reason
from mailhooks.settings import Settings
from mailhooks.text import visible

USAGE: Final = 2
EX_CONFIG: Final = 78  # sysexits.h: a local configuration error (the MTA defers)


class CommandError(Exception):
    """A user's mistake or an unreachable daemon: one line on stderr, never a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line: `mailhooks test: …`, exit 2; and options
    and positionals in any order (`mailhooks test ID --event bounced DIR`): plain argparse
    gives an optional positional nothing once the first positional is read, and then
    refuses DIR when it comes after an option."""

    _intermixing = False

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # Intermixed parsing calls this method itself, twice; argparse has none for a
        # parser with subcommands (the top one, `ingest`), and in 3.11 it loses "--"
        # (`diff -- -h` would read -h as the option again).
        if self._intermixing or (args is not None and "--" in args) or any(
                isinstance(action, argparse._SubParsersAction) for action in self._actions):
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def say(text: str = "", *, err: bool = False) -> None:
    """Print a line for a person: what came from an event, a file or a receiver has its
    control characters escaped, so it cannot forge lines or recolour the terminal."""
    print(visible(text), file=sys.stderr if err else sys.stdout)


def shared(parser: argparse.ArgumentParser, *, directory: bool = False, socket: bool = False) -> None:
    """The options every command takes the same way (SPEC §7): --config and --webhooks;
    a positional DIR for commands that read a webhooks directory; --socket for those
    that talk to the running daemon."""
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="the daemon's config (mailhooks.yaml)"
    )
    parser.add_argument(
        "--webhooks", type=Path, metavar="DIR",
        help="the webhooks directory (default: the config's webhooks_dir, or ./webhooks.d)",
    )
    if directory:
        parser.add_argument(
            "directory", nargs="?", type=Path, metavar="DIR", help="the webhooks directory, as --webhooks"
        )
    if socket:
        parser.add_argument(
            "--socket", type=Path, metavar="PATH",
            help="the daemon's UNIX socket (default: the config's socket)",
        )


def settings_of(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(getattr(args, "config", None))
    except ConfigError as error:
        first = str(error.problems[0]) if error.problems else str(error)
        raise CommandError(first, USAGE if error.unreadable else 1) from None


def directory_given(args: argparse.Namespace) -> Path | None:
    given: Path | None = getattr(args, "directory", None) or getattr(args, "webhooks", None)
    return given


def directory_of(args: argparse.Namespace, settings: Settings, *, must_exist: bool = True) -> Path:
    """The webhooks directory: DIR, --webhooks, the config's, or ./webhooks.d. One that
    cannot be read is a usage error (exit 2), not a problem of the files in it."""
    directory = directory_given(args) or settings.webhooks_dir
    if must_exist:
        if not directory.exists():
            raise CommandError(f"webhooks directory {directory} does not exist", USAGE)
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a directory", USAGE)
        try:
            with os.scandir(directory):
                pass
        except OSError as error:
            raise CommandError(f"cannot read {directory}: {os_reason(error)}", USAGE) from None
    return directory


def socket_of(args: argparse.Namespace, settings: Settings) -> Path:
    given: Path | None = getattr(args, "socket", None)
    return given if given is not None else settings.socket_path()
