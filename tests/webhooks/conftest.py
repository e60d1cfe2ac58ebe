"""Fixtures for the webhooks-as-code tests: a webhooks directory and files written into it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mailhooks.settings import Limits, Settings

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"


def webhook_yaml(name: str = "Hook", *, events: str = "[delivered]",
                 url: str = "https://hooks.example.com/in", extra: str = "") -> str:
    """A small valid webhook file; `extra` is appended as more top-level lines."""
    return (
        f"name: {name}\n"
        f"events: {events}\n"
        f"{extra}"
        "channel:\n"
        "  type: web\n"
        f"  url: {url}\n"
    )


WriteFile = Callable[..., Path]


@pytest.fixture
def hooks_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "webhooks.d"
    directory.mkdir()
    return directory


@pytest.fixture
def write(hooks_dir: Path) -> WriteFile:
    """write("crm/opens.yaml", text) → the path, parents created; bytes are written as is."""

    def write_file(relative: str, content: str | bytes | None = None) -> Path:
        path = hooks_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            content = webhook_yaml(Path(relative).stem)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write_file


@pytest.fixture
def settings() -> Settings:
    return Settings()


def settings_with(**limits: int) -> Settings:
    return Settings(limits=Limits(**limits))
