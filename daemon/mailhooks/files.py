"""Reading a small file a user names (a webhook file, a config, a secret) safely: only a
regular file, and never more than a limit, so a FIFO or /dev/zero cannot hang or fill
the daemon."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def read_regular(path: Path, max_bytes: int) -> bytes:
    """The file's bytes. Raises OSError, with a short `strerror`, for a file that cannot
    be opened, is not a regular file (opening a FIFO would block until a writer came), or
    holds more than `max_bytes` (checked before reading more than that)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(path, flags)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file")
        raw = handle.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise FileTooLarge(errno.EFBIG, f"over {max_bytes} bytes")
    return raw


class NotRegularFile(OSError):
    pass


class FileTooLarge(OSError):
    pass
