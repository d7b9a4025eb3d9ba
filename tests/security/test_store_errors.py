"""A store that cannot be opened, or a port that is taken: `jobpulse serve` and `migrate` say so
in one line on stderr (the URL's password masked), exit 78 (EX_CONFIG) and create nothing."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.sidecar.process import JOBPULSE

# -- 6. a store that cannot be opened ---------------------------------------------------------


def run_jobpulse(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([JOBPULSE, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 78, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("verb", ["serve", "migrate"])
def test_a_sqlite_store_in_a_missing_directory_is_one_line_and_creates_nothing(
    tmp_path: Path, verb: str
) -> None:
    url = f"sqlite:///{tmp_path}/missing/jobpulse.db"
    extra = ["--port", "0"] if verb == "serve" else []
    line = one_line(run_jobpulse(verb, "--store", url, *extra, cwd=tmp_path))
    assert url in line
    assert "does not exist" in line
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("verb", ["serve", "migrate"])
def test_a_file_that_is_not_sqlite_is_one_line(tmp_path: Path, verb: str) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not a database, just notes\n" * 100)
    extra = ["--port", "0"] if verb == "serve" else []
    line = one_line(run_jobpulse(verb, "--store", f"sqlite:///{path}", *extra, cwd=tmp_path))
    assert str(path) in line
    assert "not a database" in line
    assert path.read_text().startswith("not a database, just notes")


@pytest.mark.parametrize("verb", ["serve", "migrate"])
def test_an_unreachable_postgresql_is_one_line_with_the_password_masked(
    tmp_path: Path, verb: str
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://jobs:s3cret-pw@127.0.0.1:{port}/jobpulse"
    extra = ["--port", "0"] if verb == "serve" else []
    line = one_line(run_jobpulse(verb, "--store", url, *extra, cwd=tmp_path))
    assert "s3cret-pw" not in line
    assert f"jobs:***@127.0.0.1:{port}/jobpulse" in line


def test_a_taken_port_is_one_line_and_leaves_no_database_behind(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        db = tmp_path / "jobpulse.db"
        proc = run_jobpulse(
            "serve", "--store", f"sqlite:///{db}", "--port", str(port), cwd=tmp_path
        )
    line = one_line(proc)
    assert f"127.0.0.1:{port}" in line
    assert list(tmp_path.iterdir()) == []
