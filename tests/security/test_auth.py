"""Authentication and scopes over HTTP, for every endpoint group (DESIGN.md "Security defaults").

ingest: events (and /v1/traces); read: /metrics, API reads, rules, dashboards, the status page,
the OpenAPI document; admin: everything read has, plus reload, pause/resume, PUT/DELETE.
/healthz and /readyz are open; pings authenticate with the ping key in their path.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from jobpulse.instrumentation.wire import format_ts
from jobpulse.sidecar.config import parse_config
from jobpulse.sidecar.domain.clock import ManualClock
from jobpulse.sidecar.http.app import create_app
from jobpulse.sidecar.http.keys import SIDECAR
from jobpulse.sidecar.settings import build_settings
from tests.sidecar.harness import T0

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
INGEST, READ, ADMIN, PING_KEY = "ingest-secret", "read-secret", "admin-secret", "pk-7f3a"
CONFIG = 'jobs:\n  - name: nightly\n    schedule: "*/5 * * * *"\n'
EVENT = {"type": "start", "job": "nightly", "run_id": "r1", "ts": format_ts(T0)}


def sha(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


async def make_client(
    aiohttp_client: ClientFactory,
    tmp_path: Any,
    *,
    env: dict[str, str] | None = None,
    tokens: dict[str, list[str]] | None = None,
) -> TestClient[Any, Any]:
    section: dict[str, Any] = {"ping_key": PING_KEY}
    if tokens is not None:
        section["tokens"] = tokens
    config = tmp_path / "jobpulse.yaml"
    config.write_text(CONFIG)
    settings = build_settings(
        {"store": f"sqlite:///{tmp_path}/s.db", "config": str(config)},
        {"JOBPULSE_CATCHUP_DELAY": "0", **(env or {})},
        section,
    )
    app = create_app(
        settings, clock=ManualClock(T0), file_config=parse_config(CONFIG), run_evaluator=False
    )
    return await aiohttp_client(app)


@pytest.fixture
async def client(aiohttp_client: ClientFactory, tmp_path: Any) -> TestClient[Any, Any]:
    # ingest literal, read hashed in the file, admin hashed in the environment
    return await make_client(
        aiohttp_client,
        tmp_path,
        tokens={"ingest": [INGEST], "read": [sha(READ)]},
        env={"JOBPULSE_ADMIN_TOKENS": f"{sha(ADMIN)},second-admin"},
    )


# (method, path, json body, scope)
ENDPOINTS: list[tuple[str, str, Any, str]] = [
    ("POST", "/api/v1/events", [EVENT], "ingest"),
    ("POST", "/v1/traces", {"resourceSpans": []}, "ingest"),
    ("GET", "/metrics", None, "read"),
    ("GET", "/api/v1/jobs", None, "read"),
    ("GET", "/api/v1/jobs/nightly", None, "read"),
    ("GET", "/api/v1/jobs/nightly/runs", None, "read"),
    ("GET", "/api/v1/jobs/nightly/missed", None, "read"),
    ("GET", "/api/v1/jobs/nightly/flips", None, "read"),
    ("GET", "/api/v1/jobs/nightly/stats", None, "read"),
    ("GET", "/api/v1/health", None, "read"),
    ("GET", "/api/v1/openapi.json", None, "read"),
    ("GET", "/alerts/rules.yml", None, "read"),
    ("GET", "/dashboards/no-such-board.json", None, "read"),
    ("GET", "/", None, "read"),
    ("GET", "/jobs/nightly", None, "read"),
    ("HEAD", "/api/v1/jobs", None, "read"),
    ("POST", "/api/v1/jobs/nightly/pause", None, "admin"),
    ("POST", "/api/v1/jobs/nightly/resume", None, "admin"),
    ("PUT", "/api/v1/jobs/declared", {"every": "1h"}, "admin"),
    ("DELETE", "/api/v1/jobs/nightly", None, "admin"),
    ("POST", "/api/v1/config/reload", None, "admin"),
]
GRANTS = {"ingest": {"ingest"}, "read": {"read"}, "admin": {"read", "admin"}}
TOKENS = {"ingest": INGEST, "read": READ, "admin": ADMIN}


async def call(client: TestClient[Any, Any], method: str, path: str, body: Any, **kw: Any) -> Any:
    return await client.request(method, path, json=body, **kw)


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
async def test_each_endpoint_needs_its_scope(
    client: TestClient[Any, Any], method: str, path: str, body: Any, scope: str
) -> None:
    resp = await call(client, method, path, body)
    assert resp.status == 401, "no token"
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    if method != "HEAD":
        assert (await resp.json())["error"] == "unauthorized"
    resp = await call(client, method, path, body, headers={"Authorization": "Bearer nope"})
    assert resp.status == 401, "unknown token"
    for kind, token in TOKENS.items():
        resp = await call(client, method, path, body, headers={"Authorization": f"Bearer {token}"})
        if scope in GRANTS[kind]:
            assert resp.status not in (401, 403), f"{kind} token on a {scope} endpoint"
            assert resp.status < 500
        else:
            assert resp.status == 403, f"{kind} token on a {scope} endpoint"
            if method != "HEAD":
                assert (await resp.json())["error"] == "forbidden"


async def test_second_admin_token_from_the_environment_works(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/api/v1/jobs/nightly/pause", headers={"Authorization": "Bearer second-admin"}
    )
    assert resp.status == 200
    assert (await resp.json())["state"] == "paused"


async def test_healthz_and_readyz_are_open(client: TestClient[Any, Any]) -> None:
    client.app[SIDECAR].tick_sync()
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_token_in_query_sets_an_httponly_samesite_cookie_that_then_works(
    client: TestClient[Any, Any],
) -> None:
    # a page signs in: redirected to itself without the token, the cookie set on the way
    resp = await client.get("/", params={"token": READ}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/"
    cookie = resp.cookies["jobpulse_token"]
    assert cookie.value == READ
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert not cookie["secure"]
    client.session.cookie_jar.clear()
    assert (await client.get("/api/v1/jobs")).status == 401
    resp = await client.get("/api/v1/jobs", headers={"Cookie": f"jobpulse_token={READ}"})
    assert resp.status == 200
    # the read cookie does not make its holder an admin
    resp = await client.post(
        "/api/v1/jobs/nightly/pause", headers={"Cookie": f"jobpulse_token={READ}"}
    )
    assert resp.status == 403


async def test_cookie_is_secure_behind_a_tls_proxy(client: TestClient[Any, Any]) -> None:
    resp = await client.get(
        "/", params={"token": READ}, headers={"X-Forwarded-Proto": "https"}, allow_redirects=False
    )
    assert resp.cookies["jobpulse_token"]["secure"] is True


async def test_a_wrong_query_token_sets_no_cookie(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/api/v1/jobs", params={"token": "wrong"})
    assert resp.status == 401
    assert "jobpulse_token" not in resp.cookies


@pytest.mark.parametrize(
    ("credentials", "status"),
    [(f"me:{READ}", 200), (f":{ADMIN}", 200), (f"{READ}:", 401), ("me:wrong", 401)],
)
async def test_http_basic_with_the_token_as_password(
    client: TestClient[Any, Any], credentials: str, status: int
) -> None:
    header = "Basic " + base64.b64encode(credentials.encode()).decode()
    resp = await client.get("/api/v1/jobs", headers={"Authorization": header})
    assert resp.status == status


async def test_malformed_basic_header_is_401(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/api/v1/jobs", headers={"Authorization": "Basic %%%"})
    assert resp.status == 401


async def test_pings_need_the_ping_key_in_the_path(client: TestClient[Any, Any]) -> None:
    assert (await client.get(f"/ping/{PING_KEY}/nightly/start?wait=applied")).status == 200
    assert (await client.get(f"/ping/{PING_KEY}/nightly?wait=applied")).status == 200
    assert (await client.get("/ping/nightly")).status == 403
    assert (await client.get("/ping/wrong-key/nightly")).status == 403
    assert (await client.get("/ping/")).status == 404
    # a token is no ping key
    resp = await client.get("/ping/nightly", headers={"Authorization": f"Bearer {ADMIN}"})
    assert resp.status == 403
    resp = await client.get(
        "/api/v1/jobs/nightly/runs", headers={"Authorization": f"Bearer {READ}"}
    )
    assert [r["outcome"] for r in (await resp.json())["runs"]] == ["success"]


async def test_rejected_ingest_is_counted_as_unauthorized(client: TestClient[Any, Any]) -> None:
    for headers in ({}, {"Authorization": f"Bearer {READ}"}):
        assert (await client.post("/api/v1/events", json=[EVENT], headers=headers)).status in (
            401,
            403,
        )
    text = await (await client.get("/metrics", headers={"Authorization": f"Bearer {READ}"})).text()
    samples = {
        s.labels.get("reason"): s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "jobpulse_events_rejected"
        for s in fam.samples
        if s.name.endswith("_total")
    }
    assert samples["unauthorized"] == 2


async def test_without_tokens_everything_is_open_and_pings_need_no_key(
    aiohttp_client: ClientFactory, tmp_path: Any
) -> None:
    client = await make_client(aiohttp_client, tmp_path)
    assert (await client.get("/api/v1/jobs")).status == 200
    assert (await client.get("/ping/nightly")).status == 200


def test_hashed_tokens_must_be_64_hex_digits() -> None:
    from jobpulse.instrumentation.errors import ConfigError

    with pytest.raises(ConfigError, match="64 hex digits"):
        build_settings({}, {"JOBPULSE_READ_TOKENS": "sha256:" + "z" * 64}, {})
    with pytest.raises(ConfigError, match="64 hex digits"):
        build_settings({}, {}, {"tokens": {"admin": ["sha256:abc"]}})
