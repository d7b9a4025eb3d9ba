"""``jobpulse status`` as a subprocess against a live sidecar on an ephemeral port."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from jobpulse.instrumentation.status import render_table
from tests.conftest import free_port

from .scenario import STATES, build_app, play

JOBPULSE = str(Path(sys.executable).with_name("jobpulse"))


async def status(*args: str, **env: str) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JOBPULSE_", "NO_COLOR"))}
    proc = await asyncio.create_subprocess_exec(
        JOBPULSE,
        "status",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**clean, **env},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def table_rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in out.splitlines()[1:-1]}


async def test_healthy_fleet_exits_0(serve, tmp_path):
    app = build_app(tmp_path, failing=False)
    url = await serve(app)
    play(app, failing=False)
    code, out, err = await status("--url", url)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "STATE",
        "LAST",
        "SUCCESS",
        "NEXT",
        "EXPECTED",
        "RUNNING",
        "SUCCESS",
        "24H",
    ]
    found = table_rows(out)
    assert {name: row[1] for name, row in found.items()} == {
        "adhoc": "new",
        "backup": "up",
        "cleanup": "paused",
        "sync": "late",
    }
    assert found["backup"][-1] == "100.0%"
    assert found["adhoc"][2] == "never"
    assert lines[-1] == "4 jobs: 1 late, 1 new, 1 paused, 1 up"
    assert "\033[" not in out  # not a terminal: no colours


async def test_failing_fleet_exits_1_and_names_the_reason(serve, tmp_path):
    app = build_app(tmp_path)
    url = await serve(app)
    play(app)
    code, out, err = await status(JOBPULSE_URL=url)
    assert code == 1, err
    found = table_rows(out)
    assert found["report"][1] == "down(missed)"
    assert found["import"][1] == "down(failed)"
    assert set(found) == set(STATES)
    # one healthy job asked for alone exits 0, a down one exits 1
    code, out, _ = await status("--url", url, "--job", "backup")
    assert code == 0 and table_rows(out).keys() == {"backup"}
    code, out, _ = await status("--url", url, "--job", "report")
    assert code == 1 and "down(missed)" in out


async def test_json_output(serve, tmp_path):
    app = build_app(tmp_path)
    url = await serve(app)
    play(app)
    code, out, _ = await status("--url", url, "--json")
    assert code == 1
    data = json.loads(out)
    assert {j["name"]: (j["state"], j["reason"]) for j in data["jobs"]} == STATES
    code, out, _ = await status("--url", url, "--json", "--job", "sync")
    assert code == 0
    assert json.loads(out)["state"] == "late"


async def test_unknown_job_exits_2(serve, tmp_path):
    app = build_app(tmp_path, failing=False)
    url = await serve(app)
    code, out, err = await status("--url", url, "--job", "nope")
    assert (code, out) == (2, "")
    assert f"the sidecar at {url} has no job named 'nope'" in err


async def test_unreachable_sidecar_exits_2():
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = await status("--url", url)
    assert (code, out) == (2, "")
    assert f"cannot reach the sidecar at {url}" in err
    code, _, err = await status("--url", "ftp://example")
    assert code == 2 and "is not a sidecar URL" in err


async def test_token_from_flag_or_environment(serve, tmp_path):
    app = build_app(tmp_path, failing=False, read_tokens=("reader",))
    url = await serve(app)
    play(app, failing=False)
    code, _, err = await status("--url", url)
    assert code == 2
    assert f"the sidecar at {url} answered 401" in err and "--token" in err
    assert (await status("--url", url, "--token", "reader"))[0] == 0
    assert (await status("--url", url, JOBPULSE_TOKEN="reader"))[0] == 0
    code, _, err = await status("--url", url, "--token", "wrong")
    assert code == 2 and "401" in err


def test_colours_mark_the_state_only():
    jobs = [
        {"name": "a", "state": "down", "reason": "missed", "running": 0},
        {"name": "bb", "state": "up", "reason": None, "running": 1, "success_ratio_24h": 0.5},
    ]
    plain = render_table(jobs, now=0.0, colour=False)
    coloured = render_table(jobs, now=0.0, colour=True)
    assert "\033[" not in plain
    assert "\033[31mdown(missed)\033[0m" in coloured
    assert "\033[32mup" in coloured
    assert coloured.replace("\033[31m", "").replace("\033[32m", "").replace("\033[0m", "") == plain
    assert plain.splitlines()[-1] == "2 jobs: 1 down, 1 up"
