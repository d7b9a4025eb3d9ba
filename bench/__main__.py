"""``python -m bench [--quick] [--only NAME ...] [--output PATH]``: every jobpulse benchmark,
each against its baseline measured in the same run; a table on stdout and a JSON file."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from .common import Check, Result, machine

BENCHMARKS: tuple[tuple[str, str, str], ...] = (
    ("decorator_cost", "bench.decorator", "decorator_cost"),
    ("outage_cost", "bench.decorator", "outage_cost"),
    ("single_ingest", "bench.ingest", "single_ingest"),
    ("batched_ingest", "bench.ingest", "batched_ingest"),
    ("top_of_hour", "bench.burst", "top_of_hour"),
    ("apply_lag", "bench.burst", "apply_lag"),
    ("apply_cost", "bench.apply", "apply_cost"),
    ("evaluator", "bench.evaluator", "evaluator"),
    ("metrics", "bench.metrics", "metrics"),
    ("memory", "bench.memory", "memory"),
    ("detection_latency", "bench.latency", "detection_latency"),
)
DEFAULT_OUTPUT = Path(__file__).parent / "results" / "latest.json"


def _load(module: str, attr: str) -> Callable[[bool], Result]:
    import importlib

    fn: Callable[[bool], Result] = getattr(importlib.import_module(module), attr)
    return fn


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(results: list[Result]) -> str:
    head = ("benchmark", "jobpulse", "baseline", "ratio", "target", "met?")
    rows: list[tuple[str, ...]] = []
    for r in results:
        for c in r.checks:
            met = "yes" if c.met else ("no" if c.ratio is not None else "n/a")
            rows.append(
                (
                    f"{r.name}: {c.name}",
                    f"{_fmt(c.value)} {c.unit}" if c.value is not None else "—",
                    f"{_fmt(c.baseline)} {c.unit}" if c.baseline is not None else "—",
                    f"{c.ratio:.3g}x" if c.ratio is not None else "—",
                    c.target,
                    met + (f" ({c.note})" if c.note else ""),
                )
            )
    widths = [max(len(row[i]) for row in (head, *rows)) for i in range(len(head))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs (≤ ~60 s)")
    parser.add_argument("--only", nargs="*", help="benchmark names to run (default: all)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    args = parser.parse_args(argv)
    chosen = [b for b in BENCHMARKS if not args.only or b[0] in args.only]
    results: list[Result] = []
    started = time.monotonic()
    for name, module, attr in chosen:
        t0 = time.monotonic()
        print(f"… {name}", file=sys.stderr, flush=True)
        try:
            result = _load(module, attr)(args.quick)
        except Exception as exc:  # a broken benchmark is reported, the others still run
            traceback.print_exc()
            reason = f"{type(exc).__name__}: {exc}"[:300]
            result = Result(
                name, name, [Check(name, None, None, "—", "", note=f"failed: {reason}")]
            )
        result.extra["seconds"] = round(time.monotonic() - t0, 2)
        print(f"  {name}: {result.extra['seconds']} s", file=sys.stderr, flush=True)
        results.append(result)
    doc = {
        "quick": args.quick,
        "machine": machine(),
        "seconds": round(time.monotonic() - started, 2),
        "benchmarks": [r.as_json() for r in results],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(table(results))
    print(f"\n{'quick run; ' if args.quick else ''}results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
