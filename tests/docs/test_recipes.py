"""The crontab recipes in the docs and in examples/cron, run as documented with ``sh``.

Every ``<!-- recipe -->`` code block of the docs (and every entry of examples/cron/crontab) is
run twice: against a closed port, where the job must still run, and against a real
``jobpulse serve``, where the run must be recorded with the job's own exit status. Only the
sidecar's address, the job's command and the curl timeouts are substituted; the rest is the
documented text.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jobpulse.sidecar.testing import ServedSidecar, free_port

REPO = Path(__file__).resolve().parents[2]
DOCS = ("docs/integrations.md", "docs/migrating-from-healthchecks.md")
CRONTAB = "examples/cron/crontab"
MARKED = re.compile(r"<!-- recipe -->\n```cron\n(.*?)\n```", re.DOTALL)
CRON_BLOCK = re.compile(r"```cron\n")
SCHEDULE = re.compile(r"^(\S+\s+){5}")
# The sidecar addresses the recipes use, and the jobs they run.
ADDRESSES = ("http://jobpulse:8484", "http://127.0.0.1:8484")
JOB_COMMANDS = (
    "/usr/local/bin/backup.sh",
    "/opt/ldap/sync --quiet",
    "/usr/sbin/logrotate /etc/logrotate.conf",
    "/opt/reports/build.sh",
)
JOB_NAME = re.compile(r"--job (\S+)|/ping/([a-z0-9._-]+)/")
JOB_STATUS = 3


def _recipes() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = (REPO / doc).read_text(encoding="utf-8")
        lines = MARKED.findall(text)
        # a cron block without the marker would escape this test
        assert len(lines) == len(CRON_BLOCK.findall(text)), f"{doc}: unmarked cron block"
        found += [(f"{doc} #{n}", line) for n, line in enumerate(lines, start=1)]
    for n, line in enumerate((REPO / CRONTAB).read_text(encoding="utf-8").splitlines(), 1):
        if line and not line.startswith("#") and SCHEDULE.match(line) and "flush" not in line:
            found.append((f"{CRONTAB}:{n}", line))
    return found


RECIPES = _recipes()


def test_recipes_are_found() -> None:
    assert len(RECIPES) >= 6
    assert sum("curl" in line for _, line in RECIPES) >= 4
    assert sum("jobpulse exec" in line for _, line in RECIPES) >= 3


def _job_name(line: str) -> str:
    names = {a or b for a, b in JOB_NAME.findall(line)}
    assert len(names) == 1, line
    return names.pop()


def _prepare(line: str, url: str, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The recipe's command as cron would run it, pointed at ``url`` and at a test job."""
    command = SCHEDULE.sub("", line, count=1)
    (job,) = [c for c in JOB_COMMANDS if c in command]
    marker = tmp_path / "job-ran"
    script = tmp_path / "job.sh"
    script.write_text(f"echo ran >> {marker}\nexit {JOB_STATUS}\n", encoding="utf-8")
    command = command.replace(job, f"sh {script}")
    for address in ADDRESSES:
        command = command.replace(address, url)
    if "curl" in command:
        assert "-m 10" in command, "a curl ping without a timeout can hang the job"
        command = command.replace("-m 10", "-m 2")
        command = re.sub(r"--retry \d+", "--retry 1", command)  # fast against a closed port
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "JOBPULSE_URL": url,
        "JOBPULSE_SPOOL_DIR": str(tmp_path / "spool"),
    }
    return command, env


def _run(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", command], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(("where", "line"), RECIPES, ids=[w for w, _ in RECIPES])
def test_the_job_runs_when_the_sidecar_is_down(where: str, line: str, tmp_path: Path) -> None:
    command, env = _prepare(line, f"http://127.0.0.1:{free_port()}", tmp_path)
    proc = _run(command, env, tmp_path)
    assert (tmp_path / "job-ran").read_text() == "ran\n", f"{where}: the job did not run\n{proc}"
    if command.startswith("jobpulse exec"):
        assert proc.returncode == JOB_STATUS, proc.stderr


@pytest.mark.parametrize(("where", "line"), RECIPES, ids=[w for w, _ in RECIPES])
def test_the_run_is_recorded_with_the_jobs_own_exit_status(
    where: str, line: str, tmp_path: Path
) -> None:
    name = _job_name(line)
    with ServedSidecar(tmp_path, f"jobs:\n  - name: {name}\n    every: 1h\n") as sidecar:
        command, env = _prepare(line, sidecar.url, tmp_path)
        proc = _run(command, env, tmp_path)
        assert (tmp_path / "job-ran").read_text() == "ran\n", proc
        status, body = sidecar.get(f"/api/v1/jobs/{name}/runs")
    assert status == 200, body
    runs = json.loads(body)["runs"]
    assert len(runs) == 1, f"{where}: {runs}\n{proc}"
    (run,) = runs
    assert (run["outcome"], run["exit_code"]) == ("failure", JOB_STATUS), f"{where}: {run}"
