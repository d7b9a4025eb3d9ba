"""The configuration file, ``jobpulse.yaml``: a ``sidecar:`` section, a ``jobs:`` list and a
``maintenance:`` list of maintenance windows (:mod:`.maintenance_config`).

Errors name the job, the field and what is accepted, e.g.
``jobs[2] (nightly-backup): grace '10x' is not a duration: ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jobpulse.instrumentation.errors import ConfigError, InvalidJobConfig, InvalidName
from jobpulse.instrumentation.spec import parse_job_fields, parse_job_name

from .maintenance_config import WindowSpec, parse_windows

__all__ = ["FileConfig", "load_config", "parse_config"]


@dataclass(frozen=True, slots=True)
class FileConfig:
    sidecar: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    maintenance: tuple[WindowSpec, ...] = ()


def load_config(path: str | Path) -> FileConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {exc.strerror}") from exc
    return parse_config(text, source=str(path))


def parse_config(text: str, *, source: str = "<config>") -> FileConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if data is None:
        return FileConfig()
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping with sidecar:, jobs: and maintenance:"
        )
    unknown = set(data) - {"sidecar", "jobs", "maintenance"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}; "
            "accepted: sidecar, jobs, maintenance"
        )
    sidecar = data.get("sidecar") or {}
    if not isinstance(sidecar, dict):
        raise ConfigError(f"{source}: sidecar must be a mapping of settings")
    raw_jobs = data.get("jobs") or []
    if not isinstance(raw_jobs, list):
        raise ConfigError(f"{source}: jobs must be a list of job mappings")
    jobs: dict[str, dict[str, Any]] = {}
    for index, raw in enumerate(raw_jobs):
        where = f"{source}: jobs[{index}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a mapping with at least a name")
        if "name" not in raw:
            raise ConfigError(f"{where} has no name")
        try:
            name = parse_job_name(raw["name"])
        except InvalidName as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        if name in jobs:
            raise ConfigError(f"{where}: job {name!r} is defined twice")
        fields = {k: v for k, v in raw.items() if k != "name"}
        try:
            jobs[name] = parse_job_fields(name, fields)
        except InvalidJobConfig as exc:
            raise ConfigError(f"{where} ({name}): {exc}") from exc
    maintenance = parse_windows(data.get("maintenance"), source=source)
    return FileConfig(sidecar=dict(sidecar), jobs=jobs, maintenance=maintenance)
