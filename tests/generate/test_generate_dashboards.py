"""The dashboards decode back through grafana-foundation-sdk and hold together."""

from __future__ import annotations

import json
from collections.abc import Iterator

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from jobpulse.sidecar.generate import render_dashboards

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def panels(board: dict[str, object]) -> Iterator[dict[str, object]]:
    for panel in board["panels"]:  # type: ignore[attr-defined]
        yield panel
        yield from panel.get("panels", [])


def test_dashboards_round_trip_through_the_sdk() -> None:
    for name, text in render_dashboards().items():
        decoded = model.Dashboard.from_json(json.loads(text))
        again = json.dumps(decoded, cls=JSONEncoder, sort_keys=True, indent=2) + "\n"
        assert again == text, name


def test_uids_are_unique_and_named(dashboards: dict[str, dict[str, object]]) -> None:
    uids = [board["uid"] for board in dashboards.values()]
    assert len(set(uids)) == len(uids)
    assert all(uid == f"jobpulse-{name}" for name, uid in zip(dashboards, uids, strict=True))
    assert set(dashboards) == {"fleet-overview", "job-detail", "sidecar-health"}


def test_panels_have_unique_ids_and_queries(dashboards: dict[str, dict[str, object]]) -> None:
    for name, board in dashboards.items():
        ids = [panel["id"] for panel in panels(board)]
        assert len(set(ids)) == len(ids), name
        assert all(isinstance(i, int) and i > 0 for i in ids), name
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            targets = panel["targets"]
            assert targets, f"{name}: panel {panel['title']!r} has no query"
            assert panel["datasource"] == DATASOURCE
            ref_ids = [t["refId"] for t in targets]
            assert all(ref_ids)
            assert len(set(ref_ids)) == len(ref_ids)
            for target in targets:
                assert target["datasource"] == DATASOURCE, f"{name}: {panel['title']}"
                assert target["expr"].strip()


def test_datasource_is_a_variable_not_an_input(dashboards: dict[str, dict[str, object]]) -> None:
    for name, board in dashboards.items():
        text = json.dumps(board)
        assert "${DS_" not in text, name
        assert "__inputs" not in board, name
        variables = {v["name"]: v for v in board["templating"]["list"]}  # type: ignore[index]
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        assert "jobpulse" in board["tags"]  # type: ignore[operator]


def test_job_detail_is_scoped_to_one_job(dashboards: dict[str, dict[str, object]]) -> None:
    board = dashboards["job-detail"]
    variables = {v["name"]: v for v in board["templating"]["list"]}  # type: ignore[index]
    assert variables["job_name"]["query"] == (
        'label_values(jobpulse_job_info{cluster=~"$cluster", team=~"$team"}, job_name)'
    )
    for panel in panels(board):
        for target in panel.get("targets", []):
            assert 'job_name="$job_name"' in target["expr"], panel["title"]
            assert 'cluster=~"$cluster"' in target["expr"], panel["title"]
    titles = {panel["title"] for panel in panels(board)}
    assert {"State timeline", "Run duration", "Runs by outcome", "Last success"} <= titles


def test_selector_reaches_every_dashboard_query() -> None:
    for name, text in render_dashboards('env="prod"').items():
        for panel in panels(json.loads(text)):
            for target in panel.get("targets", []):
                assert target["expr"].count("{") == target["expr"].count('env="prod"'), name


def test_every_board_filters_by_cluster_and_the_job_boards_by_team(
    dashboards: dict[str, dict[str, object]],
) -> None:
    for name, board in dashboards.items():
        variables = {v["name"]: v for v in board["templating"]["list"]}  # type: ignore[index]
        assert variables["cluster"]["query"] == "label_values(jobpulse_build_info, cluster)"
        # "All" also matches series without the label: a fleet without clusters or teams
        assert (variables["cluster"]["includeAll"], variables["cluster"]["allValue"]) == (
            True,
            ".*",
        )
        for panel in panels(board):
            for target in panel.get("targets", []):
                assert target["expr"].count("{") == target["expr"].count('cluster=~"$cluster"'), (
                    f"{name}: {panel['title']}"
                )
        if name != "sidecar-health":
            assert variables["team"]["allValue"] == ".*"
            assert any('team=~"$team"' in str(v.get("query")) for v in variables.values())
    fleet = dashboards["fleet-overview"]
    jobs = {v["name"]: v for v in fleet["templating"]["list"]}["jobs"]  # type: ignore[index]
    assert jobs["hide"] == 2  # the selected teams' jobs, expanded as a list, never ".*"
    assert "allValue" not in jobs
    for panel in panels(fleet):
        for target in panel.get("targets", []):
            assert 'job_name=~"$jobs"' in target["expr"], panel["title"]


def test_job_durations_show_exemplars_linked_to_a_traces_source(
    dashboards: dict[str, dict[str, object]],
) -> None:
    board = dashboards["job-detail"]
    variables = {v["name"]: v for v in board["templating"]["list"]}  # type: ignore[index]
    assert (variables["traces"]["type"], variables["traces"]["query"]) == ("datasource", "tempo")
    (duration,) = [p for p in panels(board) if p["title"] == "Run duration"]
    shown = [t for t in duration["targets"] if t.get("exemplar")]  # type: ignore[attr-defined]
    assert [t["expr"].split("(", 1)[0] for t in shown] == ["histogram_quantile"]
    assert "jobpulse_job_run_duration_seconds_bucket" in shown[0]["expr"]
