"""The one-line reason shown for a failed operating-system call."""

from __future__ import annotations

import errno
import os

from mailhooks.reasons import os_reason


def test_the_reason_is_strerror_when_there_is_one() -> None:
    error = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "/etc/secret-path")
    assert os_reason(error) == "No such file or directory"  # the path is not repeated


def test_without_strerror_the_reason_is_the_type_name() -> None:
    assert os_reason(OSError()) == "OSError"
    assert os_reason(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")) == (
        "UnicodeDecodeError"
    )
