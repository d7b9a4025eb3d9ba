"""The documented integration-test recipe (docs/integrations.md, "Testing your jobs") works."""

from __future__ import annotations

import json
from pathlib import Path

from jobpulse.instrumentation import HeartbeatClient, monitor, set_client
from jobpulse.sidecar.testing import ServedSidecar


def run_import() -> int:
    return 42


def test_the_import_reports_to_jobpulse(tmp_path: Path) -> None:
    config = "jobs:\n  - name: import-invoices\n    schedule: '*/2 * * * *'\n"
    with ServedSidecar(tmp_path, config) as sidecar:
        client = HeartbeatClient(sidecar.url, spool_dir=tmp_path / "spool")
        previous = set_client(client)
        try:
            assert monitor("import-invoices")(run_import)() == 42
            assert client.flush(timeout=10)
        finally:
            set_client(previous)
            client.close()
        status, body = sidecar.get("/api/v1/jobs/import-invoices")
        assert status == 200
        job = json.loads(body)
        assert job["state"] == "up"
        assert sidecar.proc is not None
    assert sidecar.proc is None  # stopped on leaving the block
