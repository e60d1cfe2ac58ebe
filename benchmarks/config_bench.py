"""How long webhooks-as-code takes: loading 1,000 files, and matching against 1k-100k webhooks.

    .venv/bin/python -m benchmarks.config_bench

Prints a table; asserts nothing about timing (machines differ). Bounded to well under a
minute: the file count and the event samples are fixed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailhooks.channels.pushover import PushoverChannel
from mailhooks.channels.web import WebChannel
from mailhooks.events import EVENT_NAMES, Event
from mailhooks.match import Matcher
from mailhooks.settings import Limits, Settings
from mailhooks.webhooks.load import load_webhooks
from mailhooks.webhooks.models import Filters, Webhook

REPO = Path(__file__).resolve().parents[1]
FILES = 1000
MATCHER_SIZES = (1000, 10000, 100000)
EVENT_SAMPLES = 100
MATCHES_PER_EVENT = 3

Row = tuple[str, str, str]


def webhook_data(index: int) -> dict[str, Any]:
    """Webhook `index`; groups of three share an event and a filter value, so an event made
    for a group matches exactly those three."""
    group = index // MATCHES_PER_EVENT
    filters: dict[str, list[str]] = {"sending_node": [f"node-{group}"]}
    if group % 4 == 1:
        filters["sending_domain"] = [f"mail{group}.example.com", "*.example.org"]
    if group % 4 == 2:
        filters["dedicated_ip"] = ["192.0.2.0/24", "2001:db8::/32"]
    channel: dict[str, Any] = {
        "type": "web", "url": f"https://hooks{group}.example.com/in/{index}",
        "secret": "${credential:signing-" + str(index) + "}",
    }
    if index % 10 == 9:
        channel = {"type": "pushover", "user_key": "${env:PUSHOVER_USER}",
                   "api_token": "${credential:pushover-token}", "sound": "cash_register"}
    return {
        "name": f"Webhook {index}",
        "events": [EVENT_NAMES[group % len(EVENT_NAMES)]],
        "filters": filters,
        "channel": channel,
    }


def webhook_model(index: int) -> Webhook:
    """`webhook_data(index)` as a model, built without validation: 100k validations would
    take most of the time budget and measure pydantic, not the matcher. (The loading
    benchmark above validates every file.)"""
    data = webhook_data(index)
    channel_data = data["channel"]
    channel: WebChannel | PushoverChannel = (
        WebChannel.model_construct(**channel_data) if channel_data["type"] == "web"
        else PushoverChannel.model_construct(**channel_data)
    )
    return Webhook.model_construct(
        name=data["name"], events=data["events"], channel=channel,
        filters=Filters.model_construct(**data["filters"]),
    )


def event_for(group: int) -> Event:
    return Event.model_validate({
        "event": EVENT_NAMES[group % len(EVENT_NAMES)],
        "email": "someone@example.com",
        "message_id": f"m-{group}",
        "sending_node": f"node-{group}",
        "sending_domain": "news.example.org",
        "dedicated_ip": "192.0.2.7",
    })


def to_yaml(data: dict[str, Any]) -> str:
    filters = "".join(f"  {key}: [{', '.join(repr(v) for v in values)}]\n"
                      for key, values in data["filters"].items())
    channel = "".join(f"  {key}: {value!r}\n" for key, value in data["channel"].items())
    return (
        "# yaml-language-server: $schema=../schema/webhook.schema.json\n"
        f"name: {data['name']}\nstatus: active\nevents: [{', '.join(data['events'])}]\n"
        f"filters:\n{filters}channel:\n{channel}"
    )


def timed(action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    outcome = action()
    return time.perf_counter() - start, outcome


def bench_loading(directory: Path, rows: list[Row], rounds: int = 1,
                  timings: dict[str, list[float]] | None = None) -> None:
    """Load, validate and check-jsonschema the same files; the two commands `rounds`
    times each, alternately, with every round's seconds in `timings` and the median in
    `rows`."""
    timings = {} if timings is None else timings
    hooks = directory / "webhooks.d"
    for index in range(FILES):
        sub = hooks / f"team-{index % 20:02}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"hook-{index:04}.yaml").write_text(to_yaml(webhook_data(index)), encoding="utf-8")
    config = directory / "mailhooks.yaml"
    config.write_text(f"webhooks_dir: {hooks}\nlimits: {{max_webhooks: {FILES}}}\n")
    settings = Settings(limits=Limits(max_webhooks=FILES))

    seconds, result = timed(lambda: load_webhooks(hooks, settings))
    loaded = len(result.webhooks)  # type: ignore[attr-defined]
    rows.append((f"load_webhooks, {FILES} files", f"{seconds:.2f} s",
                 f"{seconds / FILES * 1e3:.2f} ms/file, {loaded} valid"))

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    commands = {"scripts/validate": [str(REPO / "scripts" / "validate"), "--config", str(config)]}
    executable = shutil.which("check-jsonschema", path=env["PATH"])
    if executable is not None or importlib.util.find_spec("check_jsonschema") is not None:
        files = sorted(str(path) for path in hooks.rglob("*.yaml"))
        runner = [executable] if executable else [sys.executable, "-m", "check_jsonschema"]
        commands["check-jsonschema"] = [
            *runner, "--schemafile", str(REPO / "schema" / "webhook.schema.json"), *files,
        ]
    codes: dict[str, int] = {}
    for _ in range(rounds):
        for name, command in commands.items():
            started = time.perf_counter()
            codes[name] = subprocess.run(command, env=env, capture_output=True, text=True,
                                         timeout=120).returncode
            timings.setdefault(name, []).append(time.perf_counter() - started)
    rows.append((f"scripts/validate, {FILES} files",
                 f"{statistics.median(timings['scripts/validate']):.2f} s",
                 f"process incl. startup, exit {codes['scripts/validate']}"))
    if "check-jsonschema" not in commands:
        rows.append(("check-jsonschema, same files", "skipped", "not installed"))
        return
    rows.append(("check-jsonschema, same files",
                 f"{statistics.median(timings['check-jsonschema']):.2f} s",
                 f"process incl. startup, exit {codes['check-jsonschema']}"))


def bench_matching(rows: list[Row]) -> None:
    for size in MATCHER_SIZES:
        build_start = time.perf_counter()
        webhooks = {f"hook-{index:06}": webhook_model(index) for index in range(size)}
        matcher = Matcher(webhooks)
        build = time.perf_counter() - build_start
        groups = size // MATCHES_PER_EVENT
        step = max(1, groups // EVENT_SAMPLES)
        events = [event_for(group) for group in range(0, groups, step)][:EVENT_SAMPLES]
        matcher.match(events[0])  # warm the caches once
        counts = []
        start = time.perf_counter()
        for event in events:
            counts.append(len(matcher.match(event)))
        per_event = (time.perf_counter() - start) / len(events)
        mean = sum(counts) / len(counts)
        rows.append((f"Matcher.match, {size:,} webhooks", f"{per_event * 1e6:,.1f} µs/event",
                     f"{mean:.1f} matches/event; built in {build:.1f} s"))


def main() -> int:
    rows: list[Row] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mailhooks-bench-") as directory:
        bench_loading(Path(directory), rows)
    bench_matching(rows)
    header: Row = ("benchmark", "time", "notes")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(3)]
    for row in [header, tuple("-" * width for width in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(f"\ntotal {time.perf_counter() - started:.1f} s, Python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
