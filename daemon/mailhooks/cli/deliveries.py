"""`mailhooks deliveries` and `mailhooks replay`: what was delivered or failed, and retrying."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from urllib.parse import urlencode

from mailhooks.cli.client import call
from mailhooks.cli.common import CommandError, say, settings_of, shared, socket_of


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = subparsers.add_parser("deliveries", help="deliveries with their attempts")
    shared(listing, socket=True)
    listing.add_argument("--failed", action="store_true", help="only failed deliveries")
    listing.add_argument("--state", choices=("pending", "delivered", "failed", "dropped"))
    listing.add_argument("--webhook", metavar="ID", help="only this webhook's")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="one JSON document on stdout")
    listing.set_defaults(run=run_list)
    replay = subparsers.add_parser("replay", help="re-queue failed deliveries")
    shared(replay, socket=True)
    replay.add_argument("ids", nargs="*", type=int, metavar="DELIVERY_ID")
    replay.add_argument("--webhook", metavar="ID", help="every failed delivery of this webhook")
    replay.add_argument("--now", action="store_true",
                        help="with --webhook: also make its pending deliveries due now")
    replay.set_defaults(run=run_replay)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def run_list(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    query = {"limit": str(args.limit)}
    state = "failed" if args.failed else args.state
    if state:
        query["state"] = state
    if args.webhook:
        query["webhook"] = args.webhook
    status, answer = call(socket_of(args, settings), "GET", f"/deliveries?{urlencode(query)}")
    if status != 200:
        raise CommandError(f"the daemon answered {status}: {answer}")
    rows = answer["deliveries"]
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    for row in rows:
        error = f"  {row['last_error']}" if row["last_error"] else ""
        http = row["last_status"] if row["last_status"] is not None else "-"
        say(f"{row['id']:>8}  {row['state']:<9} {row['webhook_id']}  {row['event']} "
              f"{row['event_id']}  attempts={row['attempts']} status={http} "
              f"updated={_when(row['updated_at'])}{error}")
    say(f"{len(rows)} deliveries")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if bool(args.ids) == bool(args.webhook):
        raise CommandError("give delivery ids or --webhook ID (one of them)", exit_code=2)
    if args.now and not args.webhook:
        raise CommandError("--now goes with --webhook ID", exit_code=2)
    body: dict[str, object] = (
        {"webhook": args.webhook, "now": args.now} if args.webhook else {"ids": args.ids}
    )
    status, answer = call(socket_of(args, settings), "POST", "/deliveries/replay",
                          body=json.dumps(body).encode())
    if status != 200:
        raise CommandError(f"the daemon answered {status}: {answer}")
    what = "failed or pending" if args.now else "failed"
    say(f"re-queued {answer['replayed']} {what} deliveries")
    left = answer.get("left_failed", 0)
    if left:
        say(f"{left} left failed: their webhook is at its cap of pending deliveries; "
            "replay again once those have gone out")
    for paused in answer.get("paused", []):
        say(f"{paused} is paused: nothing goes to it until mailhooks resume {paused}")
    return 0
