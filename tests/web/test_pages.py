"""The HTML pages through aiohttp's test client: states, filters, escaping, 404, CSV link."""

from __future__ import annotations

import re

from jobpulse.sidecar.http.keys import SIDECAR

from .scenario import EVIL, STATES, _run

ROW = re.compile(r'<tr data-job="([^"]+)" data-state="([^"]+)">(.*?)</tr>', re.S)


def rows(text: str) -> dict[str, tuple[str, str]]:
    return {name: (state, body) for name, state, body in ROW.findall(text)}


async def test_status_page_shows_every_state_with_reason(fleet_client):
    response = await fleet_client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    text = await response.text()
    found = rows(text)
    assert {name: state for name, (state, _) in found.items()} == {
        name: state for name, (state, _) in STATES.items()
    }
    assert 'class="badge s-down">down (missed)<' in found["report"][1]
    assert 'class="badge s-down">down (failed)<' in found["import"][1]
    assert 'class="badge s-late">late<' in found["sync"][1]
    assert 'class="badge s-paused">paused<' in found["cleanup"][1]
    assert 'class="badge s-new">new<' in found["adhoc"][1]
    # down jobs first, then late, new, up, paused
    assert list(found) == ["import", "report", "sync", "adhoc", "backup", "cleanup"]
    summary = re.search(r'<p class="summary" id="summary">(.*?)</p>', text, re.S)
    assert summary is not None
    plain = re.sub(r"<[^>]+>", "", summary.group(1))
    assert plain == "6 jobs: 2 down · 1 late · 1 new · 1 up · 1 paused"
    assert '<a href="/jobs/backup">backup</a>' in found["backup"][1]


async def test_status_page_columns(fleet_client):
    found = rows(await (await fleet_client.get("/")).text())
    backup = found["backup"][1]
    # last success 10:00:05 + 41 s, clock at 10:03; next slot 10:10
    assert ">2m ago</time>" in backup
    assert ">in 7m</time>" in backup
    assert "100.0%" in backup and "0.0%" in backup
    assert "<code>team=data</code>" in backup
    report = found["report"][1]
    assert ">never<" in report
    assert "100.0%" in report  # miss ratio: every due slot missed


async def test_filters_by_state_and_label(fleet_client):
    down = rows(await (await fleet_client.get("/?state=down")).text())
    assert set(down) == {"import", "report"}
    data = rows(await (await fleet_client.get("/?label=team=data")).text())
    assert set(data) == {"backup", "report"}
    both = await (
        await fleet_client.get("/", params=[("state", "down"), ("label", "team=data")])
    ).text()
    assert set(rows(both)) == {"report"}
    assert "showing 1" in both
    assert 'value="team=data"' in both  # the form keeps the filter
    none = await (await fleet_client.get("/?state=up&label=team=ops")).text()
    assert rows(none) == {}
    assert "No job matches." in none
    # the empty values the filter form sends mean "any"
    assert len(rows(await (await fleet_client.get("/?state=&label=")).text())) == 6


async def test_bad_filters_are_422_pages(fleet_client):
    for query in ("state=broken", "label=team", "refresh=1"):
        response = await fleet_client.get(f"/?{query}")
        assert response.status == 422, query
        assert response.content_type == "text/html"
        assert "Invalid filter" in await response.text()


async def test_auto_refresh_is_opt_in(fleet_client):
    plain = await (await fleet_client.get("/")).text()
    assert 'http-equiv="refresh"' not in plain
    assert 'href="/?refresh=30"' in plain
    on = await (await fleet_client.get("/?state=down&refresh=30")).text()
    assert '<meta http-equiv="refresh" content="30">' in on
    assert 'href="/?state=down">stop auto-refresh' in on


async def test_user_text_is_escaped(fleet_client):
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    status = await fleet_client.get("/")
    text = await status.text()
    assert f"<code>note={escaped}</code>" in text
    assert "<script" not in text
    assert "script-src" not in status.headers["Content-Security-Policy"]
    assert "default-src 'none'" in status.headers["Content-Security-Policy"]
    job = await (await fleet_client.get("/jobs/import")).text()
    assert EVIL not in job and "<script" not in job
    assert f"<pre>disk full {escaped}</pre>" in job
    assert f"note={escaped}" in job


async def test_job_page(fleet_client):
    response = await fleet_client.get("/jobs/import")
    assert response.status == 200
    text = await response.text()
    assert '<a id="csv" href="/api/v1/jobs/import/runs?format=csv">' in text
    csv = await fleet_client.get("/api/v1/jobs/import/runs?format=csv")
    assert csv.status == 200 and "RuntimeError" in await csv.text()
    assert "<strong>RuntimeError</strong>" in text
    assert "abababababababababababababababab" in text  # trace id
    assert '<tr data-field="schedule"><td>schedule</td><td>0 * * * *</td><td>file</td></tr>' in text
    assert '<tr data-field="grace"><td>grace</td><td>6m (10% of the period, 30s to 1h)</td>' in text
    assert '<tr data-field="concurrency"><td>concurrency</td><td>allow</td><td>default</td>' in text
    runs = re.findall(r'<tr data-run="[0-9a-f]+"><td><span class="badge o-(\w+)"', text)
    assert runs == ["failure", "success"]
    missed = re.search(r'<table id="missed">.*?</table>', text, re.S)
    assert missed is not None and "2026-11-23 08:00:00Z" in missed.group(0)
    flips = re.search(r'<table id="flips">.*?</table>', text, re.S)
    assert flips is not None
    assert re.findall(
        r"badge s-(\w+)\">\w+</span> → <span class=\"badge s-(\w+)", flips.group(0)
    ) == [
        ("up", "down"),
        ("down", "up"),
        ("new", "down"),
    ]
    assert "<svg" in text and text.count("<rect") == 2


async def test_job_page_of_a_job_without_runs(fleet_client):
    text = await (await fleet_client.get("/jobs/adhoc")).text()
    assert "No run recorded yet." in text
    assert "No finished run with a duration yet." in text
    assert "<td>grace</td><td>none (unscheduled)</td>" in text


async def test_unknown_job_is_a_404_page(fleet_client):
    for path in ("/jobs/nope", "/jobs/Not%20A%20Name"):
        response = await fleet_client.get(path)
        assert response.status == 404, path
        assert response.content_type == "text/html"
        text = await response.text()
        assert "Unknown job" in text
    assert "&#x27;not a name&#x27;" not in text and "Not A Name" in text


async def test_pages_need_a_read_token_when_auth_is_on(aiohttp_client, tmp_path):
    from .scenario import build_app, play

    app = build_app(tmp_path, read_tokens=("reader",))
    client = await aiohttp_client(app)
    play(app)
    assert (await client.get("/")).status == 401
    login = await client.get("/?token=reader")
    assert login.status == 200
    assert "token" not in login.url.query  # redirected to the page without it
    assert "jobpulse_token" in login.history[0].cookies  # set on that redirect
    assert (await client.get("/jobs/backup")).status == 200  # the cookie carries the token


async def test_job_page_shows_durations_for_people(fleet_client):
    sidecar = fleet_client.server.app[SIDECAR]
    now = sidecar.clock.now()
    sidecar.ingest_sync(_run("adhoc", now - 200, 125.4) + _run("adhoc", now - 10, 0.00376))
    text = await (await fleet_client.get("/jobs/adhoc")).text()
    assert "<dt>Last duration</dt><dd>3.8 ms</dd>" in text
    durations = re.findall(r'<tr data-run="[0-9a-f]+">.*?<td class="num">([^<]*)</td>', text)
    assert durations == ["3.8 ms", "2m 05s"]
    assert "0.00376" not in text
