"""`jobpulse exec`: exit codes, stderr tail, missing commands and signal forwarding."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import FakeSidecar


def jobpulse_exec(
    sidecar: FakeSidecar, spool: Path, *args: str, **popen: object
) -> subprocess.Popen[str]:
    env = {**os.environ, "JOBPULSE_SPOOL_DIR": str(spool)}
    cmd = [sys.executable, "-m", "jobpulse.instrumentation.cli", "exec", "--url", sidecar.url]
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [*cmd, *args], env=env, text=True, stderr=subprocess.PIPE, **popen
    )


def finish(sidecar: FakeSidecar) -> dict[str, object]:
    (event,) = [e for e in sidecar.events if e["type"] != "start"]
    return event


def test_success_reports_exit_code_zero(sidecar: FakeSidecar, tmp_path: Path) -> None:
    proc = jobpulse_exec(
        sidecar, tmp_path, "--job", "backup", "--schedule", "0 1 * * *", "--", "true"
    )
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    start = sidecar.events[0]
    assert start["type"] == "start"
    assert start["job_config"] == {"schedule": "0 1 * * *"}
    event = finish(sidecar)
    assert (event["type"], event["exit_code"]) == ("success", 0)
    assert isinstance(event["duration"], float)


def test_failure_propagates_the_exit_code_and_keeps_the_stderr_tail(
    sidecar: FakeSidecar, tmp_path: Path
) -> None:
    script = "import sys\nfor i in range(50): print('line', i, file=sys.stderr)\nsys.exit(3)"
    proc = jobpulse_exec(sidecar, tmp_path, "--job", "etl", "--", sys.executable, "-c", script)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3
    assert "line 0\n" in err
    assert "line 49\n" in err
    event = finish(sidecar)
    # the status is the exit code, not the error's type
    assert (event["type"], event["exit_code"], event["error_type"]) == ("failure", 3, "exit_code")
    message = str(event["error_message"])
    assert message.endswith("line 49")
    assert "line 29" not in message  # only the last lines are kept


def test_stdout_is_passed_through_and_both_tails_are_the_runs_log(
    sidecar: FakeSidecar, tmp_path: Path
) -> None:
    script = (
        "import sys\n"
        "for i in range(2000): print('out', i)\n"
        "print('stderr says why', file=sys.stderr)\n"
        "sys.exit(4)"
    )
    proc = jobpulse_exec(
        sidecar,
        tmp_path,
        "--job",
        "etl",
        "--",
        sys.executable,
        "-c",
        script,
        stdout=subprocess.PIPE,
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 4
    assert out.startswith("out 0\n")  # cron still mails the whole output
    assert out.endswith("out 1999\n")
    assert "stderr says why" in err
    event = finish(sidecar)
    assert (event["exit_code"], event["error_type"]) == (4, "exit_code")
    assert event["error_message"] == "stderr says why"
    log = str(event["message"])
    assert "out 1999" in log
    assert "out 0\n" not in log  # the end of stdout, bounded
    assert len(log.encode()) <= 2 * 4096 + 100
    assert log.index("out 1999") < log.index("stderr says why")
    assert log.splitlines()[1].startswith("out ")  # from a whole line


def test_a_successful_run_keeps_its_output_as_the_log(sidecar: FakeSidecar, tmp_path: Path) -> None:
    proc = jobpulse_exec(
        sidecar,
        tmp_path,
        "--job",
        "hello",
        "--",
        "sh",
        "-c",
        "echo 3 files copied",
        stdout=subprocess.PIPE,
    )
    out, _ = proc.communicate(timeout=30)
    assert (proc.returncode, out) == (0, "3 files copied\n")
    event = finish(sidecar)
    assert (event["type"], event["message"]) == ("success", "3 files copied")
    assert "error_type" not in event


def test_missing_command_exits_127(sidecar: FakeSidecar, tmp_path: Path) -> None:
    proc = jobpulse_exec(sidecar, tmp_path, "--job", "typo", "--", "no-such-command-jobpulse")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 127
    assert "no-such-command-jobpulse: command not found" in err
    event = finish(sidecar)
    assert (event["type"], event["exit_code"]) == ("failure", 127)


def test_usage_errors(sidecar: FakeSidecar, tmp_path: Path) -> None:
    proc = jobpulse_exec(sidecar, tmp_path, "--job", "nothing", "--")
    assert proc.communicate(timeout=30)[1].count("no command given") == 1
    assert proc.returncode == 2
    proc = jobpulse_exec(sidecar, tmp_path, "--job", "x", "--schedule", "99 * * * *", "--", "true")
    assert "99 * * * *" in proc.communicate(timeout=30)[1]
    assert proc.returncode == 2
    assert sidecar.events == []


def test_child_killed_by_a_signal_exits_128_plus_n(sidecar: FakeSidecar, tmp_path: Path) -> None:
    script = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    proc = jobpulse_exec(sidecar, tmp_path, "--job", "oom", "--", sys.executable, "-c", script)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGKILL
    event = finish(sidecar)
    assert (event["exit_code"], event["error_type"]) == (137, "SIGKILL")


def test_sigterm_is_forwarded_to_the_child(sidecar: FakeSidecar, tmp_path: Path) -> None:
    script = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        "    print('child got SIGTERM', file=sys.stderr, flush=True)\n"
        "    sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = jobpulse_exec(
        sidecar,
        tmp_path,
        "--job",
        "long",
        "--",
        sys.executable,
        "-c",
        script,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert "child got SIGTERM" in err
    assert proc.returncode == 7
    event = finish(sidecar)
    assert (event["type"], event["exit_code"]) == ("failure", 7)
    assert "child got SIGTERM" in str(event["error_message"])
