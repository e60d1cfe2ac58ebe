"""sd_notify, the watchdog and socket activation, against real sockets and processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailhooks import systemd


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
        "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def manager(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A service manager's notify socket: AF_UNIX datagrams at a path in tmp_path."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        clean_env.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_sends_one_datagram(manager: socket.socket) -> None:
    assert systemd.ready()
    assert receive(manager) == ["READY=1"]


def test_ready_with_status_keeps_status_on_one_line(manager: socket.socket) -> None:
    assert systemd.ready("3 webhooks loaded\nqueue empty")
    assert receive(manager) == ["READY=1", "STATUS=3 webhooks loaded queue empty"]


def test_reloading_carries_the_monotonic_clock(manager: socket.socket) -> None:
    before = time.monotonic_ns() // 1000
    assert systemd.reloading()
    after = time.monotonic_ns() // 1000
    reloading, monotonic = receive(manager)
    assert reloading == "RELOADING=1"
    name, _, value = monotonic.partition("=")
    assert name == "MONOTONIC_USEC"
    assert before <= int(value) <= after


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        (systemd.stopping, ["STOPPING=1"]),
        (systemd.watchdog_ping, ["WATCHDOG=1"]),
        (lambda: systemd.status("delivering"), ["STATUS=delivering"]),
        (lambda: systemd.notify("STATUS=a", "ERRNO=5"), ["STATUS=a", "ERRNO=5"]),
    ],
    ids=["stopping", "watchdog", "status", "notify"],
)
def test_each_helper_sends_its_fields(
    manager: socket.socket, send: Callable[[], bool], expected: list[str]
) -> None:
    assert send() is True
    assert receive(manager) == expected


def test_abstract_socket_name(clean_env: pytest.MonkeyPatch) -> None:
    name = f"mailhooks-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        clean_env.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.ready("up")
        assert receive(sock) == ["READY=1", "STATUS=up"]


def test_without_notify_socket_nothing_is_sent(clean_env: pytest.MonkeyPatch) -> None:
    assert systemd.notify("READY=1") is False
    assert systemd.ready("up") is False
    assert systemd.watchdog_ping() is False


@pytest.mark.parametrize("address", ["", "relative/notify", "vsock:2:1234"])
def test_unusable_address_is_not_an_error(
    clean_env: pytest.MonkeyPatch, address: str
) -> None:
    clean_env.setenv("NOTIFY_SOCKET", address)
    assert systemd.ready() is False


def test_gone_manager_is_not_an_error(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert systemd.watchdog_ping() is False


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("1000000", "self", 0.5),
        ("30000000", "other", None),
        (None, None, None),
        ("0", None, None),
        ("-5", None, None),
        ("30s", None, None),
        ("", None, None),
        ("30000000", "garbage", None),
    ],
)
def test_watchdog_interval(
    clean_env: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    if usec is not None:
        clean_env.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        own = os.getpid()
        clean_env.setenv(
            "WATCHDOG_PID", {"self": str(own), "other": str(own + 1)}.get(pid, pid)
        )
    assert systemd.watchdog_interval() == expected


# --- socket activation --------------------------------------------------------------------

# The child plays the activated service: it moves the sockets it inherited to 3, 4, … as
# systemd would, sets LISTEN_PID to its own pid (unknown before it runs), and reports.
CHILD = textwrap.dedent(
    """
    import fcntl, json, os, socket, sys
    from mailhooks import systemd

    inherited = [int(fd) for fd in sys.argv[1].split(",") if fd]
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in inherited]
    for fd in inherited:
        os.close(fd)
    for index, fd in enumerate(high):
        os.dup2(fd, systemd.LISTEN_FDS_START + index)
        os.close(fd)
    env = json.loads(sys.argv[2])
    if env.get("LISTEN_PID") == "self":
        env["LISTEN_PID"] = str(os.getpid())
    os.environ.update(env)

    found = systemd.listen_sockets()
    print(json.dumps({
        "sockets": {
            name: [
                {
                    "fd": sock.fileno(),
                    "family": sock.family.name,
                    "type": sock.type.name,
                    "address": sock.getsockname(),
                    "listening": sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN),
                    "cloexec": not os.get_inheritable(sock.fileno()),
                }
                for sock in socks
            ]
            for name, socks in found.items()
        },
        "env_left": sorted(k for k in os.environ if k.startswith("LISTEN_")),
    }))
    """
)


def activate(sockets: list[socket.socket], env: dict[str, str]) -> dict[str, object]:
    fds = [sock.fileno() for sock in sockets]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "NOTIFY_"))}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, ",".join(map(str, fds)), json.dumps(env)],
        pass_fds=fds, env=clean, capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


@pytest.fixture
def unix_listener(tmp_path: Path) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(tmp_path / "api.sock"))
        sock.listen()
        yield sock


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def test_listen_sockets_by_name(
    unix_listener: socket.socket, tcp_listener: socket.socket
) -> None:
    report = activate(
        [unix_listener, tcp_listener],
        {"LISTEN_PID": "self", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "api:http"},
    )
    assert report["sockets"] == {
        "api": [{
            "fd": 3, "family": "AF_UNIX", "type": "SOCK_STREAM",
            "address": unix_listener.getsockname(), "listening": 1, "cloexec": True,
        }],
        "http": [{
            "fd": 4, "family": "AF_INET", "type": "SOCK_STREAM",
            "address": list(tcp_listener.getsockname()), "listening": 1, "cloexec": True,
        }],
    }
    assert report["env_left"] == []


def test_sockets_sharing_a_name_are_grouped(
    unix_listener: socket.socket, tcp_listener: socket.socket
) -> None:
    report = activate(
        [unix_listener, tcp_listener],
        {"LISTEN_PID": "self", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "api:api"},
    )
    sockets = report["sockets"]
    assert isinstance(sockets, dict)
    assert list(sockets) == ["api"]
    assert [entry["fd"] for entry in sockets["api"]] == [3, 4]


def test_names_default_to_unknown(
    unix_listener: socket.socket, tcp_listener: socket.socket
) -> None:
    report = activate([unix_listener, tcp_listener], {"LISTEN_PID": "self", "LISTEN_FDS": "2"})
    sockets = report["sockets"]
    assert isinstance(sockets, dict)
    assert list(sockets) == ["unknown"]
    assert len(sockets["unknown"]) == 2
    assert report["env_left"] == []


def test_sockets_for_another_process_are_left_alone(unix_listener: socket.socket) -> None:
    report = activate(
        [unix_listener], {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "api"}
    )
    assert report == {"sockets": {}, "env_left": []}


def test_not_activated(clean_env: pytest.MonkeyPatch) -> None:
    assert systemd.listen_sockets() == {}


@pytest.mark.parametrize("count", ["0", "", "two"])
def test_no_descriptors_means_not_activated(
    clean_env: pytest.MonkeyPatch, count: str
) -> None:
    clean_env.setenv("LISTEN_PID", str(os.getpid()))
    clean_env.setenv("LISTEN_FDS", count)
    clean_env.setenv("LISTEN_FDNAMES", "api")
    assert systemd.listen_sockets() == {}
    assert not {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} & set(os.environ)
