"""The signature check documented in docs/api.md ("Webhook notifications"), run as written by a
webhook receiver that a real sidecar delivers to: it accepts what the sidecar signs, and
refuses a changed body, another secret, an old timestamp and a malformed header."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from jobpulse.sidecar.notify import SIGNATURE_HEADER, sign
from tests.sidecar.harness import Harness

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- webhook-verify -->\n```python\n(.*?)\n```", re.DOTALL)
SECRET = "documented-secret"


def documented_verify() -> Callable[..., bool]:
    (code,) = BLOCK.findall((REPO / "docs" / "api.md").read_text(encoding="utf-8"))
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/api.md#webhook-verify", "exec"), namespace)
    verify: Callable[..., bool] = namespace["verify"]
    return verify


async def test_a_receiver_verifies_a_delivery_with_the_documented_code(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    verify = documented_verify()
    received: list[tuple[bool, str, bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        header = request.headers[SIGNATURE_HEADER]
        ok = verify(SECRET, header, body)
        received.append((ok, header, body))
        return web.Response(status=204 if ok else 401)

    app = web.Application()
    app.router.add_post("/hook", receive)
    server = await aiohttp_server(app)
    config = f"""
jobs:
  - name: signed
    every: 1m
notify:
  webhooks:
    - name: ops
      url: {server.make_url("/hook")}
      secret: {SECRET}
"""
    now = time.time()
    h = Harness(f"sqlite:///{tmp_path}/s.db", config, start=now)  # signed with the real time
    try:
        h.move(now + 95)  # the first slot (+60 s) is missed after its 30 s grace
        await h.sidecar.notifier.run_once()
    finally:
        await h.sidecar.notifier.close()
        h.close()
    ((ok, header, body),) = received
    assert ok, header
    assert json.loads(body)["job"] == "signed"

    # what the documented check refuses
    assert not verify(SECRET, header, body.replace(b"signed", b"signeD"))
    assert not verify("another-secret", header, body)
    old = sign(SECRET, body, int(time.time()) - 3600)
    assert not verify(SECRET, old, body)
    assert verify(SECRET, old, body, tolerance=7200)
    for malformed in ("", "v1=abc", "t=soon,v1=abc", f"t={int(time.time())}"):
        assert not verify(SECRET, malformed, body)
