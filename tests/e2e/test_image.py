"""The container image, really run: the Dockerfile is built with a real engine (Debian's
podman, with runc), the sidecar image serves `/healthz`, and a `jobpulse exec` job in a
container of the same image records a run in it.

Where no image registry is reachable (as on jobpulse's CI machines), the Dockerfile's `BASE` is
an image made here from Debian packages with `debootstrap` (Python 3.11 and pip, and the host's
CA certificates so pip reaches PyPI through the host's TLS setup); elsewhere the Dockerfile's
default `python:3.11-slim` applies. Skipped, naming what is missing, when podman, runc or
debootstrap is absent (failed instead under JOBPULSE_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, need

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/jobpulse-base"
IMAGE = "localhost/jobpulse:test"
TOKENS = {
    "JOBPULSE_INGEST_TOKENS": "ing",
    "JOBPULSE_READ_TOKENS": "rd",
    "JOBPULSE_ADMIN_TOKENS": "adm",
}

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _podman(
    env: dict[str, str], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", "--runtime", "runc", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    for tool in ("podman", "runc", "debootstrap"):
        need(shutil.which(tool) is not None, f"{tool} is not installed (apt-get install {tool})")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    # This machine's hard limits are below podman's default ulimits, which it may not raise.
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    info = _podman(env, "info", timeout=60)
    need(info.returncode == 0, f"podman cannot run here: {info.stderr.strip()[-300:]}")
    return env


def _base(env: dict[str, str], workdir: Path) -> str:
    """The image to build on: a local Debian one, made once per machine."""
    if _podman(env, "image", "exists", BASE).returncode == 0:
        return BASE
    rootfs = workdir / "rootfs"
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-pip,python-is-python3,ca-certificates",
            "bookworm",
            str(rootfs),
            "http://deb.debian.org/debian",
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.exists():  # trust what the host trusts (a TLS-inspecting proxy's CA included)
        shutil.copy(bundle, rootfs / "etc/ssl/certs/ca-certificates.crt")
        (rootfs / "etc/pip.conf").write_text(f"[global]\ncert = {bundle}\n")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(
        ["podman", "import", "-", BASE], stdin=tar.stdout, capture_output=True, env=env, timeout=300
    )
    tar.wait()
    assert imported.returncode == 0, imported.stderr
    return BASE


@pytest.fixture(scope="module")
def image(engine: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    base = _base(engine, tmp_path_factory.mktemp("base"))
    built = _podman(
        engine, "build", "--network", "host", "--build-arg", f"BASE={base}", "-t", IMAGE, str(ROOT)
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return IMAGE


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


@pytest.fixture
def sidecar(engine: dict[str, str], image: str) -> Iterator[str]:
    port = free_port()
    name = f"jobpulse-test-{port}"
    env_args = [f"--env={k}={v}" for k, v in {**TOKENS, "JOBPULSE_PORT": str(port)}.items()]
    # The image's own command: `jobpulse serve --host 0.0.0.0`, tokens required.
    started = _podman(engine, "run", "-d", "--name", name, "--network", "host", *env_args, image)
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(url + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                logs = _podman(engine, "logs", name, timeout=30)
                raise AssertionError(f"the image never answered /healthz: {logs.stderr[-2000:]}")
            time.sleep(0.25)
        yield url
    finally:
        _podman(engine, "rm", "-f", name, timeout=60)


@pytest.mark.timeout(1200)  # the first build on a machine makes the base image too
def test_the_image_serves_and_a_jobpulse_exec_container_records_its_run(
    engine: dict[str, str], image: str, sidecar: str
) -> None:
    job = _podman(
        engine,
        "run",
        "--rm",
        "--network",
        "host",
        f"--env=JOBPULSE_URL={sidecar}",
        "--env=JOBPULSE_TOKEN=ing",
        image,
        "jobpulse",
        "exec",
        "--job",
        "image-job",
        "--",
        "python",
        "-c",
        "print('hello from the job'); raise SystemExit(3)",
        timeout=120,
    )
    assert job.returncode == 3, job.stderr  # the job's own exit status comes through
    assert "hello from the job" in job.stdout
    deadline = time.monotonic() + 20
    while True:
        status, body = _get(f"{sidecar}/api/v1/jobs/image-job/runs", token="rd")
        if status == 200 and body["runs"]:
            break
        assert time.monotonic() < deadline, (status, body)
        time.sleep(0.25)
    [run] = body["runs"]
    assert (run["outcome"], run["exit_code"]) == ("failure", 3)
    assert _get(f"{sidecar}/readyz")[0] == 200
