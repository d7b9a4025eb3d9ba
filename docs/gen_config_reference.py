"""Generate docs/configuration.md from the settings model and the job fields, so it cannot drift.

    python docs/gen_config_reference.py           # rewrite docs/configuration.md
    python docs/gen_config_reference.py --check   # exit 1 when the committed file differs

Every sidecar setting comes from ``jobpulse.sidecar.settings.setting_docs()`` (env var, default,
help); every job field from ``jobpulse.instrumentation.spec.JOB_FIELDS`` and every maintenance
window field from ``jobpulse.sidecar.maintenance_config.WINDOW_FIELDS`` with the description
below (a test fails when a field has none); every key of the ``notify:`` section from
``jobpulse.sidecar.notifyconfig.FIELDS``, the table its parser accepts keys from.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from jobpulse.instrumentation.spec import JOB_FIELDS, RESERVED_LABELS, format_duration
from jobpulse.sidecar.maintenance_config import MAX_WINDOW_DURATION, WINDOW_FIELDS
from jobpulse.sidecar.notifyconfig import FIELDS as NOTIFY_FIELDS
from jobpulse.sidecar.settings import setting_docs

TARGET: Final = Path(__file__).with_name("configuration.md")

# field -> (meaning, default)
JOB_FIELD_DOCS: Final[dict[str, tuple[str, str]]] = {
    "schedule": (
        "Cron expression, 5 fields or 6 with seconds first (`L`, `LW`, `#`, month and day "
        "names), evaluated in `timezone` with cronsim's rules for daylight-saving changes.",
        "none: the job is unscheduled unless `every` is set",
    ),
    "every": (
        "Fixed interval between slots (`15m`, `1h`), instead of `schedule`; not both.",
        "none",
    ),
    "after": (
        "Jobs this one runs after: a name or a list (`[extract, audit]`). Without a schedule "
        "of its own the job is due when all of them succeeded for a tick and carries that "
        "tick; when one failed or missed it, the slot is `skipped` (reason `upstream`). With "
        "`schedule`/`every` it is due at its own slots, skipped instead of missed when an "
        "upstream did not succeed. Set in this file or with `PUT /api/v1/jobs/{job}`, not in "
        "a client's `job_config`; a cycle is refused. See concepts, Dependencies.",
        "none",
    ),
    "timezone": ("IANA zone the schedule is evaluated in (`Europe/Riga`).", "`UTC`"),
    "grace": (
        "How late a start may be before its slot counts as missed. An explicit value is "
        "honoured as given, down to 1s.",
        "10% of the period, clamped to [30s, 1h] and never above half the period; for a job "
        "due by `after` with no schedule, the grace its upstream had for the tick (1h after "
        "an unscheduled upstream)",
    ),
    "early_tolerance": (
        "How early a start may be and still fill the next slot (clock skew).",
        "min(60s, 10% of the period); 60s before the upstream's success for a job due by `after`",
    ),
    "max_runtime": (
        "A run still running after this is closed as `timeout`. Separate from `grace`.",
        "90% of the period for scheduled jobs; none for unscheduled ones",
    ),
    "heartbeat_timeout": (
        "A running run whose last progress heartbeat is older than this is stale, and the job "
        "goes down with reason `stale`.",
        "none",
    ),
    "max_silence": (
        "For unscheduled jobs: no event for this long takes the job down (reason `silent`).",
        "none",
    ),
    "failure_threshold": (
        "Consecutive bad outcomes (failed or timed-out runs, missed slots) before the job is down.",
        "1",
    ),
    "recovery_threshold": ("Consecutive successes before a down job is up again.", "1"),
    "concurrency": (
        "`allow` or `forbid`. A start while another run is in flight is always counted as an "
        "overlap; with `forbid` it also takes the job down (reason `overlap`).",
        "`allow`",
    ),
    "labels": (
        "Free key/values (team, owner, severity, runbook), exported on `jobpulse_job_info` only "
        "and joined into alerts. Keys are Prometheus label names, not `__*`, not "
        + ", ".join(f"`{name}`" for name in sorted(RESERVED_LABELS))
        + ".",
        "none",
    ),
    "paused": (
        "Pauses evaluation: no misses, state `paused`; runs are still recorded.",
        "`false`",
    ),
    "buckets": (
        "Upper bounds of the `jobpulse_job_run_duration_seconds` histogram, strictly "
        "increasing durations.",
        "job-sized: 0.5s, 1s, 2.5s, 5s, 10s, 30s, 1m, 2m, 5m, 10m, 20m, 30m, 1h, 2h, 4h, 8h, 1d",
    ),
    "anomaly": (
        "Slow-run detection: a successful or failed run that took longer than `factor` x the "
        "job's p95 duration over the `window` before it (1h to 30d, whole hours, read from the "
        "hourly rollups) is flagged `slow` and counted in `jobpulse_job_slow_runs_total`, once "
        "the window holds at least `min_runs` runs. Keys left out keep their defaults; "
        "`false` (or `off`) disables it.",
        "on: `{factor: 3, window: 7d, min_runs: 20}`",
    ),
}

# maintenance window field -> (meaning, default)
WINDOW_FIELD_DOCS: Final[dict[str, tuple[str, str]]] = {
    "name": (
        "Unique name of the window (`[a-z0-9][a-z0-9._-]{0,127}`); errors, the API, the job "
        "page and the Alertmanager interval (`jobpulse-maintenance-<name>`) use it.",
        "required",
    ),
    "jobs": (
        "Job names the window holds. A job is held when it is named here or matches `match`; "
        "at least one of the two is required.",
        "none",
    ),
    "match": (
        "Job labels (`{team: data}`): the window holds every job whose labels have all these "
        "values.",
        "none",
    ),
    "start": (
        "A one-off window: ISO 8601 date and time (`2026-12-05T02:00:00+02:00`); without an "
        "offset it is read in `timezone`. Give `start` or `schedule`, not both.",
        "none",
    ),
    "schedule": (
        "A recurring window: a cron expression (as a job's `schedule`, cronsim's rules); the "
        "window opens at each fire time in `timezone`.",
        "none",
    ),
    "duration": (
        "How long the window stays open, counted on the local clock of `timezone` (as "
        "Alertmanager counts): `0 2 * * *` + `2h` is 02:00-04:00 local every night, DST nights "
        f"included. At most {format_duration(MAX_WINDOW_DURATION)}.",
        "required",
    ),
    "timezone": ("IANA zone of `start` (without an offset) and `schedule`.", "`UTC`"),
}

# name -> (default, meaning)
CLIENT_ENV: Final[dict[str, tuple[str, str]]] = {
    "JOBPULSE_URL": (
        "`http://127.0.0.1:8484`",
        "Sidecar the library, `jobpulse exec`, `jobpulse flush` and `jobpulse status` talk to.",
    ),
    "JOBPULSE_TOKEN": (
        "none",
        "Bearer token: an ingest token for reporting jobs, a read token for `jobpulse status`.",
    ),
    "JOBPULSE_SPOOL_DIR": (
        "the user cache dir (`~/.cache/jobpulse/spool` on Linux)",
        "Where undeliverable events are spooled until the next process (or `jobpulse flush`) "
        "delivers them.",
    ),
    "JOBPULSE_QUEUE_SIZE": (
        "`10000`",
        "Events held in memory before new ones are dropped (and counted); never blocks the job.",
    ),
    "JOBPULSE_TIMEOUT": ("`5`", "Seconds one delivery request may take."),
    "JOBPULSE_DISABLED": (
        "`0`",
        "`1` turns reporting off (the job runs as usual; nothing is sent or spooled).",
    ),
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _default(setting: dict[str, Any]) -> str:
    value = setting["default"]
    if value is None or value == ():
        return "none"
    if setting["kind"] == "duration":
        return f"`{format_duration(float(value))}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def render() -> str:
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by docs/gen_config_reference.py from the settings model and the job "
        "fields. Do not edit by hand: run `python docs/gen_config_reference.py`. -->",
        "",
        "## Sidecar settings",
        "",
        "Precedence: command-line flag (`jobpulse serve --host --port --config --store "
        "--insecure`), then the `JOBPULSE_*` environment variable, then the `sidecar:` section "
        "of `jobpulse.yaml`, then the default. A bad value stops start-up with the name of its "
        "source. Durations are seconds or numbers with units `s m h d` (`90s`, `1h30m`); "
        "lists in environment variables are comma-separated. In the file, the three token "
        "lists are written as `tokens: {ingest: [...], read: [...], admin: [...]}`; a token is "
        "literal or `sha256:<64 hex digits>`.",
        "",
        "| Setting | Environment variable | Default | Meaning |",
        "|---|---|---|---|",
    ]
    for setting in setting_docs():
        env = f"`{setting['env']}`" if setting["env"] else "—"
        out.append(
            f"| `{setting['name']}` | {env} | {_cell(_default(setting))} | "
            f"{_cell(setting['help'])} |"
        )
    out += [
        "",
        "## Job fields",
        "",
        "A job is configured in the `jobs:` list of `jobpulse.yaml` (with its `name`), declared "
        "by the library (`job_config`), or set with `PUT /api/v1/jobs/{job}`. The file wins on "
        "conflict; the job page and the API say which source set each field.",
        "",
        "```yaml",
        "jobs:",
        "  - name: nightly-backup",
        '    schedule: "30 3 * * *"     # or  every: 15m',
        "    timezone: Europe/Riga",
        "    grace: 10m",
        "    max_runtime: 2h",
        "    labels: {team: data, severity: critical}",
        "```",
        "",
        "| Field | Meaning | Default |",
        "|---|---|---|",
    ]
    for field in JOB_FIELDS:
        meaning, default = JOB_FIELD_DOCS[field]
        out.append(f"| `{field}` | {_cell(meaning)} | {_cell(default)} |")
    out += [
        "",
        "## Notifications",
        "",
        "The optional `notify:` section of `jobpulse.yaml` makes the sidecar send job state "
        "flips itself: a job going `down` fires, leaving `down` resolves "
        "([concepts](concepts.md#notifications)). Off when the section is absent. Reloaded "
        "with the file (SIGHUP, `POST /api/v1/config/reload`); notifications still waiting for "
        "a receiver that a reload removes are dropped and counted.",
        "",
        "```yaml",
        "notify:",
        "  alertmanagers:",
        "    - name: alertmanager",
        "      url: http://alertmanager:9093",
        "      labels: {cluster: prod}        # as Prometheus' external_labels",
        "  webhooks:",
        "    - name: ops-hook",
        "      url: https://hooks.example.com/jobpulse",
        "      secret_file: webhook.secret",
        "  retry: {max_attempts: 100, max_age: 1d}",
        "```",
    ]
    titles = {
        "alertmanagers": "`notify.alertmanagers[]`: Alertmanager v2 API receivers",
        "webhooks": "`notify.webhooks[]`: webhook receivers (body and signature: "
        "[API](api.md#webhook-notifications))",
        "retry": "`notify.retry`: delivery attempts, for every receiver",
    }
    for section, keys in NOTIFY_FIELDS.items():
        out += ["", f"### {titles[section]}", "", "| Key | Meaning | Default |", "|---|---|---|"]
        for key, (meaning, default) in keys.items():
            out.append(f"| `{key}` | {_cell(meaning)} | {_cell(default)} |")
    out += [
        "",
        "## Maintenance windows",
        "",
        "The `maintenance:` list of `jobpulse.yaml` (windows can also be opened through "
        "`POST /api/v1/maintenance`). While a window holding a job is open, a slot whose "
        "`[slot, slot + grace]` it touches is recorded `skipped` (never missed), failures and "
        "timeouts are counted but take the job neither down nor toward `failure_threshold`, "
        "`stale` and `silent` wait for the window to close, `jobpulse_job_in_maintenance` is 1 "
        'and the generated alert rules stay silent (docs/concepts.md, "Maintenance windows"). '
        "`jobpulse generate alertmanager --config jobpulse.yaml --base alertmanager.yml` "
        "writes your Alertmanager configuration with matching `time_intervals` and muting "
        "routes merged in, each alert still reaching the receiver your own routes give it "
        "(without `--base`: the intervals and routes alone, to merge by hand).",
        "",
        "```yaml",
        "maintenance:",
        "  - name: nightly-db",
        "    match: {team: data}           # and/or  jobs: [nightly-backup]",
        '    schedule: "0 2 * * *"          # or  start: "2026-12-05T02:00:00+02:00"',
        "    duration: 2h",
        "    timezone: Europe/Riga",
        "```",
        "",
        "| Field | Meaning | Default |",
        "|---|---|---|",
    ]
    for field in WINDOW_FIELDS:
        meaning, default = WINDOW_FIELD_DOCS[field]
        out.append(f"| `{field}` | {_cell(meaning)} | {_cell(default)} |")
    out += [
        "",
        "## Client environment variables",
        "",
        "Read by the job-side library and the `jobpulse` job-side commands when a client is "
        "created (never at import). An explicit argument wins over the variable.",
        "",
        "| Variable | Default | Meaning |",
        "|---|---|---|",
    ]
    for name, (default, meaning) in CLIENT_ENV.items():
        out.append(f"| `{name}` | {_cell(default)} | {_cell(meaning)} |")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is out of date: run python docs/gen_config_reference.py")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
