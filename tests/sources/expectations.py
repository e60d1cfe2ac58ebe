"""What the source tests share: a fixture `NAME.SUFFIX` beside `NAME.expected.json`
(`{"events": [...], "skipped": [kinds]}`), and the shape every parsed result must have.

`MAILHOOKS_UPDATE_FIXTURES=1` writes the expectation of a case that has none, to be read
before it is committed; an existing expectation is never overwritten.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Set
from pathlib import Path
from typing import Any

from mailhooks.events import Event
from mailhooks.sources.records import Parsed

EXPECTED_SUFFIX = ".expected.json"
ONE_LINE = re.compile(r"[^\x00-\x1f\x7f]*")


def expected_path(case: Path) -> Path:
    return case.with_name(case.stem + EXPECTED_SUFFIX)


def read_expected(case: Path) -> dict[str, Any]:
    expected: dict[str, Any] = json.loads(expected_path(case).read_text("utf-8"))
    return expected


def cases_in(*directories: Path) -> list[Path]:
    """Every input file of the directories: whatever is no expectation."""
    return sorted(path for directory in directories for path in directory.iterdir()
                  if not path.name.endswith(EXPECTED_SUFFIX))


def assert_every_case_has_its_expectation(cases: Iterable[Path], *directories: Path) -> None:
    """No fixture without an expectation and no expectation left without its fixture."""
    cases = list(cases)
    assert cases
    expectations = {path for directory in directories for path in directory.iterdir()
                    if path.name.endswith(EXPECTED_SUFFIX)}
    assert {expected_path(case) for case in cases} == expectations


def assert_as_expected(case: Path, parsed: Parsed) -> None:
    got = {"events": parsed.events, "skipped": [skipped.kind for skipped in parsed.skipped]}
    expected_file = expected_path(case)
    if os.environ.get("MAILHOOKS_UPDATE_FIXTURES") and not expected_file.exists():
        expected_file.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", "utf-8")
    assert got == json.loads(expected_file.read_text("utf-8"))


def assert_well_formed(parsed: Parsed, skip_kinds: Set[str] | None = None) -> None:
    """Every event validates as SPEC §4's Event and survives JSON; every Skipped is of a
    known kind (or, where a source lists none, a short one-line kind), its detail short and
    one line, and none of them is a bug caught on the way."""
    for event in parsed.events:
        Event.model_validate(event)
        assert json.loads(json.dumps(event)) == event
    for skipped in parsed.skipped:
        assert skipped.kind != "internal-error", skipped
        assert "NameError" not in skipped.detail and "UnboundLocalError" not in skipped.detail, skipped
        if skip_kinds is None:
            assert skipped.kind and ONE_LINE.fullmatch(skipped.kind) and len(skipped.kind) <= 60
        else:
            assert skipped.kind in skip_kinds, skipped
        assert ONE_LINE.fullmatch(skipped.detail) and len(skipped.detail) <= 300
