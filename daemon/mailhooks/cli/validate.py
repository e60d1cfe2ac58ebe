"""`mailhooks validate`: check every webhook file; text, GitHub annotations or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TextIO

from mailhooks.cli.common import USAGE, CommandError, directory_given, directory_of, shared
from mailhooks.config_file import ConfigError, load_settings
from mailhooks.documents.positions import Problem
from mailhooks.settings import Settings
from mailhooks.webhooks.load import LoadResult, load_webhooks


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("validate", help="check webhook files (exit 0 valid, 1 invalid)")
    shared(parser, directory=True)
    parser.add_argument("--format", choices=sorted(REPORTERS), default="text")
    parser.set_defaults(run=run)


def _text(result: LoadResult, problems: list[Problem], out: TextIO) -> None:
    for problem in problems:
        print(problem, file=out)
    count = len(result.webhooks)
    if problems:
        files = len({problem.file for problem in problems})
        print(f"{len(problems)} error(s) in {files} file(s); {count} webhook(s) valid", file=out)
    else:
        print(f"{count} webhook(s) valid", file=out)


def _escape(text: str, *, property_value: bool = False) -> str:
    """GitHub's workflow-command escaping (toolkit/core's escapeData / escapeProperty)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def _github(result: LoadResult, problems: list[Problem], out: TextIO) -> None:
    for problem in problems:
        print(
            f"::error file={_escape(problem.file, property_value=True)},"
            f"line={problem.position.line},col={problem.position.column},"
            f"title=mailhooks validate::{_escape(problem.message)}",
            file=out,
        )
    _text(result, [], out) if not problems else None


def _json(result: LoadResult, problems: list[Problem], out: TextIO) -> None:
    document = {
        "valid": not problems,
        "webhooks": sorted(result.webhooks),
        "errors": [
            {"file": p.file, "line": p.position.line, "column": p.position.column,
             "message": p.message}
            for p in problems
        ],
    }
    print(json.dumps(document, indent=2), file=out)


REPORTERS: dict[str, Callable[[LoadResult, list[Problem], TextIO], None]] = {
    "text": _text, "github": _github, "json": _json,
}


def run(args: argparse.Namespace) -> int:
    reporter = REPORTERS[args.format]
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        if error.unreadable:
            raise CommandError(str(error.problems[0]), USAGE) from None
        # A config with mistakes is a finding of validation, reported like the files'.
        reporter(LoadResult(directory_given(args) or Settings().webhooks_dir), error.problems,
                 sys.stdout)
        return 1
    result = load_webhooks(directory_of(args, settings), settings)
    reporter(result, result.problems, sys.stdout)
    return 0 if result.ok else 1
