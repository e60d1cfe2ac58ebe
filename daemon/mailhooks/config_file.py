"""Reading the daemon's config file (mailhooks.yaml) into `Settings`, every error at
`path:line:col`."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from mailhooks.documents.check import check_document, read_limited
from mailhooks.documents.positions import START, Problem
from mailhooks.documents.yaml import YamlError, decode, parse
from mailhooks.reasons import os_reason
from mailhooks.settings import Settings

MAX_CONFIG_BYTES: Final = 1048576
RELATIVE_KEYS: Final = ("webhooks_dir", "socket", "state_dir")


class ConfigError(Exception):
    """The config cannot be used: `unreadable` when the file could not be read at all,
    else its content is wrong (each problem at `path:line:col`)."""

    def __init__(self, problems: list[Problem], *, unreadable: bool = False) -> None:
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = problems
        self.unreadable = unreadable


def load_settings(path: Path | None) -> Settings:
    """The config file as Settings (defaults when `path` is None); relative paths in it are
    taken from the file's own directory, as Prometheus and Alertmanager do."""
    if path is None:
        return Settings()
    try:
        document = parse(decode(read_limited(path, MAX_CONFIG_BYTES)))
    except YamlError as error:
        raise ConfigError([Problem(str(path), error.position, error.message)]) from None
    except OSError as error:
        raise ConfigError([Problem(str(path), START, f"cannot read: {os_reason(error)}")],
                          unreadable=True) from None
    if document.data is None:
        return Settings()
    settings, found = check_document(document, Settings)
    if settings is None:
        raise ConfigError([Problem(str(path), where, message) for where, message in found])
    base = path.parent
    updates = {
        name: base / value
        for name in RELATIVE_KEYS
        if (value := getattr(settings, name)) is not None and not value.is_absolute()
    }
    return settings.model_copy(update=updates)
