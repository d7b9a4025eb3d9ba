"""The example Kubernetes CronJob validates against Kubernetes' own schema (strict: no unknown
fields) and wraps its command with `jobpulse exec` under the job name the sidecar expects."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "cronjob.yaml"


def test_the_example_cronjob_is_a_valid_kubernetes_cronjob() -> None:
    doc = yaml.safe_load(MANIFEST.read_text())
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    container = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[:4] == ["jobpulse", "exec", "--job", doc["metadata"]["name"]]
    assert command[4] == "--"
    env = {e["name"] for e in container["env"]}
    assert {"JOBPULSE_URL", "JOBPULSE_TOKEN"} <= env
    # a CronJob that never overlaps itself, as `concurrency: forbid` in jobpulse.yaml expects
    assert doc["spec"]["concurrencyPolicy"] == "Forbid"


def test_a_broken_manifest_is_refused() -> None:
    doc = yaml.safe_load(MANIFEST.read_text())
    doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = 3
    try:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError:
        return
    raise AssertionError("a restartPolicy of 3 was accepted")
