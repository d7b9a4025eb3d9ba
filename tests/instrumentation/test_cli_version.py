"""`jobpulse --version` and `jobpulse version`, through the installed console script."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

JOBPULSE = str(Path(sys.executable).parent / "jobpulse")


@pytest.mark.parametrize("argv", [["--version"], ["version"]])
def test_version_prints_one_line_and_exits_0(argv: list[str]) -> None:
    proc = subprocess.run(
        [JOBPULSE, *argv], capture_output=True, text=True, timeout=30, check=False
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0,
        f"jobpulse {version('jobpulse')}\n",
        "",
    )
