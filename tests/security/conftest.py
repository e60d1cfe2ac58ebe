"""Attacks as real clients against the real daemon: another uid on the UNIX socket, a
browser's requests and a token-less client on TCP, a pull request's worth of files."""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.utils import DaemonProcess

NOBODY = "nobody"


def _nobody_ids() -> tuple[int, int] | None:
    try:
        user = pwd.getpwnam(NOBODY)
    except KeyError:
        return None
    return user.pw_uid, user.pw_gid


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or _nobody_ids() is None or shutil.which("curl") is None,
    reason="acting as another user needs root, a `nobody` user and curl",
)


@dataclass
class Answer:
    status: int
    body: str


async def curl_as_nobody(socket_path: Path, method: str, path: str, data: str | None = None,
                         content_type: str = "application/json") -> Answer:
    """One request over the UNIX socket from a process running as `nobody`."""
    ids = _nobody_ids()
    assert ids is not None
    argv = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", str(socket_path),
            "-X", method, f"http://mailhooks{path}"]
    if data is not None:
        argv += ["-H", f"Content-Type: {content_type}", "--data-binary", data]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        user=ids[0], group=ids[1], extra_groups=[],
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    body, _, status = out.decode().rpartition("\n")
    assert status.isdigit(), err.decode()
    return Answer(int(status), body)


def open_socket_to_nobody(daemon: DaemonProcess) -> None:
    """Let `nobody` reach the daemon's socket as the MTA's group would: the socket's group
    is nobody's, the directories on the way are traversable."""
    ids = _nobody_ids()
    assert ids is not None
    os.chown(daemon.socket, 0, ids[1])
    daemon.root.chmod(0o711)


def nobody_group() -> str:
    ids = _nobody_ids()
    assert ids is not None
    return grp.getgrgid(ids[1]).gr_name


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
