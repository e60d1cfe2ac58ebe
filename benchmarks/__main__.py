"""Run the benchmarks against the limits of the stack and print one table.

    .venv/bin/python -m benchmarks              # everything, about 5 minutes
    .venv/bin/python -m benchmarks --quick      # smaller counts, about 1 minute
    .venv/bin/python -m benchmarks --only intake
    .venv/bin/python -m benchmarks --soak [--minutes 10] [--rate 500]

Writes benchmarks/results/latest.json and latest.md. Each figure is printed beside a
baseline measured in the same run on the same machine: the ratio is what counts.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.harness import Row, Scale, machine

BENCHMARKS = ("intake", "delivery", "payload", "latency", "fanout", "match", "validate", "reload",
              "memory", "sources")
RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("benchmark", "figure", "limit (baseline)", "ratio", "goal", "met?")


def _met(row: Row) -> str:
    return {True: "yes", False: "NO", None: "—"}[row.met]


def _cells(row: Row) -> tuple[str, ...]:
    return (row.benchmark, row.figure, row.baseline, row.ratio, row.goal, _met(row))


def table_text(rows: list[Row]) -> str:
    lines = [COLUMNS, *(_cells(row) for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(COLUMNS))]
    out = []
    for number, line in enumerate(lines):
        out.append(" | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if number == 0:
            out.append("-+-".join("-" * width for width in widths))
    return "\n".join(out)


def table_markdown(rows: list[Row], info: dict[str, object]) -> str:
    out = [f"| {' | '.join(COLUMNS)} |", f"|{'---|' * len(COLUMNS)}"]
    out += [f"| {' | '.join(cell.replace('|', '/') for cell in _cells(row))} |" for row in rows]
    machine_line = (
        f"{info['date']}, {info['nproc']} CPUs, {info['memory']}, Python {info['python']}, "
        f"uvloop {'yes' if info['uvloop'] else 'no'}"
        f"{', --quick' if info['quick'] else ''}"
    )
    return "\n".join(out) + f"\n\n{machine_line}; `.venv/bin/python -m benchmarks`\n"


async def run_one(name: str, scale: Scale) -> list[Row]:
    started = time.monotonic()
    print(f"… {name}", file=sys.stderr, flush=True)
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        rows: list[Row] = await module.run(scale)
    except Exception as error:
        traceback.print_exc()
        rows = [Row(name, "error", "", "", "", False, {"error": f"{type(error).__name__}: {error}"})]
    print(f"  {name} took {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    for row in rows:
        print("  " + " | ".join(_cells(row)), file=sys.stderr, flush=True)
    return rows


async def run_all(names: list[str], scale: Scale) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        rows += await run_one(name, scale)
    return rows


def _run(coroutine: object) -> object:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    return uvloop.run(coroutine)  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts: about a minute")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, metavar="NAME",
                        help=f"run only this one (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--soak", action="store_true", help="run the soak instead (benchmarks.soak)")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length")
    parser.add_argument("--rate", type=float, default=500.0, help="soak events per second")
    options = parser.parse_args(argv)
    if options.soak:
        from benchmarks import soak

        return soak.main(["--minutes", str(options.minutes), "--rate", str(options.rate)])
    scale = Scale(quick=options.quick)
    names = options.only or list(BENCHMARKS)
    started = time.monotonic()
    info: dict[str, object] = machine()
    rows: list[Row] = _run(run_all(names, scale))  # type: ignore[assignment]
    memory = info["memory"]
    info.update({
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "memory": memory.get("MemTotal", "?") if isinstance(memory, dict) else memory,
        "quick": options.quick,
        "only": options.only,
        "seconds": round(time.monotonic() - started, 1),
    })
    print()
    print(table_text(rows))
    print(f"\n{info['date']}, nproc {info['nproc']}, {info['memory']}, Python {info['python']}, "
          f"uvloop {info['uvloop']}, took {info['seconds']} s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(
        json.dumps({**info, "rows": [row.as_json() for row in rows]}, indent=2, default=str) + "\n"
    )
    (RESULTS / "latest.md").write_text(table_markdown(rows, info))
    print(f"wrote {RESULTS / 'latest.json'} and latest.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
