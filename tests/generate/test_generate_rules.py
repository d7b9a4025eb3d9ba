"""The alert rules: promtool accepts them, their unit tests pass, every rule is covered."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from jobpulse.instrumentation.errors import ConfigError
from jobpulse.sidecar.generate import RuleSettings, render_rules
from jobpulse.sidecar.generate.promql import Selector
from jobpulse.sidecar.generate.rules import Severity, severity_label

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "alerts"


def _tool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _rules(text: str) -> list[dict[str, object]]:
    document = yaml.safe_load(text)
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_checks_the_committed_rules(promtool: str) -> None:
    result = _tool(promtool, "check", "rules", *sorted(ALERTS.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("profile", ["default", "test"])
@pytest.mark.parametrize("selector", ["", 'job="jobpulse", env=~"prod|staging"'])
def test_promtool_checks_every_profile(
    promtool: str, tmp_path: Path, profile: str, selector: str
) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(render_rules(profile, selector), encoding="utf-8")
    result = _tool(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass(promtool: str) -> None:
    tests = sorted((ALERTS / "tests").glob("*.yml"))
    assert tests
    result = _tool(promtool, "test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    """The severity override case really checks the label: flip it and promtool fails."""
    original = (ALERTS / "tests" / "jobs.yml").read_text(encoding="utf-8")
    flipped = original.replace(
        "{severity: critical, job_name: report", "{severity: warning, job_name: report"
    )
    assert flipped != original
    (tmp_path / "jobpulse.rules.yml").write_text(render_rules(), encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "jobs.yml").write_text(flipped, encoding="utf-8")
    result = _tool(promtool, "test", "rules", tmp_path / "tests" / "jobs.yml")
    assert result.returncode != 0
    assert 'severity="critical"' in result.stdout + result.stderr


def test_every_rule_has_a_firing_and_a_silent_case() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for path in (ALERTS / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case["alert_rule_test"]:
                (fired if check["exp_alerts"] else silent).add(check["alertname"])
                for alert in check["exp_alerts"]:
                    assert set(alert["exp_annotations"]) == {
                        "summary",
                        "description",
                        "runbook_url",
                        "dashboard_url",
                    }
                    assert alert["exp_labels"]["severity"] in {"critical", "warning", "info"}
    names = {str(rule["alert"]) for rule in _rules(render_rules())}
    assert names == fired, f"rules without a firing case: {names - fired}"
    assert names == silent, f"rules without a silent case: {names - silent}"


PER_JOB = {
    "JobPulseJobDown",
    "JobPulseRunMissed",
    "JobPulseRunFailed",
    "JobPulseRunTimedOut",
    "JobPulseRunSlow",
    "JobPulseRunStuck",
    "JobPulseFailureRatioHigh",
    "JobPulseNoRecentSuccess",
}


def test_rules_follow_the_mixin_conventions() -> None:
    runbooks = (REPO / "docs" / "runbooks.md").read_text(encoding="utf-8")
    anchors = {h.lower() for h in re.findall(r"^## (\S+)$", runbooks, flags=re.MULTILINE)}
    for rule in _rules(render_rules()):
        name = str(rule["alert"])
        assert name.startswith("JobPulse")
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        url = f"https://github.com/jobpulse/jobpulse/blob/main/docs/runbooks.md#{name.lower()}"
        if name in PER_JOB:  # the job's own runbook label wins
            own = "{{ if $labels.runbook }}{{ $labels.runbook }}{{ else }}" + url + "{{ end }}"
            assert annotations["runbook_url"] == own
        else:
            assert annotations["runbook_url"] == url
        assert name.lower() in anchors, f"docs/runbooks.md has no section {name}"
        assert str(annotations["dashboard_url"]).startswith("http://localhost:3000/d/jobpulse-")
        assert rule["for"] not in ("", "0s"), f"{name} pages on a single evaluation"
        if name in PER_JOB:  # an unlabelled job does not page: only its own label says critical
            assert str(rule["labels"]["severity"]).endswith("{{ else }}warning{{ end }}")  # type: ignore[index]


def test_job_down_waits_as_long_as_the_per_run_alerts_it_inhibits() -> None:
    """They reach Alertmanager in one evaluation, so one notification carries the incident."""
    for profile in ("default", "test"):
        waits = {r["alert"]: r["for"] for r in _rules(render_rules(profile))}
        assert waits["JobPulseJobDown"] == waits["JobPulseRunFailed"] == waits["JobPulseRunMissed"]


def test_group_by_scrape_job_and_urls_are_settings(tmp_path: Path, promtool: str) -> None:
    from jobpulse.instrumentation.cli import main

    out = tmp_path / "rules.yml"
    argv = ["generate", "alerts", "--group-by", "cluster, namespace", "--scrape-job", "jp-sidecar"]
    env = {
        "JOBPULSE_RUNBOOK_URL": "https://wiki.example/runbooks",
        "JOBPULSE_DASHBOARD_URL": "https://grafana.example",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        assert main([*argv, "--dashboard-url", "https://grafana.flag.example", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "https://wiki.example/runbooks#jobpulsejobdown" in text  # from the environment
    assert "https://grafana.flag.example/d/jobpulse-job-detail?" in text  # the flag wins
    assert "&var-cluster={{ $labels.cluster }}" in text
    assert 'up{job="jp-sidecar"}' in text
    assert 'job="jobpulse"' not in text
    for rule in _rules(text):
        expr = str(rule["expr"])
        for clause in re.findall(r"\b(?:by|on) \(([^)]*)\)", expr):
            if "job_name" in clause or clause.startswith("job"):
                assert clause.startswith("cluster, namespace, "), (rule["alert"], clause)
    result = _tool(promtool, "check", "rules", out)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("labels", ["job_name", "team", "__name__", "clu ster"])
def test_bad_group_by_labels_are_refused(labels: str, capsys: pytest.CaptureFixture[str]) -> None:
    from jobpulse.instrumentation.cli import main

    assert main(["generate", "alerts", "--group-by", labels]) == 2
    assert repr(labels) in capsys.readouterr().err


def test_test_profile_is_faster_than_default() -> None:
    def seconds(text: str) -> int:
        units = {"s": 1, "m": 60, "h": 3600}
        return int(text[:-1]) * units[text[-1]]

    default = {r["alert"]: seconds(str(r["for"])) for r in _rules(render_rules("default"))}
    test = {r["alert"]: seconds(str(r["for"])) for r in _rules(render_rules("test"))}
    assert default.keys() == test.keys()
    assert all(test[name] <= 15 < default[name] for name in default)


def test_settings_change_links_labels_and_threshold() -> None:
    settings = RuleSettings(
        runbook_url="https://runbooks.example/jobpulse",
        grafana_url="https://grafana.example/",
        job_labels=("team",),
        success_ratio_threshold=0.75,
    )
    text = render_rules(settings=settings)
    assert "https://runbooks.example/jobpulse#jobpulsejobdown" in text
    assert "https://grafana.example/d/jobpulse-job-detail?" in text
    assert "group_left (team)\n" in text
    assert "< 0.75\n" in text
    # Without a joined severity label the rule's own severity is a plain value.
    severities = {str(r["labels"]["severity"]) for r in _rules(text)}  # type: ignore[index]
    assert severities == {"critical", "warning"}
    assert "$labels.runbook" not in text  # no runbook label joined: the link is plain


def test_severity_label_template_names_every_severity() -> None:
    label = severity_label(Severity.WARNING)
    assert label.endswith("{{ else }}warning{{ end }}")
    for severity in Severity:
        assert f'"{severity}"' in label


@pytest.mark.parametrize(
    "selector", ["job", 'job="a" or up', 'job="a"}', "job='a'", '0job="a"', 'job="a\nb"']
)
def test_bad_selectors_are_refused(selector: str) -> None:
    with pytest.raises(ConfigError, match="selector"):
        render_rules(selector=selector)


def test_selector_reaches_every_series() -> None:
    sel = Selector('env="prod",')
    assert sel("jobpulse_jobs", state="down") == 'jobpulse_jobs{env="prod", state="down"}'
    assert sel.sidecar_up() == 'up{job="jobpulse", env="prod"}'
    assert Selector('job=~"jp.*"').sidecar_up() == 'up{job=~"jp.*"}'
    assert Selector()("jobpulse_leader") == "jobpulse_leader"


@pytest.mark.parametrize("label", ["job_name", "__name__", "bad-label"])
def test_unjoinable_job_labels_are_refused(label: str) -> None:
    with pytest.raises(ConfigError, match=label):
        RuleSettings(job_labels=("team", label))


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ConfigError, match="profile 'fast'"):
        render_rules("fast")
