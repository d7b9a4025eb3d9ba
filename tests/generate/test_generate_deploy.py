"""The deploy/ files, docker-compose.yml and the Dockerfile pass their tools' checks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _tool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_prometheus_config_is_valid_with_the_rules_mounted(promtool: str, tmp_path: Path) -> None:
    """As docker-compose.yml mounts them: the config, the read token file, and alerts/ as
    rules/ next to it."""
    shutil.copy(DEPLOY / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(DEPLOY / "jobpulse-read-token", tmp_path / "jobpulse-read-token")
    shutil.copytree(REPO / "alerts", tmp_path / "rules")
    result = _tool(promtool, "check", "config", "prometheus.yml", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS: 1 rule files found" in output


def test_prometheus_config_scrapes_the_sidecar_and_alerts() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["jobpulse"]["static_configs"] == [{"targets": ["sidecar:8484"]}]
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    assert "./alerts:/etc/prometheus/rules:ro" in compose["services"]["prometheus"]["volumes"]
    assert config["rule_files"] == ["rules/*.yml"]
    # with auth on, /metrics needs the read token the sidecar is given
    assert jobs["jobpulse"]["authorization"]["credentials_file"] == "jobpulse-read-token"
    sidecar_env = compose["services"]["sidecar"]["environment"]
    token = (DEPLOY / "jobpulse-read-token").read_text(encoding="utf-8").strip()
    assert sidecar_env["JOBPULSE_READ_TOKENS"].endswith(f":-{token}}}")


def test_alertmanager_config_is_valid(amtool: str) -> None:
    result = _tool(amtool, "check-config", DEPLOY / "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_inhibits_warnings_of_a_job_with_a_critical_alert() -> None:
    config = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text(encoding="utf-8"))
    assert {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity=~"warning|info"'],
        "equal": ["cluster", "namespace", "job_name"],
    } in config["inhibit_rules"]
    # one group per job, not per alert name: one notification per incident
    assert config["route"]["group_by"] == ["cluster", "namespace", "job_name"]


def test_a_down_job_inhibits_its_per_run_and_trend_alerts() -> None:
    import re

    from jobpulse.sidecar.generate import render_rules

    config = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text(encoding="utf-8"))
    (rule,) = [
        r
        for r in config["inhibit_rules"]
        if r["source_matchers"] == ['alertname="JobPulseJobDown"']
    ]
    assert rule["equal"] == ["cluster", "namespace", "job_name"]
    (target,) = rule["target_matchers"]
    pattern = target.removeprefix('alertname=~"').removesuffix('"')
    names = {
        r["alert"] for g in yaml.safe_load(render_rules())["groups"] for r in g["rules"]
    }  # every per-job rule but JobDown itself is inhibited
    inhibited = {n for n in names if re.fullmatch(pattern, n)}
    assert inhibited == {
        "JobPulseRunMissed",
        "JobPulseRunFailed",
        "JobPulseRunTimedOut",
        "JobPulseRunStuck",
        "JobPulseFailureRatioHigh",
        "JobPulseNoRecentSuccess",
    }


def test_every_alertmanager_webhook_reaches_a_compose_service() -> None:
    config = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text(encoding="utf-8"))
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            host, port = hook["url"].removeprefix("http://").split("/")[0].split(":")
            assert host in services, f"{receiver['name']}: no service {host}"
            assert port in services[host]["expose"], hook["url"]
            assert str(port) in services[host]["command"]
    assert "alert-receiver" in services["alertmanager"]["depends_on"]
    receiver = services["alert-receiver"]
    assert receiver["volumes"] == ["./deploy/alert-receiver.py:/app/alert-receiver.py:ro"]


def test_the_example_receiver_logs_each_alert_it_is_sent(tmp_path: Path) -> None:
    import json
    import sys
    import urllib.request

    from jobpulse.sidecar.testing import free_port

    port = free_port()
    command = [sys.executable, "-u", str(DEPLOY / "alert-receiver.py"), "--host", "127.0.0.1"]
    proc = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"alert-receiver listening on 127.0.0.1:{port}\n"
        notification = {
            "receiver": "default",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "JobPulseJobDown", "job_name": "backup"},
                    "annotations": {"summary": "The job backup is down."},
                    "startsAt": "2025-01-01T00:00:00Z",
                }
            ],
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/alerts", data=json.dumps(notification).encode()
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        logged = json.loads(proc.stdout.readline())
        assert logged["alertname"] == "JobPulseJobDown"
        assert (logged["path"], logged["status"], logged["job_name"]) == (
            "/alerts",
            "firing",
            "backup",
        )
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_docker_compose_file_is_valid(docker_compose: str) -> None:
    result = _tool(docker_compose, "-f", "docker-compose.yml", "config", "-q", cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_wires_the_stack() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {
        "sidecar",
        "prometheus",
        "alertmanager",
        "grafana",
        "otel-collector",
        "example-jobs",
        "alert-receiver",
    }
    assert services["example-jobs"]["command"] == ["python", "examples/run_jobs.py"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), volume


def test_otel_collector_pipelines_use_defined_components() -> None:
    config = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text(encoding="utf-8"))
    pipelines = config["service"]["pipelines"]
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline.get(kind, [])) <= set(config[kind]), kind
    assert pipelines["traces"]["exporters"] == ["otlphttp/jobpulse", "debug"]
    assert config["exporters"]["otlphttp/jobpulse"]["endpoint"] == "http://sidecar:8484"
    assert pipelines["metrics"]["exporters"] == ["prometheus"]


def test_grafana_datasource_is_prometheus() -> None:
    path = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    (source,) = yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


def test_dockerfile_installs_and_serves_the_sidecar() -> None:
    lines = (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines()
    # The base is an argument (tests/e2e/test_image.py builds on a local Debian image where
    # no registry is reachable); its default is the official slim Python image.
    assert "ARG BASE=python:3.11-slim" in lines
    assert next(x for x in lines if x.startswith("FROM")) == "FROM ${BASE}"
    assert any('pip install ".[sidecar,postgres]"' in line for line in lines)
    assert lines[-1] == 'CMD ["jobpulse", "serve", "--host", "0.0.0.0"]'
