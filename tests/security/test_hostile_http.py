"""HTTP input from a hostile (or broken) client: empty credentials, formulas in CSV exports,
pings with other methods, non-ASCII and huge numbers in query strings, LIKE wildcards, tokens
in URLs. Each once answered 500, let someone in or leaked a token; each test pins the fix."""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from jobpulse.instrumentation.errors import ConfigError
from jobpulse.sidecar.commands import check_config
from jobpulse.sidecar.domain.clock import ManualClock
from jobpulse.sidecar.http.app import create_app
from jobpulse.sidecar.http.params import csv_cell
from jobpulse.sidecar.settings import Settings, build_settings
from tests.security.conftest import event, ingest
from tests.security.test_auth import READ, make_client
from tests.sidecar.harness import T0

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


# -- 3. empty tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "section", "named"),
    [
        ({}, {"tokens": {"read": [""]}}, "sidecar.tokens.read"),
        ({}, {"tokens": {"admin": ["ok", "  "]}}, "sidecar.tokens.admin"),
        ({"JOBPULSE_INGEST_TOKENS": "a,,b"}, {}, "JOBPULSE_INGEST_TOKENS"),
        ({"JOBPULSE_READ_TOKENS": " , "}, {}, "JOBPULSE_READ_TOKENS"),
        ({}, {"ping_key": ""}, "sidecar.ping_key"),
    ],
)
def test_empty_tokens_are_refused_naming_the_setting(
    env: dict[str, str], section: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=named) as caught:
        build_settings({}, env, section)
    assert "empty" in str(caught.value) or "non-empty" in str(caught.value)


def test_check_config_refuses_an_empty_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "jobpulse.yaml"
    path.write_text('sidecar:\n  tokens:\n    read: [""]\n')
    assert check_config(argparse.Namespace(file=str(path))) == 78
    assert "sidecar.tokens.read" in capsys.readouterr().err


@pytest.mark.parametrize(
    "headers",
    [
        {"Cookie": "jobpulse_token="},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer    "},
        {"Authorization": "Basic " + base64.b64encode(b"me:").decode()},
        {},
    ],
)
async def test_an_empty_credential_is_no_credential(
    aiohttp_client: ClientFactory, tmp_path: Path, headers: dict[str, str]
) -> None:
    # Settings built by hand: an empty token that slipped past validation must still let
    # nothing in.
    settings = Settings(store=f"sqlite:///{tmp_path}/s.db", read_tokens=("", READ))
    client = await aiohttp_client(create_app(settings, clock=ManualClock(T0), run_evaluator=False))
    assert (await client.get("/api/v1/jobs", headers=headers)).status == 401
    assert (await client.get("/?token=", headers=headers, allow_redirects=False)).status == 401


# -- 5. formulas in CSV exports ---------------------------------------------------------------


def test_csv_cells_that_start_a_formula_are_quoted_and_numbers_are_kept() -> None:
    for text in ("=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("plain text") == "plain text"
    assert csv_cell(-1) == -1
    assert csv_cell(-2.5) == -2.5
    assert csv_cell(None) is None


async def test_csv_export_neutralises_formulas(sidecar_client: TestClient[Any, Any]) -> None:
    await ingest(
        sidecar_client,
        [
            event(
                1,
                run_id='=HYPERLINK("http://x")',
                error_type="+cmd",
                error_message='=1+2;"@x"',
                host="-2+3",
                duration=2.5,
                exit_code=3,
            )
        ],
    )
    resp = await sidecar_client.get("/api/v1/jobs/nightly/runs", params={"format": "csv"})
    assert resp.status == 200
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    [row] = rows
    assert row["run_id"] == '\'=HYPERLINK("http://x")'
    assert row["error_type"] == "'+cmd"
    assert row["error_message"] == '\'=1+2;"@x"'
    assert row["host"] == "'-2+3"
    assert row["duration"] == "2.5"
    assert row["exit_code"] == "3"
    assert row["started_at"].startswith("2026-")


# -- 8. pings with other methods --------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"])
async def test_pings_allow_only_get_head_and_post(
    sidecar_client: TestClient[Any, Any], method: str
) -> None:
    resp = await sidecar_client.request(method, "/ping/nightly?create=1")
    assert resp.status == 405
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
    for allowed in ("GET", "HEAD", "POST"):
        resp = await sidecar_client.request(allowed, f"/ping/nightly?rid={allowed}&wait=applied")
        assert resp.status == 200
    runs = (await (await sidecar_client.get("/api/v1/jobs/nightly/runs")).json())["runs"]
    assert sorted(r["run_id"] for r in runs) == ["GET", "HEAD", "POST"]


# -- 9 and 10. numbers in query strings -------------------------------------------------------


def cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        ("/api/v1/jobs/nightly/runs", "limit", "²"),
        ("/api/v1/jobs/nightly/runs", "limit", "١٢"),
        ("/api/v1/jobs/nightly/runs", "limit", "１０"),
        ("/api/v1/jobs/nightly/runs", "limit", "9" * 5000),
        ("/api/v1/jobs/nightly/flips", "limit", "9" * 30),
        ("/api/v1/jobs/nightly/missed", "hours", "٣"),
        ("/api/v1/jobs/nightly/missed", "hours", "9" * 5000),
        ("/api/v1/jobs/nightly/runs", "since", "２０２６-11-23T10:00:00Z"),
        ("/api/v1/jobs/nightly/runs", "cursor", "WzE٣"),
        ("/api/v1/jobs/nightly/runs", "cursor", cursor([1e400, 1])),
        ("/api/v1/jobs/nightly/runs", "cursor", cursor([T0, 10**30])),
        ("/api/v1/jobs/nightly/runs", "cursor", cursor(["x", 1])),
        ("/api/v1/jobs/nightly/runs", "cursor", cursor([T0, True])),
        ("/api/v1/jobs/nightly/runs", "cursor", cursor({"a": 1, "b": 2})),
        ("/api/v1/jobs/nightly/runs", "cursor", base64.urlsafe_b64encode(b"[" * 3000).decode()),
    ],
)
async def test_bad_numbers_in_the_query_are_422_naming_the_parameter(
    sidecar_client: TestClient[Any, Any], path: str, name: str, value: str
) -> None:
    resp = await sidecar_client.get(path, params={name: value})
    assert resp.status == 422
    body = await resp.json()
    assert body["detail"].startswith(name)
    assert len(body["detail"]) < 300


@pytest.mark.parametrize("value", ["١٢", "²", "9" * 5000])
async def test_status_page_refresh_takes_ascii_digits_only(
    sidecar_client: TestClient[Any, Any], value: str
) -> None:
    resp = await sidecar_client.get("/", params={"refresh": value})
    assert resp.status == 422
    assert "refresh" in await resp.text()


async def test_a_cursor_of_this_api_still_pages(sidecar_client: TestClient[Any, Any]) -> None:
    await ingest(sidecar_client, [event(n) for n in range(3)])
    first = await (
        await sidecar_client.get("/api/v1/jobs/nightly/runs", params={"limit": "2"})
    ).json()
    assert first["next_cursor"]
    resp = await sidecar_client.get(
        "/api/v1/jobs/nightly/runs", params={"limit": "2", "cursor": first["next_cursor"]}
    )
    assert [r["run_id"] for r in (await resp.json())["runs"]] == ["r0"]


# -- 12. LIKE wildcards in q= -----------------------------------------------------------------


async def test_search_matches_percent_and_underscore_literally(
    sidecar_client: TestClient[Any, Any],
) -> None:
    messages = ["100% done", "a_b failed", "axb failed", "plain", "back\\slash"]
    await ingest(sidecar_client, [event(n, error_message=m) for n, m in enumerate(messages)])

    async def search(q: str) -> list[str]:
        resp = await sidecar_client.get("/api/v1/jobs/nightly/runs", params={"q": q})
        return sorted(r["error_message"] for r in (await resp.json())["runs"])

    assert await search("%") == ["100% done"]
    assert await search("a_b") == ["a_b failed"]
    assert await search("_") == ["a_b failed"]
    assert await search("\\") == ["back\\slash"]
    assert await search("failed") == ["a_b failed", "axb failed"]


# -- 13. ?token= ------------------------------------------------------------------------------


@pytest.fixture
async def read_client(aiohttp_client: ClientFactory, tmp_path: Path) -> TestClient[Any, Any]:
    return await make_client(aiohttp_client, tmp_path, tokens={"read": [READ]})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/jobs"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/jobs/nightly/runs?format=csv"),
        ("HEAD", "/"),
        ("POST", "/api/v1/jobs/nightly/pause"),
    ],
)
async def test_token_in_the_query_authenticates_nothing_but_a_page_get(
    read_client: TestClient[Any, Any], method: str, path: str
) -> None:
    sep = "&" if "?" in path else "?"
    resp = await read_client.request(method, f"{path}{sep}token={READ}", allow_redirects=False)
    assert resp.status == 401
    assert "jobpulse_token" not in resp.cookies


@pytest.mark.parametrize("page", ["/", "/jobs/nightly"])
async def test_token_on_a_page_sets_the_cookie_and_redirects_without_it(
    read_client: TestClient[Any, Any], page: str
) -> None:
    resp = await read_client.get(
        page, params={"token": READ, "refresh": "30"}, allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"] == f"{page}?refresh=30"
    assert resp.cookies["jobpulse_token"].value == READ
    assert resp.cookies["jobpulse_token"]["httponly"] is True
    followed = await read_client.get(resp.headers["Location"])  # the cookie jar sends it
    assert followed.status == 200
    assert READ not in str(followed.url)
