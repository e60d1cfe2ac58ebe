"""The unit files: `systemd-analyze verify` and `security` accept them, and they agree with
the example config and with the daemon's contract (notify, socket name, paths)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from mailhooks.config_file import load_settings

UNITS_DIR = Path(__file__).resolve().parents[2] / "systemd"
UNITS = (
    "mailhooks.service",
    "mailhooks.socket",
    "mailhooks-git-pull.service",
    "mailhooks-git-pull.timer",
    "mailhooks-ingest-postfix.service",
)
SERVICES = ("mailhooks.service", "mailhooks-git-pull.service", "mailhooks-ingest-postfix.service")
# systemd-analyze security rates exposure 1.0-4.9 "OK", below that "SAFE" and "PERFECT";
# 5.0 and up is "MEDIUM" or worse.
OK_RATINGS = {"PERFECT", "SAFE", "OK"}
OK_MAX_EXPOSURE = 4.9

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian package: systemd)"
)
EXEC_KEYS = re.compile(r"^(Exec(?:Start|StartPre|StartPost|Reload|Stop|StopPost)=)([-@:+!]*)(\S+)")


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections → key → every value (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = defaultdict(list)
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], defaultdict(list))
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {raw!r}"
        current[key.strip()].append(value.strip())
    return sections


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit[section][key]
    assert len(values) == 1, f"{section}/{key}: {values}"
    return values[0]


def runnable_copy(directory: Path) -> list[Path]:
    """The units copied to `directory`, every Exec*= binary that this machine lacks
    (/opt/mailhooks/bin/mailhooks) replaced by `true`, so that verify checks the rest."""
    true = shutil.which("true")
    assert true is not None
    copies = []
    for name in UNITS:
        lines = []
        for line in (UNITS_DIR / name).read_text().splitlines():
            match = EXEC_KEYS.match(line)
            if match and not Path(match.group(3)).exists():
                line = match.group(1) + match.group(2) + true + line[match.end():]
            lines.append(line)
        copy = directory / name
        copy.write_text("\n".join(lines) + "\n")
        copies.append(copy)
    return copies


def verify(paths: list[Path]) -> list[str]:
    """The complaints `systemd-analyze verify` has about our units.

    Lines about other units (the host's own, pulled in as dependencies such as
    network-online.target) are not ours to fix and are left out.
    """
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "verify", "--man=no", *map(str, paths)],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_LOG_LEVEL": "info",
             "LANG": "C.UTF-8"},
    )
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if "mailhooks" in line]


@needs_analyze
def test_units_verify_cleanly(tmp_path: Path) -> None:
    assert verify(runnable_copy(tmp_path)) == []


@needs_analyze
def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The check above is not vacuous: a misspelt hardening option is reported."""
    copies = runnable_copy(tmp_path)
    service = copies[0]
    service.write_text(service.read_text().replace("ProtectSystem=", "ProtectSytem="))
    complaints = verify(copies)
    assert any("ProtectSytem" in line for line in complaints), complaints


@needs_analyze
@pytest.mark.parametrize("name", SERVICES)
def test_security_exposure_is_ok(name: str) -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--no-pager", str(UNITS_DIR / name)],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "SYSTEMD_COLORS": "0"},
    )
    found = re.search(
        rf"Overall exposure level for {re.escape(name)}: (\d+\.\d) (\w+)", result.stdout
    )
    assert found, result.stdout + result.stderr
    exposure, rating = float(found.group(1)), found.group(2)
    assert rating in OK_RATINGS, found.group(0)
    assert exposure <= OK_MAX_EXPOSURE, found.group(0)


# --- the units against the daemon's contract -----------------------------------------------


def test_service_is_a_notify_daemon_with_a_watchdog() -> None:
    service = parse_unit(UNITS_DIR / "mailhooks.service")
    assert one(service, "Service", "Type") == "notify"
    assert one(service, "Service", "NotifyAccess") == "main"
    assert one(service, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(service, "Service", "WatchdogSec") == "30"
    assert one(service, "Service", "Restart") == "on-failure"
    assert one(service, "Service", "Sockets") == "mailhooks.socket"
    assert one(service, "Service", "User") == "mailhooks"
    assert one(service, "Service", "RuntimeDirectoryPreserve") == "yes"
    assert "IPAddressDeny" not in service["Service"], "deliveries go to the internet"


def test_socket_is_the_one_the_config_names() -> None:
    socket_unit = parse_unit(UNITS_DIR / "mailhooks.socket")
    service = parse_unit(UNITS_DIR / "mailhooks.service")
    exec_start = one(service, "Service", "ExecStart").split()
    assert exec_start[1:3] == ["serve", "--config"]
    settings = load_settings(UNITS_DIR / "mailhooks.yaml")
    assert Path(exec_start[3]) == Path("/etc/mailhooks") / "mailhooks.yaml"
    listen = Path(one(socket_unit, "Socket", "ListenStream"))
    assert settings.socket == listen
    # The socket lives in the service's RuntimeDirectory, the spool in its StateDirectory.
    assert listen.parent == Path("/run") / one(service, "Service", "RuntimeDirectory")
    assert settings.state_dir == Path("/var/lib") / one(service, "Service", "StateDirectory")
    assert one(socket_unit, "Socket", "FileDescriptorName") == "api"
    assert one(socket_unit, "Socket", "SocketMode") == "0660"
    assert one(socket_unit, "Socket", "SocketGroup") == "mailhooks-senders"
    assert one(socket_unit, "Install", "WantedBy") == "sockets.target"


def test_shutdown_grace_fits_in_the_stop_timeout() -> None:
    service = parse_unit(UNITS_DIR / "mailhooks.service")
    settings = load_settings(UNITS_DIR / "mailhooks.yaml")
    assert settings.shutdown_grace < float(one(service, "Service", "TimeoutStopSec"))


def test_git_pull_updates_the_configs_webhooks_dir() -> None:
    pull = parse_unit(UNITS_DIR / "mailhooks-git-pull.service")
    timer = parse_unit(UNITS_DIR / "mailhooks-git-pull.timer")
    settings = load_settings(UNITS_DIR / "mailhooks.yaml")
    command = one(pull, "Service", "ExecStart").split()
    assert command[1:3] == ["-C", str(settings.webhooks_dir)]
    assert "--ff-only" in command
    assert one(pull, "Service", "User") == "mailhooks"
    assert one(pull, "Service", "ReadWritePaths") == str(settings.webhooks_dir)
    assert one(timer, "Timer", "OnUnitActiveSec") == "1min"
