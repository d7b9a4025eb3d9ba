"""Sidecar verbs of the ``jobpulse`` command: serve, check-config, migrate."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import socket
import sys

from aiohttp import web

from jobpulse.instrumentation.errors import ConfigError

from .config import FileConfig, load_config
from .settings import Settings, build_settings

__all__ = ["check_config", "migrate", "serve"]

EX_CONFIG = 78
log = logging.getLogger("jobpulse.sidecar")


def _settings(args: argparse.Namespace) -> tuple[Settings, FileConfig]:
    flags = {
        name: getattr(args, name, None) for name in ("host", "port", "config", "store", "insecure")
    }
    config_path = flags.get("config") or os.environ.get("JOBPULSE_CONFIG") or None
    file_cfg = load_config(config_path) if config_path else FileConfig()
    settings = build_settings(flags, os.environ, file_cfg.sidecar)
    return settings, file_cfg


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback
                for info in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration step
    try:
        settings, file_cfg = _settings(args)
    except ConfigError as exc:
        print(f"jobpulse serve: {exc}", file=sys.stderr)
        return EX_CONFIG
    if not _is_loopback(settings.host) and not settings.auth_enabled and not settings.insecure:
        print(
            f"jobpulse serve: refusing to listen on {settings.host} without tokens: anyone who "
            "can reach it could pause jobs and read job data. Configure tokens (sidecar.tokens "
            "or JOBPULSE_*_TOKENS) or pass --insecure.",
            file=sys.stderr,
        )
        return EX_CONFIG
    from .app import create_app

    try:
        app = create_app(settings, file_config=file_cfg)
    except ConfigError as exc:
        print(f"jobpulse serve: {exc}", file=sys.stderr)
        return EX_CONFIG
    asyncio.run(_serve(app, settings))
    return 0


async def _serve(app: web.Application, settings: Settings) -> None:
    from .keys import SIDECAR

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    sidecar = app[SIDECAR]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    base = f"http://{host}:{settings.port}"
    log.info(
        "jobpulse serving on %s: status page %s/, metrics %s/metrics, events %s/api/v1/events, "
        "pings %s/ping/<job>, store %s",
        base,
        base,
        base,
        base,
        base,
        sidecar.store.url.render_as_string(hide_password=True),
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def reload() -> None:
        async def run() -> None:
            try:
                report = await asyncio.to_thread(sidecar.reload)
                log.info("configuration reloaded: %s", report)
            except ConfigError as exc:
                log.error("configuration reload failed, keeping the previous one: %s", exc)

        tasks.add(task := loop.create_task(run()))
        task.add_done_callback(tasks.discard)

    tasks: set[asyncio.Task[None]] = set()
    loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    await runner.cleanup()


def check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
        build_settings({}, {}, cfg.sidecar)
    except ConfigError as exc:
        print(f"jobpulse check-config: {exc}", file=sys.stderr)
        return EX_CONFIG
    print(f"{args.file}: OK ({len(cfg.jobs)} job{'s' if len(cfg.jobs) != 1 else ''})")
    return 0


def migrate(args: argparse.Namespace) -> int:
    from .migrate import current_revision, head_revision
    from .store import Store

    try:
        settings, _ = _settings(args)
        store = Store(settings.store)
        before = current_revision(store)
        store.migrate()
    except ConfigError as exc:
        print(f"jobpulse migrate: {exc}", file=sys.stderr)
        return EX_CONFIG
    print(f"store at revision {head_revision()} (was {before or 'empty'})")
    store.dispose()
    return 0
