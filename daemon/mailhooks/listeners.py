"""[in] Where the API listens: the UNIX socket (bound here, or passed by systemd's socket
activation) and the optional TCP listener."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
from pathlib import Path
from typing import Final

from aiohttp import web

from mailhooks import log, systemd
from mailhooks.reasons import os_reason
from mailhooks.settings import Settings

SOCKET_MODE: Final = 0o660
BACKLOG: Final = 1024

_log = log.get("mailhooks.app")


class StartupError(Exception):
    """The daemon cannot start; the message says why, in one line."""


def make_private_directory(path: Path) -> None:
    """The state directory, made 0700 when mailhooks makes it: the spool holds recipients'
    addresses. (Under systemd, StateDirectoryMode= says so instead.)"""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return
    mode = path.stat().st_mode
    if mode & 0o007:
        _log.warning("state_directory_open", path=str(path), mode=oct(stat.S_IMODE(mode)),
                     hint="others may read the spool; chmod o-rwx it")


LOCK_FILE: Final = "mailhooks.lock"


def lock_state_directory(path: Path) -> int:
    """Hold an exclusive lock on `path/mailhooks.lock` for the daemon's life: one state
    directory serves one daemon (SPEC §5). Two daemons on one spool would both send the
    same delivery. Returns the descriptor (closing it releases the lock)."""
    lock_path = path / LOCK_FILE
    writable = True
    try:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as error:
        try:  # a read-only state directory: lock it anyway; the spool says what is wrong
            descriptor = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
            writable = False
        except OSError:
            raise StartupError(
                f"cannot open {lock_path}: {os_reason(error)}; the state directory must be "
                "writable by the daemon's user (nothing was changed)"
            ) from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(descriptor)
        raise StartupError(
            f"another mailhooks (pid {holder}) is using the state directory {path}; "
            "one state directory serves one daemon"
        ) from None
    if writable:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return descriptor


def sites(runner: web.BaseRunner, settings: Settings) -> list[web.BaseSite]:
    """The runner's sites: the sockets systemd passed, or a UNIX socket bound here; and
    TCP when the config asks for it."""
    activated = systemd.listen_sockets()
    inherited = [sock for group in activated.values() for sock in group]
    found: list[web.BaseSite] = []
    if inherited:
        _log.info("socket_activation", sockets=len(inherited), names=sorted(activated))
        found += [web.SockSite(runner, sock) for sock in inherited]
    else:
        found.append(web.SockSite(runner, bind_unix_socket(settings.socket_path())))
    if settings.http is not None:
        host, _, port = settings.http.listen.rpartition(":")
        found.append(web.TCPSite(runner, host.strip("[]"), int(port), backlog=BACKLOG))
    return found


def bind_unix_socket(path: Path) -> socket.socket:
    """A listening UNIX socket at `path`, mode 0660; a stale socket file left by a crash is
    replaced, a live one (another daemon answering) never is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        mode = path.lstat().st_mode
        if not stat.S_ISSOCK(mode):
            raise StartupError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            path.unlink()  # stale: nobody listens
        except OSError as error:
            if error.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise StartupError(f"{path}: {os_reason(error)}") from None
        else:
            raise StartupError(f"another process is listening on {path}; is mailhooks running?")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o117)  # never a moment where the socket is wider than 0660
    try:
        sock.bind(str(path))
    except OSError as error:
        sock.close()
        raise StartupError(f"cannot bind {path}: {os_reason(error)}") from None
    finally:
        os.umask(old_umask)
    path.chmod(SOCKET_MODE)
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock
