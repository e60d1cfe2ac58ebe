"""The house: the import graph of `daemon/mailhooks` has no cycle, every module imports
only from its own layer or below, and no module outgrows a reading.

Read with `ast`, so nothing is imported to check it. An import under TYPE_CHECKING
counts too: it is a dependency of the design even when not of the running code.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from tests.utils import REPO

PACKAGE = REPO / "daemon" / "mailhooks"
MAX_LINES = 450

# Bottom to top; a module may import from its own layer and the ones below. A name is a
# module, or a package (every module in it).
LAYERS: tuple[tuple[str, ...], ...] = (
    # foundations: plain values and helpers, no daemon parts
    ("mailhooks", "mailhooks.reasons", "mailhooks.files", "mailhooks.text", "mailhooks.masking",
     "mailhooks.addresses", "mailhooks.log", "mailhooks.systemd", "mailhooks.events",
     "mailhooks.sources"),
    ("mailhooks.secrets", "mailhooks.settings", "mailhooks.documents", "mailhooks.templates"),
    # [keep] and [out]: the spool, and the channels with their configs
    ("mailhooks.spool", "mailhooks.channels", "mailhooks.config_file", "mailhooks.intake",
     "mailhooks.roles"),
    # webhooks as files: models (over the channel registry), loading, editing
    ("mailhooks.webhooks", "mailhooks.metrics", "mailhooks.grants"),
    ("mailhooks.match",),
    ("mailhooks.live",),
    # [deliver], reload, the Test button
    ("mailhooks.delivery", "mailhooks.reload", "mailhooks.trial", "mailhooks.revision"),
    ("mailhooks.service",),
    ("mailhooks.server", "mailhooks.listeners", "mailhooks.connections"),
    ("mailhooks.app",),
    ("mailhooks.cli", "mailhooks.schemas", "mailhooks.__main__", "mailhooks.gitops",
     "mailhooks.listen", "mailhooks.ingest"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The mailhooks modules `name` imports (a `from package import module` names the
    module, else the package)."""
    known = modules()
    tree = ast.parse(known[name].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("mailhooks"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mailhooks"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
    return {imported for imported in found if imported != name}


def layer_of(name: str) -> int:
    best = -1, -1  # (length of the matching prefix, layer)
    for index, layer in enumerate(LAYERS):
        for prefix in layer:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = len(prefix), index
    if best[1] < 0:
        raise AssertionError(f"{name} is in no layer: add it to LAYERS in {__file__}")
    return best[1]


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer_of(name)


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_upward_import(name: str) -> None:
    upward = sorted(imported for imported in imports_of(name) if layer_of(imported) > layer_of(name))
    assert not upward, f"{name} (layer {layer_of(name)}) imports from above: {upward}"


def test_no_cycle() -> None:
    graph = {name: imports_of(name) & set(modules()) for name in modules()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for imported in sorted(graph[name]):
            if state.get(imported) == 1:
                cycle = [*path[path.index(imported):], imported]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if imported not in state:
                visit(imported)
        path.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_stay_small(name: str) -> None:
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by responsibility"
