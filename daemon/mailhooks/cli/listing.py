"""`mailhooks list`: the webhooks as the seed's table shows them, and `N of LIMIT webhooks`."""

from __future__ import annotations

import argparse
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailhooks.cli.common import directory_of, say, settings_of, shared
from mailhooks.webhooks.load import LoadedWebhook, load_directory


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("list", help="list the webhooks")
    shared(parser, directory=True)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.set_defaults(run=run)


def git_added_dates(directory: Path) -> dict[Path, datetime]:
    """When each file was first committed, from one `git log`; empty outside git."""
    try:
        top = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "--show-toplevel"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()
        log = subprocess.run(
            ["git", "-C", str(directory), "log", "--diff-filter=A", "--no-renames",
             "--format=%x00%aI", "--name-only", "--", "."],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    dates: dict[Path, datetime] = {}
    for chunk in log.split("\0")[1:]:
        lines = chunk.strip().splitlines()
        if not lines:
            continue
        when = datetime.fromisoformat(lines[0])
        for name in lines[1:]:
            # The log is newest first: the last date seen for a path is its first addition.
            dates[(Path(top) / name).resolve()] = when
    return dates


def rows(directory: Path, webhooks: dict[str, LoadedWebhook]) -> list[dict[str, Any]]:
    added = git_added_dates(directory)
    listed = []
    for identifier, loaded in sorted(webhooks.items()):
        created = added.get(loaded.path.resolve())
        if created is None:
            created = datetime.fromtimestamp(loaded.path.stat().st_mtime, UTC)
        hook = loaded.webhook
        listed.append({
            "id": identifier,
            "name": hook.name,
            "endpoint": hook.channel.endpoint(),
            "events": hook.events if hook.events == "all" else list(hook.events),
            "status": hook.status,
            "created_on": created.isoformat(),
        })
    return listed


def _table(listed: list[dict[str, Any]]) -> list[str]:
    header = ("Name", "Endpoint", "Events", "Status", "Created On")
    cells = [header] + [
        (
            row["name"], row["endpoint"],
            "all" if row["events"] == "all" else ", ".join(row["events"]),
            row["status"].capitalize(), row["created_on"][:10],
        )
        for row in listed
    ]
    widths = [max(len(line[column]) for line in cells) for column in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            for line in cells]


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    directory = directory_of(args, settings)
    result = load_directory(directory, settings)
    listed = rows(directory, result.webhooks)
    limit = settings.limits.max_webhooks
    usage = f"{len(listed)} of {limit} webhooks"
    if args.json:
        print(json.dumps({
            "webhooks": listed, "count": len(listed), "limit": limit,
            "errors": [str(problem) for problem in result.problems],
        }, indent=2))
        return 0
    for line in _table(listed):
        say(line)
    say(usage)
    if result.problems:
        say(f"({len(result.problems)} error(s) not listed: run mailhooks validate)")
    return 0
