"""Validation of 1,000 webhook files: `scripts/validate` against `check-jsonschema` on the
same files with the same schema (both as processes, start-up included), in alternating
rounds. Wraps benchmarks.config_bench, which writes the files and times both."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

from benchmarks import config_bench
from benchmarks.harness import Paired, Row, Scale, ratio_text, scratch


async def run(scale: Scale) -> list[Row]:
    found: list[tuple[str, str, str]] = []
    timings: dict[str, list[float]] = {}
    with scratch() as root:
        await asyncio.to_thread(config_bench.bench_loading, Path(root), found,
                                scale.pick(3, 1), timings)
    details = {name: {"time": time, "notes": notes} for name, time, notes in found}
    if "scripts/validate" not in timings:
        return [Row("validate", "error", "", "", "", False, details)]
    if "check-jsonschema" not in timings:
        ours = statistics.median(timings["scripts/validate"])
        return [Row(f"validate {config_bench.FILES:,} files", f"{ours:.2f} s",
                    "check-jsonschema not installed", "—", "< check-jsonschema", None, details)]
    paired = Paired(timings["scripts/validate"], timings["check-jsonschema"])
    return [Row(
        f"validate {config_bench.FILES:,} files", f"{paired.figure:.2f} s",
        f"check-jsonschema {paired.limit:.2f} s", ratio_text(paired.ratio),
        "< 1.00× check-jsonschema", paired.ratio < 1.0, {**paired.as_json(), **details},
    )]
