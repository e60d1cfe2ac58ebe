"""Where `mailhooks ingest postfix` keeps what it has sent: one JSON file in the state
directory per log it reads, written whole or not at all (a temporary file, fsync, rename),
so a crash leaves the last checkpoint, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from mailhooks.reasons import os_reason


class CheckpointError(Exception):
    """The state directory or its file cannot be used: one line saying why."""


class Checkpoints:
    """The checkpoint file `name` in `directory` (made, mode 0700, when missing)."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.path = directory / name

    def load(self) -> tuple[dict[str, Any] | None, str | None]:
        """The checkpoint last saved, or None; and a warning when a file was there but
        could not be read as one (the caller starts afresh and says so)."""
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return None, None
        except (OSError, UnicodeDecodeError) as error:
            return None, f"cannot read {self.path}: {getattr(error, 'strerror', None) or error}"
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            return None, f"{self.path} is no checkpoint ({error.msg}); starting afresh"
        if not isinstance(document, dict):
            return None, f"{self.path} is no checkpoint; starting afresh"
        return document, None

    def save(self, document: dict[str, Any]) -> None:
        """Replace the checkpoint with `document`, durably."""
        data = json.dumps(document, separators=(",", ":")).encode()
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view):]
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            temporary.replace(self.path)
            directory = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise CheckpointError(f"cannot save {self.path}: {os_reason(error)}") from None
