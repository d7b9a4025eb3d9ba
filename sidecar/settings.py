"""The sidecar's settings: one frozen, typed object.

Precedence: command-line flag, then ``JOBPULSE_*`` environment variable, then the ``sidecar:``
section of the configuration file, then the default. The environment is read when settings
are built (at start-up), never at import. A bad value fails start-up naming its source.
The field metadata (``env``, ``help``) generates the configuration reference in docs/.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jobpulse.instrumentation.errors import ConfigError, InvalidDuration
from jobpulse.instrumentation.spec import parse_duration

__all__ = ["Settings", "build_settings", "setting_docs"]


def _f(default: Any, env: str | None, help: str, kind: str = "str") -> Any:
    meta = {"env": env, "help": help, "kind": kind}
    if isinstance(default, tuple | list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = _f("127.0.0.1", "JOBPULSE_HOST", "Address to listen on.")
    port: int = _f(8484, "JOBPULSE_PORT", "Port to listen on.", "int")
    config: str | None = _f(None, "JOBPULSE_CONFIG", "Path of jobpulse.yaml.")
    store: str = _f(
        "sqlite:///jobpulse.db", "JOBPULSE_STORE_URL", "Store URL (SQLite or PostgreSQL)."
    )
    insecure: bool = _f(
        False, "JOBPULSE_INSECURE", "Allow a non-loopback address without tokens.", "bool"
    )
    ingest_tokens: tuple[str, ...] = _f(
        (),
        "JOBPULSE_INGEST_TOKENS",
        "Tokens that may send events (literal or sha256:<hex>).",
        "list",
    )
    read_tokens: tuple[str, ...] = _f(
        (),
        "JOBPULSE_READ_TOKENS",
        "Tokens that may read the API, /metrics, rules, dashboards and the status page.",
        "list",
    )
    admin_tokens: tuple[str, ...] = _f(
        (),
        "JOBPULSE_ADMIN_TOKENS",
        "Tokens that may do everything, including reload, pause and PUT/DELETE.",
        "list",
    )
    ping_key: str | None = _f(
        None, "JOBPULSE_PING_KEY", "Key in ping URLs (/ping/<key>/<job>) when auth is on."
    )
    max_body_bytes: int = _f(
        1_048_576, "JOBPULSE_MAX_BODY_BYTES", "Largest request body accepted.", "int"
    )
    max_batch_events: int = _f(
        1000, "JOBPULSE_MAX_BATCH_EVENTS", "Most events in one request.", "int"
    )
    error_message_bytes: int = _f(
        4096, "JOBPULSE_ERROR_MESSAGE_BYTES", "Error messages are truncated to this size.", "int"
    )
    log_bytes: int = _f(
        10240,
        "JOBPULSE_LOG_BYTES",
        "Run logs (ping bodies, log events) are truncated to this size.",
        "int",
    )
    metadata_bytes: int = _f(8192, "JOBPULSE_METADATA_BYTES", "Largest metadata object.", "int")
    job_cap: int = _f(
        10000,
        "JOBPULSE_JOB_CAP",
        "Most jobs; auto-registration past it is rejected (job_cap).",
        "int",
    )
    rate_limit: float = _f(
        0.0, "JOBPULSE_RATE_LIMIT", "Events per second per job (0: off).", "float"
    )
    max_clock_skew: float = _f(
        300.0,
        "JOBPULSE_MAX_CLOCK_SKEW",
        "Client clock offset beyond which event times are corrected.",
        "duration",
    )
    catchup_delay: float = _f(
        60.0,
        "JOBPULSE_CATCHUP_DELAY",
        "Wait after start-up before judging slots that passed while down.",
        "duration",
    )
    catchup_cap: int = _f(
        1000,
        "JOBPULSE_CATCHUP_CAP",
        "Slots judged one by one per job on catch-up; the rest become one gap record.",
        "int",
    )
    abandon_after: float = _f(
        86400.0,
        "JOBPULSE_ABANDON_AFTER",
        "A run with no max_runtime that sent no start or progress for this long is closed as "
        "timeout, reason abandoned (0: never).",
        "duration",
    )
    run_retention: float = _f(
        30 * 86400.0, "JOBPULSE_RUN_RETENTION", "Raw runs older than this are pruned.", "duration"
    )
    job_ttl: float = _f(
        30 * 86400.0,
        "JOBPULSE_JOB_TTL",
        "Auto-registered jobs silent this long are removed.",
        "duration",
    )
    otlp_timer_spans: bool = _f(
        False,
        "JOBPULSE_OTLP_TIMER_SPANS",
        "Also turn OTLP spans with faas.trigger=timer but no jobpulse.job.name into runs, named by the span name.",
        "bool",
    )
    apply_process: bool = _f(
        True,
        "JOBPULSE_APPLY_PROCESS",
        "SQLite: apply the inbox and evaluate in a second process beside the server, so "
        "ingest and the applier each have a core (PostgreSQL: ignored; replicas share the "
        "work). Off: one process does both.",
        "bool",
    )
    runbook_url: str = _f(
        "https://github.com/jobpulse/jobpulse/blob/main/docs/runbooks.md",
        "JOBPULSE_RUNBOOK_URL",
        "Base URL of the runbooks that alerts link to.",
    )

    @property
    def auth_enabled(self) -> bool:
        return bool(self.ingest_tokens or self.read_tokens or self.admin_tokens)


def setting_docs() -> list[dict[str, Any]]:
    """Every setting with its environment variable, default and help (for the docs)."""
    out = []
    for f in dataclasses.fields(Settings):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        else:
            factory: Any = f.default_factory
            default = factory()
        out.append({"name": f.name, "default": default, **f.metadata})
    return out


def _convert(name: str, kind: str, value: Any, source: str) -> Any:
    try:
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            number = int(value)
            if number < 0:
                raise ValueError
            return number
        if kind == "float":
            number_f = float(value)
            if number_f < 0:
                raise ValueError
            return number_f
        if kind == "duration":
            if value in (0, "0", 0.0):
                return 0.0  # "off" for delays and tolerances
            return parse_duration(value, what=name)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError
        if kind == "list":
            items = (
                [str(v) for v in value]
                if isinstance(value, list | tuple)
                else [v.strip() for v in str(value).split(",")]
            )
            if any(not item.strip() for item in items):
                raise ConfigError(
                    f"{source}: {value!r} holds an empty token; every token must be non-empty "
                    "text (an empty one would let an empty credential in)"
                )
            return tuple(items)
        if value is not None and not isinstance(value, str | int):
            raise ValueError
        if name == "ping_key" and value is not None and not str(value).strip():
            raise ConfigError(
                f"{source}: the ping key must be non-empty text (an empty one would let any "
                "ping through); leave it unset when auth is off"
            )
        return None if value is None else str(value)
    except ConfigError:
        raise
    except (ValueError, TypeError, InvalidDuration):
        accepted = {
            "int": "a whole number >= 0",
            "float": "a number >= 0",
            "duration": "seconds or text like 90s, 15m, 1h30m",
            "bool": "true/false, 1/0, yes/no",
            "list": "a comma-separated list",
            "str": "text",
        }[kind]
        raise ConfigError(f"{source}: {value!r} is not valid; expected {accepted}") from None


def build_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    file_section: Mapping[str, Any] | None = None,
) -> Settings:
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = env or {}
    file_section = dict(file_section or {})
    tokens = file_section.pop("tokens", None)
    if tokens is not None:
        if not isinstance(tokens, Mapping) or set(tokens) - {"ingest", "read", "admin"}:
            raise ConfigError(
                "sidecar.tokens must be a mapping with keys ingest, read and admin, each a list"
            )
        for scope, scope_tokens in tokens.items():
            file_section[f"{scope}_tokens"] = scope_tokens
    from_tokens = {f"{scope}_tokens": f"sidecar.tokens.{scope}" for scope in tokens or ()}
    names = {f.name: f for f in dataclasses.fields(Settings)}
    for key in file_section:
        if key not in names:
            raise ConfigError(
                f"sidecar.{key} is not a setting; settings are {', '.join(sorted(names))} and tokens"
            )
    values: dict[str, Any] = {}
    for name, f in names.items():
        kind = f.metadata["kind"]
        env_name = f.metadata["env"]
        if name in flags and flags[name] is not False:
            values[name] = _convert(name, kind, flags[name], f"--{name.replace('_', '-')}")
        elif env_name and env.get(env_name, "") != "":
            values[name] = _convert(name, kind, env[env_name], env_name)
        elif name in file_section:
            source = from_tokens.get(name, f"sidecar.{name}")
            values[name] = _convert(name, kind, file_section[name], source)
    if values.get("port") is not None and not 0 <= values["port"] <= 65535:
        raise ConfigError(f"port {values['port']} is out of range 0-65535")
    for scope in ("ingest_tokens", "read_tokens", "admin_tokens"):
        for token in values.get(scope, ()):
            digest = token[7:]
            if token.startswith("sha256:") and (
                len(digest) != 64 or not all(c in "0123456789abcdefABCDEF" for c in digest)
            ):
                raise ConfigError(f"{scope}: a hashed token is sha256: followed by 64 hex digits")
    return Settings(**values)
