"""Validation of 1,000 webhook files: `scripts/validate` against `check-jsonschema` on the
same files with the same schema (both as processes, start-up included). Wraps
benchmarks.config_bench, which writes the files and times both."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from benchmarks import config_bench
from benchmarks.harness import Row, Scale, ratio_text, scratch


def _seconds(text: str) -> float | None:
    found = re.match(r"([\d.]+) s", text)
    return float(found.group(1)) if found else None


async def run(_scale: Scale) -> list[Row]:
    found: list[tuple[str, str, str]] = []
    with scratch() as root:
        await asyncio.to_thread(config_bench.bench_loading, Path(root), found)
    by_name = {name.split(",")[0]: (time, notes) for name, time, notes in found}
    ours = _seconds(by_name["scripts/validate"][0])
    theirs = _seconds(by_name.get("check-jsonschema", ("skipped", ""))[0])
    details = {name: {"time": time, "notes": notes} for name, time, notes in found}
    if ours is None:
        return [Row("validate", "error", "", "", "", False, details)]
    if theirs is None:
        return [Row(f"validate {config_bench.FILES:,} files", f"{ours:.2f} s",
                    "check-jsonschema not installed", "—", "< check-jsonschema", None, details)]
    ratio = ours / theirs
    return [Row(
        f"validate {config_bench.FILES:,} files", f"{ours:.2f} s",
        f"check-jsonschema {theirs:.2f} s", ratio_text(ratio), "< 1.00× check-jsonschema",
        ratio < 1.0, details,
    )]
