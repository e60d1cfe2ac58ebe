"""systemd integration, stdlib only: sd_notify(3), sd_watchdog_enabled(3), sd_listen_fds(3).

Every function is a no-op outside systemd: `notify` returns False when `$NOTIFY_SOCKET` is
unset, `watchdog_interval` returns None without `$WATCHDOG_USEC`, and `listen_sockets`
returns {} when the process was not socket-activated.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from typing import Final

# sd_listen_fds(3): passed descriptors start at 3 (SD_LISTEN_FDS_START).
LISTEN_FDS_START: Final = 3
UNKNOWN_NAME: Final = "unknown"
_LISTEN_VARIABLES: Final = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def notify(*fields: str) -> bool:
    """Send `fields` ("READY=1", "STATUS=…") as one datagram to `$NOTIFY_SOCKET`.

    The address is a socket path or an abstract name written `@name`. Returns True when
    the message was sent, False when there is no notify socket or sending failed: like
    sd_notify(3), a notification never raises, so a daemon keeps running without systemd.
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False  # unset, or a transport this module does not speak (vsock: is 253+)
    message = "\n".join(fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError:
        return False
    return True


def _one_line(text: str) -> str:
    # A newline would start a new assignment: STATUS= must stay one field.
    return " ".join(text.splitlines())


def ready(status_text: str | None = None) -> bool:
    """Startup (or a reload) is finished: `READY=1`, with a `STATUS=` line if given."""
    fields = ["READY=1"]
    if status_text is not None:
        fields.append(f"STATUS={_one_line(status_text)}")
    return notify(*fields)


def reloading() -> bool:
    """A reload began: `RELOADING=1` with `MONOTONIC_USEC=` (required by Type=notify-reload).

    Send `ready()` once the reload is done, whether it succeeded or kept the old config.
    """
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")


def stopping() -> bool:
    """Shutdown began: `STOPPING=1`."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """A one-line status shown by `systemctl status`: `STATUS=…`."""
    return notify(f"STATUS={_one_line(text)}")


def watchdog_ping() -> bool:
    """Tell the service manager the daemon is alive: `WATCHDOG=1`."""
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half of `WatchdogSec=`), or None when it is off.

    As sd_watchdog_enabled(3): `$WATCHDOG_USEC` holds the timeout, and `$WATCHDOG_PID`,
    when set, must be this process (otherwise the watchdog is meant for another one).
    """
    pid = os.environ.get("WATCHDOG_PID")
    if pid is not None and _positive_int(pid) != os.getpid():
        return None
    usec = _positive_int(os.environ.get("WATCHDOG_USEC", ""))
    if usec is None:
        return None
    return usec / 2 / 1_000_000


def listen_sockets() -> dict[str, list[socket.socket]]:
    """Sockets passed by socket activation, grouped by `FileDescriptorName=`.

    As sd_listen_fds_with_names(3) with unset_environment=1: `$LISTEN_PID` must be this
    process, the descriptors are 3 … 3+`$LISTEN_FDS`-1, their names come from
    `$LISTEN_FDNAMES` (colon-separated; a missing name is "unknown"), each is marked
    close-on-exec, and the three variables are removed so children never see them.
    Returns {} when the process was not socket-activated; raises OSError when a passed
    descriptor is not a socket (a misconfigured unit).
    """
    try:
        if _positive_int(os.environ.get("LISTEN_PID", "")) != os.getpid():
            return {}
        count = _positive_int(os.environ.get("LISTEN_FDS", ""))
        if count is None:
            return {}
        names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    finally:
        for name in _LISTEN_VARIABLES:
            os.environ.pop(name, None)
    sockets: dict[str, list[socket.socket]] = {}
    for index in range(count):
        fd = LISTEN_FDS_START + index
        flags = fcntl.fcntl(fd, fcntl.F_GETFD)
        fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
        name = names[index] if index < len(names) and names[index] else UNKNOWN_NAME
        sockets.setdefault(name, []).append(socket.socket(fileno=fd))
    return sockets


def _positive_int(text: str) -> int | None:
    """A decimal number above zero, or None: "", "0", "-1", " 3" and "1_0" are not."""
    if not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value > 0 else None
