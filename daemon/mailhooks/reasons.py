"""Why an operating-system call failed, in one short line for messages and logs."""

from __future__ import annotations


def os_reason(error: BaseException) -> str:
    """The error's `strerror` ("No such file or directory", "Permission denied"), or its
    type's name when it has none. Never the whole message: that can repeat a path or a
    URL the caller already shows, or a value that should not be logged."""
    return getattr(error, "strerror", None) or type(error).__name__
