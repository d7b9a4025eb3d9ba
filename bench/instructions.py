"""``python -m bench.instructions [--jobs N] [--scenario S] [TREE ...]``: the applier's cost.

Wall-clock and even CPU-time figures move by 20% and more between runs on a shared 2-core
machine (benchmark 11, ``apply_cost``, measured 2,700 to 4,700 events per CPU second with the
same code in one afternoon), which hides any change smaller than that. Instructions do not
move: this runs benchmark 11's scenario (``N`` cron jobs each with a start and a success
waiting in the inbox at the top of the hour, applied by ``Sidecar.apply_pending``) under
valgrind's callgrind, counting only while the inbox is applied (``callgrind_control -i``
around the call), and reports instructions per applied event; the same count for raw
``sqlite3`` ``executemany`` of one row per event (benchmark 11's floor) gives the ratio.
``--scenario steady`` applies as many events of benchmark 10's load instead (finish-only
successes over 100 jobs; a tree compared must have ``bench/apply.py``'s ``steady``).

Each ``TREE`` is a checkout of jobpulse (default: this one), so two commits compare in one run:
``git worktree add /tmp/before HEAD~1 && python -m bench.instructions /tmp/before .``.
Needs valgrind (``apt-get install -y valgrind``); about a minute per tree at 1,000 jobs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Run in the child, under valgrind: imports jobpulse from the tree given (not the installed
# one), counts only while the inbox is applied (or the floor's rows are inserted).
_CHILD = r"""
import os, subprocess, sys, tempfile
from pathlib import Path

tree, jobs, what, steady = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "steady"
sys.meta_path = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
pkg = Path.cwd() / "pkg"  # the parent's temporary directory: removed with it
(pkg / "jobpulse").mkdir(parents=True)
for part in ("instrumentation", "sidecar"):
    os.symlink(Path(tree, part), pkg / "jobpulse" / part)
sys.path[:0] = [tree, str(pkg)]


def counting(on):
    subprocess.run(
        ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
        stdout=subprocess.DEVNULL, check=True,
    )


def measured(fn):
    def wrapper(*args, **kwargs):
        counting(True)
        try:
            return fn(*args, **kwargs)
        finally:
            counting(False)
    return wrapper


import bench.apply as apply
from jobpulse.sidecar.service import Sidecar

with tempfile.TemporaryDirectory() as tmp:
    if what == "floor":
        calls = [0]

        def toggle():  # the floor reads process_time when it starts and when it ends
            calls[0] += 1
            counting(calls[0] == 1)
            return float(calls[0])

        apply.time.process_time = toggle
        apply._sqlite_per_cpu_second(Path(tmp), 2 * jobs)
    else:
        Sidecar.apply_pending = measured(Sidecar.apply_pending)
        extra = {"steady": True} if steady else {}  # older trees know only the top of the hour
        apply._applied_per_cpu_second(Path(tmp), jobs, **extra)
"""


def count(tree: Path, jobs: int, what: str, scenario: str = "top") -> int:
    """Instructions counted while ``what`` ("apply" or "floor") ran in ``tree``'s code, on
    ``scenario``'s events ("top" or "steady")."""
    with tempfile.TemporaryDirectory(prefix="jobpulse-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        proc = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-c",
                _CHILD,
                str(tree),
                str(jobs),
                what,
                scenario,
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{tree}: {what} failed under valgrind:\n{proc.stderr[-3000:]}")
        found = re.search(r"Collected : (\d+)", proc.stderr)
        if found is None:
            raise RuntimeError(f"{tree}: no instruction count in valgrind's output")
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="*", type=Path, help="jobpulse checkouts (default: .)")
    parser.add_argument("--jobs", type=int, default=1000, help="cron jobs (2 events each)")
    parser.add_argument(
        "--scenario",
        choices=("top", "steady"),
        default="top",
        help="top: each job a start and a success (benchmark 11); steady: as many finish-only "
        "successes over 100 jobs (benchmark 10's load)",
    )
    args = parser.parse_args()
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"needs {' and '.join(missing)} (apt-get install -y valgrind)")
    events = 2 * args.jobs
    trees = [tree.resolve() for tree in args.trees] or [Path(__file__).resolve().parent.parent]
    floor = count(trees[0], args.jobs, "floor") / events
    print(f"raw sqlite3 executemany: {floor:,.0f} instructions per row")
    first: float | None = None
    for tree in trees:
        per_event = count(tree, args.jobs, "apply", args.scenario) / events
        change = "" if first is None else f" ({100 * (per_event / first - 1):+.1f}%)"
        first = per_event if first is None else first
        print(
            f"{tree}: {per_event:,.0f} instructions per applied event, "
            f"{per_event / floor:.1f}x the floor{change}"
        )


if __name__ == "__main__":
    main()
