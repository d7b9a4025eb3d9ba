"""The ``notify:`` section of jobpulse.yaml: what it accepts, and errors that name the receiver,
the field and what would be accepted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from jobpulse.instrumentation.errors import ConfigError
from jobpulse.sidecar.config import load_config, parse_config
from jobpulse.sidecar.notifyconfig import NotifyConfig, Receiver, Retry
from tests.sidecar.process import JOBPULSE


def test_absent_section_is_off() -> None:
    assert parse_config("jobs: []\n").notify == NotifyConfig()
    assert parse_config("notify:\n").notify.receivers == ()


def test_a_full_section_parses(tmp_path: Path) -> None:
    (tmp_path / "hook.secret").write_text("  from-a-file\n")
    path = tmp_path / "jobpulse.yaml"
    path.write_text(
        """
notify:
  alertmanagers:
    - name: am-1
      url: http://alertmanager:9093
      labels: {cluster: prod}
      headers: {Authorization: Bearer xyz}
      timeout: 5s
      resend_interval: 2m
  webhooks:
    - name: ops
      url: https://hooks.example.com/jobpulse
      secret_file: hook.secret
    - name: chat
      url: http://chat.internal/hook
  retry: {max_attempts: 5, max_age: 2h, initial_delay: 2s, max_delay: 1m}
"""
    )
    notify = load_config(path).notify
    assert notify.receivers == (
        Receiver(
            name="am-1",
            kind="alertmanager",
            url="http://alertmanager:9093",
            timeout=5.0,
            headers=(("Authorization", "Bearer xyz"),),
            labels=(("cluster", "prod"),),
            resend_interval=120.0,
        ),
        Receiver(
            name="ops",
            kind="webhook",
            url="https://hooks.example.com/jobpulse",
            secret="from-a-file",  # relative to the configuration file, stripped
        ),
        Receiver(name="chat", kind="webhook", url="http://chat.internal/hook"),
    )
    assert notify.retry == Retry(max_attempts=5, max_age=7200, initial_delay=2, max_delay=60)
    assert "from-a-file" not in repr(notify) and "xyz" not in repr(notify)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("notify: [1]", "notify must be a mapping with alertmanagers:, webhooks: and retry:"),
        ("notify: {slack: []}", "notify: unknown field 'slack'; accepted: alertmanagers, webhooks"),
        ("notify: {webhooks: {name: x}}", "notify.webhooks must be a list of receivers"),
        ("notify: {webhooks: [x]}", "notify.webhooks[0] must be a mapping with at least name"),
        (
            "notify: {webhooks: [{url: 'http://h'}]}",
            "notify.webhooks[0]: name None is not a receiver name; expected [a-z0-9]",
        ),
        (
            "notify: {webhooks: [{name: Ops, url: 'http://h'}]}",
            "notify.webhooks[0]: name 'Ops' is not a receiver name",
        ),
        ("notify: {webhooks: [{name: ops}]}", "notify.webhooks[0] (ops) has no url"),
        (
            "notify: {webhooks: [{name: ops, url: 'ftp://h/x'}]}",
            "notify.webhooks[0] (ops): url 'ftp://h/x' is not an http(s) URL",
        ),
        (
            "notify: {webhooks: [{name: ops, url: 'http://h', timeout: 10x}]}",
            "notify.webhooks[0] (ops): timeout '10x' is not a duration",
        ),
        (
            "notify: {webhooks: [{name: ops, url: 'http://h', timeout: 0}]}",
            "notify.webhooks[0] (ops): timeout 0 must be a positive, finite duration",
        ),
        (
            "notify: {webhooks: [{name: ops, url: 'http://h', labels: {a: b}}]}",
            "notify.webhooks[0] (ops): unknown field 'labels'; accepted: name, url, secret",
        ),
        (
            "notify: {webhooks: [{name: ops, url: 'http://h', secret: s, secret_file: f}]}",
            "notify.webhooks[0] (ops): give secret or secret_file, not both",
        ),
        (
            "notify: {webhooks: [{name: ops, url: 'http://h', secret: ''}]}",
            "notify.webhooks[0] (ops): secret must be non-empty text",
        ),
        (
            "notify: {webhooks: [{name: ops, url: 'http://h', secret_file: /nonexistent/s}]}",
            "notify.webhooks[0] (ops): cannot read secret_file '/nonexistent/s'",
        ),
        (
            "notify: {webhooks: [{name: ops, url: 'http://h', headers: {Idempotency-Key: x}}]}",
            "header(s) Idempotency-Key are set by jobpulse and cannot be configured",
        ),
        (
            "notify: {webhooks: [{name: ops, url: 'http://h', headers: {'a b': x}}]}",
            "notify.webhooks[0] (ops): headers name 'a b' is not valid",
        ),
        (
            "notify: {alertmanagers: [{name: am, url: 'http://h', labels: {job_name: x}}]}",
            "notify.alertmanagers[0] (am): label(s) job_name are set on every pushed alert",
        ),
        (
            "notify: {alertmanagers: [{name: am, url: 'http://h', labels: {a: [1]}}]}",
            "notify.alertmanagers[0] (am): labels 'a' has value [1]; values are strings",
        ),
        (
            "notify: {alertmanagers: [{name: am, url: 'http://h', resend_interval: 0.5}]}",
            "notify.alertmanagers[0] (am): resend_interval 0.5 is out of range; expected 1s",
        ),
        (
            "notify: {alertmanagers: [{name: x, url: 'http://h'}], "
            "webhooks: [{name: x, url: 'http://h'}]}",
            "notify.webhooks[0]: receiver name 'x' is used twice",
        ),
        (
            "notify: {retry: {max_attempts: 0}}",
            "notify.retry: max_attempts 0 is not valid; expected a whole number 1-10000",
        ),
        (
            "notify: {retry: {tries: 3}}",
            "notify.retry: unknown field 'tries'; accepted: max_attempts",
        ),
        (
            "notify: {retry: {initial_delay: 1m, max_delay: 10s}}",
            "notify.retry: max_delay (10s) is below initial_delay (60s)",
        ),
        (
            "notify: {retry: {max_age: forever}}",
            "notify.retry: max_age 'forever' is not a duration",
        ),
    ],
)
def test_bad_values_are_named(section: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(section + "\n", source="jobpulse.yaml")
    assert str(caught.value).startswith("jobpulse.yaml: ")
    assert message in str(caught.value)


def test_check_config_refuses_a_bad_notify_section(tmp_path: Path) -> None:
    path = tmp_path / "jobpulse.yaml"
    path.write_text("notify:\n  webhooks:\n    - {name: ops, url: 'gopher://x'}\n")
    done = subprocess.run(
        [JOBPULSE, "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 78
    assert "notify.webhooks[0] (ops): url 'gopher://x' is not an http(s) URL" in done.stderr


def test_a_timeout_below_its_minimum_is_out_of_range() -> None:
    with pytest.raises(ConfigError, match=r"timeout 0.05 is out of range; expected 0.1s to 366d"):
        parse_config("notify: {webhooks: [{name: ops, url: 'http://h', timeout: 0.05}]}\n")


def test_the_documented_defaults_are_the_defaults() -> None:
    from jobpulse.instrumentation.spec import format_duration
    from jobpulse.sidecar.notifyconfig import FIELDS

    retry = parse_config("notify: {retry: {}}\n").notify.retry
    assert retry == Retry()
    assert FIELDS["retry"]["max_attempts"][1] == f"`{retry.max_attempts}`"
    for key in ("max_age", "initial_delay", "max_delay"):
        assert FIELDS["retry"][key][1] == f"`{format_duration(getattr(retry, key))}`"
    (am,) = parse_config("notify: {alertmanagers: [{name: a, url: 'http://h'}]}\n").notify.receivers
    assert (
        FIELDS["alertmanagers"]["resend_interval"][1] == f"`{format_duration(am.resend_interval)}`"
    )
    assert FIELDS["alertmanagers"]["timeout"][1] == f"`{format_duration(am.timeout)}`"


def test_the_example_notify_section_parses_once_uncommented(tmp_path: Path) -> None:
    example = (Path(__file__).resolve().parents[2] / "examples" / "jobpulse.yaml").read_text()
    block = example[example.index("# notify:") :]
    text = "\n".join(line[2:] if line.startswith("# ") else line for line in block.splitlines())
    (tmp_path / "webhook.secret").write_text("s3cret\n")
    (tmp_path / "jobpulse.yaml").write_text(text)
    notify = load_config(tmp_path / "jobpulse.yaml").notify
    assert [(r.name, r.kind) for r in notify.receivers] == [
        ("alertmanager", "alertmanager"),
        ("ops-hook", "webhook"),
    ]
    assert notify.receivers[1].secret == "s3cret"
