"""Sidecar verbs of the ``jobpulse`` command: serve, check-config, migrate, and
``generate alertmanager`` (which reads the configuration file's maintenance windows).

A start that cannot succeed (a bad setting, a store that cannot be opened, a port that is
taken) prints one line on stderr, exits with EX_CONFIG (78) and leaves nothing behind: the port
is bound before the store is opened, and a SQLite file created by a failed start is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from jobpulse.instrumentation.errors import ConfigError

from .config import FileConfig, load_config, unknown_upstreams
from .settings import Settings, build_settings

if TYPE_CHECKING:
    from .store.database import Store

__all__ = ["check_config", "generate_alertmanager", "migrate", "serve"]

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


def _listen(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address ``host`` resolves to, as asyncio's create_server
    binds them; OSError when one cannot be bound (the port is taken)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    bound: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in bound:
                continue
            bound.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _remove_if_created(store: Store, existed: bool) -> Callable[[], None]:
    """What undoes the SQLite file a failed start created (nothing if it existed before)."""

    def undo() -> None:
        from .store.database import LOCK_SUFFIXES, SERVING_SUFFIX

        store.dispose()
        path = store.sqlite_path
        if path is None or existed:
            return
        for suffix in ("", "-wal", "-shm", "-journal", SERVING_SUFFIX, *LOCK_SUFFIXES):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    return undo


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
    try:
        sockets = _listen(settings.host, settings.port)
    except OSError as exc:
        print(
            f"jobpulse serve: cannot listen on {settings.host}:{settings.port}: "
            f"{exc.strerror or exc} (set --port or JOBPULSE_PORT)",
            file=sys.stderr,
        )
        return EX_CONFIG
    from .http.app import create_app
    from .http.keys import SIDECAR
    from .service import tune_gc

    tune_gc()

    try:
        try:
            app = create_app(settings, file_config=file_cfg)
        except ConfigError as exc:
            print(f"jobpulse serve: {exc}", file=sys.stderr)
            return EX_CONFIG
        store = app[SIDECAR].store
        undo = _remove_if_created(
            store, store.sqlite_path is not None and store.sqlite_path.exists()
        )
        try:
            store.check()
            asyncio.run(_serve(app, settings, sockets))
        except ConfigError as exc:  # the store could not be opened or migrated
            undo()
            print(f"jobpulse serve: {exc}", file=sys.stderr)
            return EX_CONFIG
    finally:
        for sock in sockets:
            sock.close()
    return 0


async def _serve(app: web.Application, settings: Settings, sockets: list[socket.socket]) -> None:
    from .http.keys import SIDECAR

    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()
    except BaseException:
        await runner.cleanup()
        raise
    for sock in sockets:
        await web.SockSite(runner, sock).start()
    # What startup loaded (the configuration, the job registry, caches) lives as long as the
    # process: frozen out of the collector's generations, it is no longer walked by every
    # full collection (each one a pause of every request in flight).
    gc.collect()
    gc.freeze()
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
        sidecar.store.display_url,
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
    for warning in unknown_upstreams(cfg):
        print(f"jobpulse check-config: warning: {warning}", file=sys.stderr)
    windows = len(cfg.maintenance)
    held = f", {windows} maintenance window{'s' if windows != 1 else ''}" if windows else ""
    print(f"{args.file}: OK ({len(cfg.jobs)} job{'s' if len(cfg.jobs) != 1 else ''}{held})")
    return 0


def generate_alertmanager(args: argparse.Namespace) -> int:
    """``jobpulse generate alertmanager --config FILE [-o PATH]``: the file's maintenance
    windows as Alertmanager time intervals and a muting route (exit 2 when one cannot be
    expressed, naming it)."""
    from .generate.alertmanager import BaseConfigError, alertmanager_yaml

    path = getattr(args, "config", None) or os.environ.get("JOBPULSE_CONFIG")
    if not path:
        print(
            "jobpulse generate alertmanager: give --config jobpulse.yaml (or JOBPULSE_CONFIG)",
            file=sys.stderr,
        )
        return 2
    base_path = getattr(args, "base", None)
    try:
        windows = [spec.as_dict() for spec in load_config(path).maintenance]
        base = None if base_path is None else _alertmanager_base(base_path)
        text = alertmanager_yaml(windows, base=base, base_name=base_path or "")
    except BaseConfigError as exc:
        print(f"jobpulse generate alertmanager: --base {base_path}: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"jobpulse generate alertmanager: {exc}", file=sys.stderr)
        return 2
    if not windows:
        print(f"jobpulse generate alertmanager: {path} has no maintenance windows", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


def _alertmanager_base(path: str) -> dict[str, Any]:
    """The Alertmanager configuration at ``path``, as a mapping (ConfigError naming the file)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"--base {path}: cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--base {path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--base {path}: expected an Alertmanager configuration (a mapping)")
    return data


def migrate(args: argparse.Namespace) -> int:
    from .store.database import Store
    from .store.migrate import current_revision, head_revision

    try:
        settings, _ = _settings(args)
        store = Store(settings.store)
    except ConfigError as exc:
        print(f"jobpulse migrate: {exc}", file=sys.stderr)
        return EX_CONFIG
    undo = _remove_if_created(store, store.sqlite_path is not None and store.sqlite_path.exists())
    try:
        store.check()
        before = current_revision(store)
        store.migrate()
    except ConfigError as exc:
        undo()
        print(f"jobpulse migrate: {exc}", file=sys.stderr)
        return EX_CONFIG
    print(f"store at revision {head_revision()} (was {before or 'empty'})")
    store.dispose()
    return 0
