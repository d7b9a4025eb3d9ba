"""The configuration file, ``jobpulse.yaml``: a ``sidecar:`` section and a ``jobs:`` list.

Errors name the job, the field and what is accepted, e.g.
``jobs[2] (nightly-backup): grace '10x' is not a duration: ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jobpulse.instrumentation.errors import ConfigError, InvalidJobConfig, InvalidName
from jobpulse.instrumentation.spec import parse_job_fields, parse_job_name

__all__ = [
    "FileConfig",
    "dependency_cycle",
    "format_cycle",
    "load_config",
    "parse_config",
    "unknown_upstreams",
]


@dataclass(frozen=True, slots=True)
class FileConfig:
    sidecar: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)


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
        raise ConfigError(f"{source}: the top level must be a mapping with sidecar: and jobs:")
    unknown = set(data) - {"sidecar", "jobs"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}; "
            "accepted: sidecar, jobs"
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
    cycle = dependency_cycle(jobs, lambda name: jobs.get(name, {}).get("after") or ())
    if cycle:
        raise ConfigError(
            f"{source}: jobs depend on each other in a cycle, after: {format_cycle(cycle)}; "
            "remove one of these after: entries"
        )
    return FileConfig(sidecar=dict(sidecar), jobs=jobs)


def dependency_cycle(
    names: Iterable[str], after_of: Callable[[str], Sequence[str]]
) -> list[str] | None:
    """The first cycle among the ``after:`` edges reachable from ``names``, as the list of its
    jobs with the first repeated at the end (``[a, b, a]``), or None. ``after_of(name)`` gives a
    job's upstreams (empty for a job that is not known)."""
    done: set[str] = set()
    for root in names:
        if root in done:
            continue
        # Depth-first, iteratively: a chain thousands of jobs long must not hit the recursion
        # limit. `path` is the current chain; `on_path` its members.
        path: list[str] = [root]
        on_path = {root}
        stack = [iter(after_of(root))]
        while stack:
            upstream = next(stack[-1], None)
            if upstream is None:
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if upstream in on_path:
                return [*path[path.index(upstream) :], upstream]
            if upstream in done:
                continue
            path.append(upstream)
            on_path.add(upstream)
            stack.append(iter(after_of(upstream)))
    return None


def format_cycle(cycle: Sequence[str]) -> str:
    """``a → b → a``."""
    return " → ".join(cycle)


def unknown_upstreams(cfg: FileConfig, known: Callable[[str], bool] = lambda _: False) -> list[str]:
    """Warnings for ``after:`` entries naming a job neither in the file nor ``known``: such a
    job is accepted, and becomes due by that upstream only once it exists."""
    return [
        f"job {name!r}: after names {upstream!r}, which is not a known job; {name!r} becomes "
        f"due by it only once {upstream!r} is configured or reports"
        for name, fields in cfg.jobs.items()
        for upstream in fields.get("after") or ()
        if upstream not in cfg.jobs and not known(upstream)
    ]
