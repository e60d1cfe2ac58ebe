"""What every command shares: --config, --webhooks/DIR, --socket, and one-line errors."""

from __future__ import annotations

import argparse
from pathlib import Path

from mailhooks.settings import Settings
from mailhooks.webhooks.load import ConfigError, load_settings


class CommandError(Exception):
    """A user's mistake or an unreachable daemon: one line on stderr, never a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="the daemon's config (mailhooks.yaml)"
    )


def add_directory(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    parser.add_argument("--webhooks", type=Path, metavar="DIR", help="the webhooks directory")
    parser.add_argument(
        "directory", nargs="?", type=Path, metavar="DIR",
        help="the webhooks directory (default: the config's webhooks_dir, or ./webhooks.d)",
    )


def add_socket(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    parser.add_argument("--socket", type=Path, metavar="PATH", help="the daemon's UNIX socket")


def settings_of(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(getattr(args, "config", None))
    except ConfigError as error:
        raise CommandError(str(error.problems[0]) if error.problems else str(error)) from None


def directory_of(args: argparse.Namespace, settings: Settings) -> Path:
    given: Path | None = getattr(args, "directory", None) or getattr(args, "webhooks", None)
    return given if given is not None else settings.webhooks_dir


def socket_of(args: argparse.Namespace, settings: Settings) -> Path:
    given: Path | None = getattr(args, "socket", None)
    return given if given is not None else settings.socket_path()
