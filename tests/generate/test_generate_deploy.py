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
        "equal": ["job_name"],
    } in config["inhibit_rules"]
    assert "job_name" in config["route"]["group_by"]


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
    assert lines[lines.index(next(x for x in lines if x.startswith("FROM")))] == (
        "FROM python:3.11-slim"
    )
    assert any('pip install ".[sidecar,postgres]"' in line for line in lines)
    assert lines[-1] == 'CMD ["jobpulse", "serve", "--host", "0.0.0.0"]'
