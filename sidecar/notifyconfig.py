"""The ``notify:`` section of ``jobpulse.yaml``: where the sidecar itself sends job state flips
(Alertmanager's v2 API, generic signed webhooks) and how long it keeps trying.

Off when the section is absent. Errors name the receiver, the field and what is accepted, e.g.
``notify.webhooks[0] (ops): timeout '10x' is not a duration: ...``. :data:`FIELDS` describes
every key; the parser accepts exactly those and docs/configuration.md is generated from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from jobpulse.instrumentation.errors import ConfigError, InvalidDuration, unknown_fields
from jobpulse.instrumentation.spec import parse_duration

__all__ = [
    "FIELDS",
    "RESERVED_HEADERS",
    "NotifyConfig",
    "Receiver",
    "Retry",
    "parse_notify",
]

KINDS: Final = {"alertmanagers": "alertmanager", "webhooks": "webhook"}
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)
# Set by the sender itself: a configured header must not replace them.
RESERVED_HEADERS: Final = frozenset(
    {"content-type", "content-length", "host", "idempotency-key", "x-jobpulse-signature"}
)
# Always set on a pushed alert; a static label cannot replace them.
RESERVED_ALERT_LABELS: Final = frozenset({"alertname", "job_name"})
MAX_DURATION: Final = 366 * 86400.0

# section -> key -> (meaning, default), in the order the reference lists them.
FIELDS: Final[dict[str, dict[str, tuple[str, str]]]] = {
    "alertmanagers": {
        "name": (
            "Receiver name (`[a-z0-9][a-z0-9._-]{0,63}`, unique in `notify:`): the `receiver` "
            "label of `jobpulse_notifications_total` and the status page.",
            "required",
        ),
        "url": (
            "Alertmanager's base URL; alerts are posted to `<url>/api/v2/alerts`. List each "
            "member of an Alertmanager cluster as its own entry, as Prometheus does.",
            "required",
        ),
        "labels": (
            "Static labels added to every pushed alert where the alert has no label of that "
            "name, as Prometheus adds its `external_labels`: give the same ones (and the "
            "`--group-by` labels of the generated rules) so a pushed alert and the rule's are "
            "one alert in Alertmanager.",
            "none",
        ),
        "headers": ("Extra HTTP headers (`Authorization: Bearer ...`).", "none"),
        "timeout": ("How long one request may take.", "`10s`"),
        "resend_interval": (
            "While a job is down its alert is sent again this often, with `endsAt` 4 intervals "
            "ahead, so Alertmanager keeps it firing; recovery sends `endsAt` = the recovery "
            "time.",
            "`1m`",
        ),
    },
    "webhooks": {
        "name": (
            "Receiver name (`[a-z0-9][a-z0-9._-]{0,63}`, unique in `notify:`).",
            "required",
        ),
        "url": ("Where each notification is POSTed as JSON (docs/api.md).", "required"),
        "secret": (
            "Key of the `X-Jobpulse-Signature` HMAC-SHA256 header. Prefer `secret_file`.",
            "none: unsigned",
        ),
        "secret_file": (
            "File holding the secret (surrounding whitespace stripped); a relative path is "
            "relative to `jobpulse.yaml`. Not together with `secret`.",
            "none",
        ),
        "headers": ("Extra HTTP headers.", "none"),
        "timeout": ("How long one request may take.", "`10s`"),
    },
    "retry": {
        "max_attempts": (
            "Delivery attempts of one notification before it is given up (counted as "
            '`outcome="gave_up"`).',
            "`100`",
        ),
        "max_age": (
            "A notification still undelivered this long after its flip was committed is given up.",
            "`1d`",
        ),
        "initial_delay": (
            "Ceiling of the first retry's delay; each retry doubles it (full jitter).",
            "`1s`",
        ),
        "max_delay": ("Largest delay between two attempts.", "`10m`"),
    },
}


@dataclass(frozen=True, slots=True)
class Receiver:
    """One place notifications go. ``kind`` is ``alertmanager`` or ``webhook``."""

    name: str
    kind: str
    url: str
    timeout: float = 10.0
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    labels: tuple[tuple[str, str], ...] = ()
    resend_interval: float = 60.0
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Retry:
    max_attempts: int = 100
    max_age: float = 86400.0
    initial_delay: float = 1.0
    max_delay: float = 600.0


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    receivers: tuple[Receiver, ...] = ()
    retry: Retry = Retry()

    def receiver(self, name: str) -> Receiver | None:
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        return None


def _duration(where: str, key: str, value: object, *, minimum: float) -> float:
    try:
        seconds = parse_duration(value, what=key)
    except InvalidDuration as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not minimum <= seconds <= MAX_DURATION:
        raise ConfigError(
            f"{where}: {key} {value!r} is out of range; expected {minimum:g}s to 366d"
        )
    return seconds


def _url(where: str, value: object) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{where}: url {value!r} is not an http(s) URL; expected e.g. "
            "http://alertmanager:9093 or https://hooks.example.com/jobpulse"
        )
    assert isinstance(value, str)
    return value


def _pairs(where: str, key: str, value: object, pattern: re.Pattern[str]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: {key} must be a mapping of names to strings, got {value!r}")
    out: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not pattern.fullmatch(name) or name.startswith("__"):
            raise ConfigError(f"{where}: {key} name {name!r} is not valid")
        if isinstance(text, bool) or not isinstance(text, str | int | float):
            raise ConfigError(f"{where}: {key} {name!r} has value {text!r}; values are strings")
        out[name] = str(text)
    return out


def _receiver(where: str, kind: str, section: str, raw: object, base: Path | None) -> Receiver:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping with at least name and url")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: name {name!r} is not a receiver name; expected [a-z0-9][a-z0-9._-]{{0,63}}"
        )
    where = f"{where} ({name})"
    _reject_unknown(where, raw, FIELDS[section])
    if "url" not in raw:
        raise ConfigError(f"{where} has no url")
    url = _url(where, raw["url"])
    timeout = _duration(where, "timeout", raw.get("timeout", "10s"), minimum=0.1)
    headers = _pairs(where, "headers", raw.get("headers") or {}, _TOKEN)
    taken = sorted(h for h in headers if h.lower() in RESERVED_HEADERS)
    if taken:
        raise ConfigError(
            f"{where}: header(s) {', '.join(taken)} are set by jobpulse and cannot be configured"
        )
    values: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "url": url,
        "timeout": timeout,
        "headers": tuple(sorted(headers.items())),
    }
    if kind == "alertmanager":
        labels = _pairs(where, "labels", raw.get("labels") or {}, _LABEL)
        reserved = sorted(set(labels) & RESERVED_ALERT_LABELS)
        if reserved:
            raise ConfigError(
                f"{where}: label(s) {', '.join(reserved)} are set on every pushed alert and "
                "cannot be configured"
            )
        values["labels"] = tuple(sorted(labels.items()))
        values["resend_interval"] = _duration(
            where, "resend_interval", raw.get("resend_interval", "1m"), minimum=1.0
        )
    else:
        values["secret"] = _secret(where, raw, base)
    return Receiver(**values)


def _secret(where: str, raw: Mapping[str, Any], base: Path | None) -> str | None:
    if "secret" in raw and "secret_file" in raw:
        raise ConfigError(f"{where}: give secret or secret_file, not both")
    if "secret_file" in raw:
        value = raw["secret_file"]
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: secret_file {value!r} is not a path")
        path = Path(value)
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: cannot read secret_file {str(path)!r}: {exc}") from None
        if not secret:
            raise ConfigError(f"{where}: secret_file {str(path)!r} is empty")
        return secret
    if "secret" in raw:
        value = raw["secret"]
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: secret must be non-empty text")
        return value
    return None


def _reject_unknown(where: str, raw: Mapping[Any, Any], accepted: Iterable[str]) -> None:
    """A ConfigError naming the keys of ``raw`` not ``accepted``, and the accepted ones."""
    accepted = tuple(accepted)
    unknown = set(raw) - set(accepted)
    if unknown:
        raise ConfigError(f"{where}: {unknown_fields(unknown, accepted)}")


def _retry(where: str, raw: object) -> Retry:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping; accepted keys: {', '.join(FIELDS['retry'])}")
    _reject_unknown(where, raw, FIELDS["retry"])
    attempts = raw.get("max_attempts", 100)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 10_000:
        raise ConfigError(
            f"{where}: max_attempts {attempts!r} is not valid; expected a whole number 1-10000"
        )
    retry = Retry(
        max_attempts=attempts,
        max_age=_duration(where, "max_age", raw.get("max_age", "1d"), minimum=1.0),
        initial_delay=_duration(
            where, "initial_delay", raw.get("initial_delay", "1s"), minimum=0.1
        ),
        max_delay=_duration(where, "max_delay", raw.get("max_delay", "10m"), minimum=0.1),
    )
    if retry.max_delay < retry.initial_delay:
        raise ConfigError(
            f"{where}: max_delay ({retry.max_delay:g}s) is below initial_delay "
            f"({retry.initial_delay:g}s)"
        )
    return retry


def parse_notify(
    raw: object, *, source: str = "<config>", base: Path | None = None
) -> NotifyConfig:
    """The ``notify:`` section; ``base`` is the folder relative ``secret_file`` paths start
    from (the configuration file's)."""
    if raw is None:
        return NotifyConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{source}: notify must be a mapping with alertmanagers:, webhooks: and retry:"
        )
    _reject_unknown(f"{source}: notify", raw, (*KINDS, "retry"))
    receivers: list[Receiver] = []
    for section, kind in KINDS.items():
        entries = raw.get(section) or []
        if not isinstance(entries, list):
            raise ConfigError(f"{source}: notify.{section} must be a list of receivers")
        for index, entry in enumerate(entries):
            where = f"{source}: notify.{section}[{index}]"
            receiver = _receiver(where, kind, section, entry, base)
            if any(r.name == receiver.name for r in receivers):
                raise ConfigError(f"{where}: receiver name {receiver.name!r} is used twice")
            receivers.append(receiver)
    retry = _retry(f"{source}: notify.retry", raw.get("retry") or {})
    return NotifyConfig(receivers=tuple(receivers), retry=retry)
