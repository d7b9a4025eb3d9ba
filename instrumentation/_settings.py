"""The heartbeat client's settings: explicit argument, then ``JOBPULSE_*`` variable, then default.

The environment is read when a client is created (first use), never at import time. A bad
value raises :class:`~jobpulse.instrumentation.errors.ConfigError` naming the variable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = ["DEFAULT_URL", "ClientSettings"]

DEFAULT_URL: Final = "http://127.0.0.1:8484"
DEFAULT_QUEUE_SIZE: Final = 10_000
DEFAULT_TIMEOUT: Final = 5.0
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Where and how the client delivers heartbeats."""

    url: str
    token: str | None
    spool_dir: Path
    queue_size: int
    timeout: float
    disabled: bool

    @classmethod
    def resolve(
        cls,
        *,
        url: str | None = None,
        token: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        queue_size: int | None = None,
        timeout: float | None = None,
        disabled: bool | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ClientSettings:
        """Settings from the arguments given, then the environment, then the defaults."""
        env = os.environ if environ is None else environ
        raw_url = url if url is not None else env.get("JOBPULSE_URL") or DEFAULT_URL
        what = "url" if url is not None else "JOBPULSE_URL"
        if token is None:
            token = env.get("JOBPULSE_TOKEN") or None
        if spool_dir is None:
            spool_dir = env.get("JOBPULSE_SPOOL_DIR") or _default_spool_dir()
        if queue_size is None:
            queue_size = _env_int(env, "JOBPULSE_QUEUE_SIZE", DEFAULT_QUEUE_SIZE)
        elif queue_size < 1:
            raise ConfigError(f"queue_size {queue_size!r} must be an integer >= 1")
        if timeout is None:
            timeout = _env_float(env, "JOBPULSE_TIMEOUT", DEFAULT_TIMEOUT)
        elif not (math.isfinite(timeout) and timeout > 0):
            raise ConfigError(f"timeout {timeout!r} must be a positive number of seconds")
        if disabled is None:
            disabled = _env_bool(env, "JOBPULSE_DISABLED")
        return cls(
            url=_check_url(raw_url, what),
            token=token,
            spool_dir=Path(spool_dir),
            queue_size=queue_size,
            timeout=timeout,
            disabled=disabled,
        )


def _default_spool_dir() -> str:
    import platformdirs

    return os.path.join(platformdirs.user_cache_dir("jobpulse"), "spool")


def _check_url(value: str, what: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{what} {value!r} is not a sidecar URL: use http(s)://host[:port][/prefix], "
            f"for example {DEFAULT_URL}"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"{what} {value!r} has an invalid port: {exc}") from None
    return value.strip().rstrip("/")


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{name}={text!r} must be an integer >= 1 (default {default})")
    return value


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(
            f"{name}={text!r} must be a positive number of seconds (default {default})"
        )
    return value


def _env_bool(env: Mapping[str, str], name: str) -> bool:
    text = env.get(name, "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name}={text!r} must be 1 or 0 (also true/false, yes/no, on/off)")
