"""The distribution: every package folder is listed, and a built wheel holds only jobpulse.*"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAPPING = {"instrumentation": "jobpulse.instrumentation", "sidecar": "jobpulse.sidecar"}


def _declared() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(data["tool"]["setuptools"]["packages"])


def test_every_package_folder_is_listed() -> None:
    found = set()
    for top, name in MAPPING.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    assert found == _declared()


@pytest.mark.slow
def test_wheel_holds_only_the_namespace(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    [wheel] = list(tmp_path.glob("jobpulse-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops <= {"jobpulse", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    assert "jobpulse/sidecar/http/pages/__init__.py" in names
    assert "jobpulse/sidecar/store/migrations/script.py.mako" in names
    assert "jobpulse/instrumentation/py.typed" in names
    assert not any(n.startswith("jobpulse/__init__") for n in names)  # a namespace package
