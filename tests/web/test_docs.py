"""docs/configuration.md is generated and complete: every setting, env var, job field and
client variable appears, every job field has a description, the committed file is current."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from jobpulse.instrumentation.spec import JOB_FIELDS
from jobpulse.sidecar.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"
CLIENT_VARIABLES = (
    "JOBPULSE_URL",
    "JOBPULSE_TOKEN",
    "JOBPULSE_SPOOL_DIR",
    "JOBPULSE_QUEUE_SIZE",
    "JOBPULSE_TIMEOUT",
    "JOBPULSE_DISABLED",
)


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_config_reference", DOCS / "gen_config_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_job_field_has_a_description(generator):
    missing = [f for f in JOB_FIELDS if f not in generator.JOB_FIELD_DOCS]
    assert missing == [], f"describe these job fields in docs/gen_config_reference.py: {missing}"
    assert set(generator.JOB_FIELD_DOCS) == set(JOB_FIELDS), "a description of a field that is gone"
    assert all(meaning and default for meaning, default in generator.JOB_FIELD_DOCS.values())


def test_every_maintenance_window_field_has_a_description(generator):
    from jobpulse.sidecar.maintenance_config import WINDOW_FIELDS

    assert set(generator.WINDOW_FIELD_DOCS) == set(WINDOW_FIELDS)
    assert all(meaning and default for meaning, default in generator.WINDOW_FIELD_DOCS.values())
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert "## Maintenance windows" in text
    for field in WINDOW_FIELDS:
        assert f"| `{field}` |" in text, field


def test_configuration_reference_is_complete():
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for f in dataclasses.fields(Settings):
        assert f"| `{f.name}` |" in text, f.name
        assert f"`{f.metadata['env']}`" in text, f.metadata["env"]
    for field in JOB_FIELDS:
        assert f"| `{field}` |" in text, field
    for name in CLIENT_VARIABLES:
        assert f"| `{name}` |" in text, name


def test_committed_reference_equals_the_generators_output(generator):
    committed = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert committed == generator.render(), "run: python docs/gen_config_reference.py"
    assert generator.main(["--check"]) == 0


def test_index_links_every_doc():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([\w.-]+\.md)\)", index))
    expected = {
        "concepts.md",
        "configuration.md",
        "api.md",
        "integrations.md",
        "migrating-from-healthchecks.md",
        "replicas.md",
        "runbooks.md",
        "benchmarks.md",
    }
    assert expected <= linked
    for name in linked - {"concepts.md", "runbooks.md", "benchmarks.md"}:
        assert (DOCS / name).exists(), f"docs/index.md links to a missing {name}"
