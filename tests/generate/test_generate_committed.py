"""The committed alerts/ and dashboards/ files are exactly what the generator renders."""

from __future__ import annotations

from pathlib import Path

from jobpulse.sidecar.generate import render_dashboards, render_rules

REPO = Path(__file__).resolve().parents[2]
REGENERATE = (
    "regenerate with `jobpulse generate alerts -o alerts/jobpulse.rules.yml` and "
    "`jobpulse generate dashboards -o dashboards`"
)


def test_committed_rules_are_regenerated() -> None:
    committed = (REPO / "alerts" / "jobpulse.rules.yml").read_text(encoding="utf-8")
    assert render_rules() == committed, REGENERATE


def test_committed_dashboards_are_regenerated() -> None:
    rendered = render_dashboards()
    folder = REPO / "dashboards"
    assert {p.stem for p in folder.glob("*.json")} == set(rendered), REGENERATE
    for name, text in rendered.items():
        assert (folder / f"{name}.json").read_text(encoding="utf-8") == text, REGENERATE


def test_rendering_is_deterministic() -> None:
    assert render_rules("test", 'job="x"') == render_rules("test", 'job="x"')
    assert render_dashboards('job="x"') == render_dashboards('job="x"')


def test_provisioning_files_point_at_the_mounted_dashboards() -> None:
    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    for provider_file in (
        REPO / "dashboards" / "provisioning.yml",
        REPO / "deploy" / "grafana" / "provisioning" / "dashboards" / "jobpulse.yml",
    ):
        provider = yaml.safe_load(provider_file.read_text(encoding="utf-8"))
        (entry,) = provider["providers"]
        assert entry["type"] == "file"
        assert mounts["./dashboards"] == entry["options"]["path"]
    assert Path(mounts["./deploy/grafana/provisioning/dashboards"]).name == "dashboards"
