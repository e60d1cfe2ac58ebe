"""`mailhooks diff --estimate`: deliveries per hour the change adds per destination, from
a saved `/metrics` file and from a running daemon's socket."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailhooks.gitops.estimate import MetricsError, rates
from tests.gitops.conftest import ANALYTICS, METRICS, STARTED, GitRepo, Run, diff_schema, markdown_parser
from tests.gitops.test_formats import tables
from tests.utils import _SUBPROCESS_ENV, REPO, DaemonProcess


@pytest.fixture
def widened(repo: GitRepo) -> GitRepo:
    """A new webhook for delivered and bounced; analytics (filtered) moved to a new host."""
    repo.write("esp.yaml", "name: ESP\nevents: [delivered, bounced]\n"
               "channel: {type: web, url: 'https://esp.example.net/in'}\n")
    repo.write("analytics.yaml", ANALYTICS.replace("analytics.example.com", "stats.example.com"))
    return repo


def test_estimate_from_a_saved_metrics_file(widened: GitRepo, metrics: Path, run: Run) -> None:
    ran = run("--webhooks", str(widened.hooks), "HEAD", "--format", "json", f"--estimate={metrics}")
    assert ran.code == 0, ran.err
    found = ran.json()
    diff_schema().validate(found)
    estimate = found["estimate"]
    assert estimate["source"] == str(metrics)
    assert estimate["measured_at"] == "2023-11-14T23:13:20+00:00"
    assert estimate["seconds"] == 3600
    assert {rate["event"]: rate["per_hour"] for rate in estimate["rates"]}["delivered"] == 7200
    assert estimate["destinations"] == [
        {"destination": "https://analytics.example.com", "added_per_hour": 0, "removed_per_hour": 7596,
         "upper_bound": True},
        {"destination": "https://esp.example.net", "added_per_hour": 7560, "removed_per_hour": 0,
         "upper_bound": False},
        {"destination": "https://stats.example.com", "added_per_hour": 7596, "removed_per_hour": 0,
         "upper_bound": True},
    ]
    assert estimate["notes"][0] == "Measured at the saved file's modification time."
    assert any("upper bounds" in note for note in estimate["notes"])

    text = run("--webhooks", str(widened.hooks), "HEAD", f"--estimate={metrics}").out
    assert f"Estimate (deliveries per hour, from {metrics} at 2023-11-14T23:13:20+00:00):\n" \
           "  https://analytics.example.com: -7596.0/h (at most)\n" \
           "  https://esp.example.net: +7560.0/h\n" in text

    markdown = run("--webhooks", str(widened.hooks), "HEAD", "--format", "markdown",
                   f"--estimate={metrics}").out
    estimate_table = tables(markdown_parser().parse(markdown))[1]
    assert estimate_table[0] == ["Destination", "Added per hour", "Removed per hour"]
    assert estimate_table[2] == ["`https://esp.example.net`", "7560.0", "0.0"]


def test_estimate_sources_that_cannot_be_read_exit_2(
    repo: GitRepo, run: Run, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.txt"
    ran = run("--webhooks", str(repo.hooks), "HEAD", f"--estimate={missing}")
    assert ran.code == 2
    assert ran.err.startswith(f"mailhooks diff: --estimate: cannot read {missing}: ")
    other = tmp_path / "other.txt"
    other.write_text("node_load1 0.5\n")
    ran = run("--webhooks", str(repo.hooks), "HEAD", f"--estimate={other}")
    assert (ran.code, ran.err) == (2, f"mailhooks diff: --estimate: {other}: no mailhooks_start_time_"
                                      "seconds: not the /metrics of a mailhooks daemon\n")
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("{not prometheus\n")
    assert run("--webhooks", str(repo.hooks), "HEAD", f"--estimate={garbage}").code == 2
    # No daemon at the socket: said, not a traceback.
    ran = run("--webhooks", str(repo.hooks), "HEAD", "--socket", str(tmp_path / "none.sock"), "--estimate")
    assert ran.code == 2 and "cannot read" in ran.err


async def test_estimate_from_a_running_daemon(widened: GitRepo, daemon: DaemonProcess) -> None:
    await daemon.start()
    events = [{"event": "delivered", "email": f"a{n}@example.com", "message_id": f"m{n}"} for n in range(6)]
    events += [{"event": "bounced", "email": "b@example.com", "message_id": "b1"}]
    status, _ = await daemon.post(events)
    assert status == 202
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "mailhooks", "diff", "--webhooks", str(widened.hooks), "HEAD",
         "--format", "json", "--socket", str(daemon.socket), "--estimate"],
        capture_output=True, text=True, check=False, cwd=REPO, env={**os.environ, **_SUBPROCESS_ENV},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    estimate = json.loads(done.stdout)["estimate"]
    assert estimate["source"] == str(daemon.socket)
    seconds = estimate["seconds"]
    rates = {rate["event"]: rate["per_hour"] for rate in estimate["rates"]}
    # What the daemon counted, over the seconds it has run.
    assert rates["delivered"] * seconds / 3600 == pytest.approx(6, rel=0.01)
    assert rates["bounced"] * seconds / 3600 == pytest.approx(1, rel=0.01)
    esp = next(cost for cost in estimate["destinations"] if cost["destination"] == "https://esp.example.net")
    assert esp["added_per_hour"] == pytest.approx(rates["delivered"] + rates["bounced"], rel=0.001)
    assert not any("saved file" in note for note in estimate["notes"])


COUNTER = 'mailhooks_events_received_total{event="delivered"}'
HOSTILE = {
    "nan-counter": (f"{COUNTER} NaN\n", f"{COUNTER} is nan"),
    "inf-counter": (f"{COUNTER} +Inf\n", f"{COUNTER} is inf"),
    "negative-counter": (f"{COUNTER} -5\n", f"{COUNTER} is -5"),
    "huge-counter": (f"{COUNTER} 1e308\n", f"{COUNTER} is 1e+308"),
    "nan-start": ("mailhooks_start_time_seconds NaN\n", "mailhooks_start_time_seconds is nan"),
    "inf-start": ("mailhooks_start_time_seconds +Inf\n", "mailhooks_start_time_seconds is inf"),
    "minus-inf-start": ("mailhooks_start_time_seconds -Inf\n", "mailhooks_start_time_seconds is -inf"),
    "huge-start": ("mailhooks_start_time_seconds 1e308\n", "mailhooks_start_time_seconds is 1e+308"),
    "minus-huge-start": ("mailhooks_start_time_seconds -1e308\n", "mailhooks_start_time_seconds is -1e+308"),
    "megabyte-label": (f'mailhooks_events_received_total{{event="delivered",note="{"y" * 2**20}"}} NaN\n',
                       f"{COUNTER} is nan"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_corrupt_metrics_file_is_one_line_naming_the_sample(
    widened: GitRepo, run: Run, tmp_path: Path, name: str
) -> None:
    """A saved file is anyone's text: a value no daemon writes is refused as an unreadable
    source (exit 2), in one short line that names the file and the sample."""
    bad, said = HOSTILE[name]
    path = tmp_path / f"{name}.txt"
    # The bad line last: it replaces the good sample of the same name.
    path.write_text(METRICS + bad)
    os.utime(path, (STARTED + 3600, STARTED + 3600))
    for fmt in ("text", "json"):
        ran = run("--webhooks", str(widened.hooks), "HEAD", "--format", fmt, f"--estimate={path}")
        assert (ran.code, ran.out) == (2, "")
        assert ran.err.startswith(f"mailhooks diff: --estimate: {path}: {said}: "), ran.err[:500]
        assert ran.err.count("\n") == 1 and len(ran.err) < 500
        assert "Traceback" not in ran.err


def test_a_megabyte_line_that_is_not_prometheus_is_said_in_one_short_line(
    widened: GitRepo, run: Run, tmp_path: Path
) -> None:
    path = tmp_path / "long.txt"
    path.write_text("x" * 2**20 + "\n" + METRICS)
    ran = run("--webhooks", str(widened.hooks), "HEAD", f"--estimate={path}")
    assert ran.code == 2
    assert ran.err.startswith(f"mailhooks diff: --estimate: {path}: not Prometheus text: ")
    assert ran.err.count("\n") == 1 and len(ran.err) < 500


def test_a_measurement_time_beyond_any_calendar_is_refused() -> None:
    # Filesystems clamp what a file can be dated (ext4 to 2446): the time is checked anyway.
    for now in (1e17, math.inf, math.nan):
        with pytest.raises(MetricsError, match=r"^measured at (1e\+17|inf|nan): not a date$"):
            rates(METRICS, now, "metrics.txt", saved=True)
