"""The JSON Schemas in `schema/`, generated from the models: `python -m mailhooks.schemas
schema` writes them, and a test fails when they drift."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

from pydantic import BaseModel

from mailhooks.documents.schema import generate, render
from mailhooks.events import Event
from mailhooks.gitops.model import Diff
from mailhooks.settings import Settings
from mailhooks.webhooks.models import Webhook

SCHEMAS: Final[dict[str, type[BaseModel]]] = {
    "webhook.schema.json": Webhook,
    "config.schema.json": Settings,
    "event.schema.json": Event,
    "diff.schema.json": Diff,
}


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, model in SCHEMAS.items():
        target = directory / filename
        target.write_text(render(generate(model, filename)), encoding="utf-8")
        written.append(target)
    return written


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "schema")):
        print(path)
