"""The configuration file, ``jobpulse.yaml``: a ``sidecar:`` section, a ``jobs:`` list, an
optional ``notify:`` section (``notifyconfig.py``) and a ``maintenance:`` list of maintenance
windows (:mod:`.maintenance_config`).

Errors name the job, the field and what is accepted, e.g.
``jobs[2] (nightly-backup): grace '10x' is not a duration: ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jobpulse.instrumentation.errors import ConfigError, InvalidJobConfig, InvalidName
from jobpulse.instrumentation.spec import parse_job_fields, parse_job_name

from .maintenance_config import WindowSpec, parse_windows
from .notifyconfig import NotifyConfig, parse_notify

__all__ = [
    "FileConfig",
    "dependency_cycle",
    "dependency_error",
    "format_cycle",
    "load_config",
    "parse_config",
    "unknown_upstreams",
]


@dataclass(frozen=True, slots=True)
class FileConfig:
    sidecar: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    maintenance: tuple[WindowSpec, ...] = ()


def load_config(path: str | Path) -> FileConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {exc.strerror}") from exc
    return parse_config(text, source=str(path), base=Path(path).parent)


def parse_config(text: str, *, source: str = "<config>", base: Path | None = None) -> FileConfig:
    """Parse ``jobpulse.yaml``; ``base`` is its folder (relative paths in it start there)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if data is None:
        return FileConfig()
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping with sidecar:, jobs:, notify: and "
            "maintenance:"
        )
    unknown = set(data) - {"sidecar", "jobs", "notify", "maintenance"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}; "
            "accepted: sidecar, jobs, notify, maintenance"
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
    problem = dependency_error(jobs, jobs.get)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    notify = parse_notify(data.get("notify"), source=source, base=base)
    maintenance = parse_windows(data.get("maintenance"), source=source)
    return FileConfig(sidecar=dict(sidecar), jobs=jobs, notify=notify, maintenance=maintenance)


Fields = Mapping[str, Any]
_Root = tuple[str, ...]  # ("cron", expression, zone): shared by equal schedules; ("job", name)


def dependency_error(names: Iterable[str], fields_of: Callable[[str], Fields | None]) -> str | None:
    """Why the ``after:`` entries of the jobs ``names`` cannot be judged, or None: a cycle
    (named), or a job with no schedule of its own after several jobs that share no schedule
    tick (it could never become due). ``fields_of(name)`` gives a job's fields, None for a job
    not known (which is accepted: nothing can be said of it yet)."""
    names = list(names)
    cycle = dependency_cycle(names, lambda name: (fields_of(name) or {}).get("after") or ())
    if cycle:
        return (
            f"jobs depend on each other in a cycle, after: {format_cycle(cycle)}; remove one of "
            "these after: entries"
        )
    memo: dict[str, frozenset[_Root] | None] = {}
    for name in names:
        fields = fields_of(name) or {}
        after = fields.get("after") or []
        if len(after) < 2 or fields.get("schedule") or fields.get("every"):
            continue
        ticks = {upstream: _roots(upstream, fields_of, memo) for upstream in after}
        known = {up: roots for up, roots in ticks.items() if roots is not None}
        if len(known) == len(ticks) and len(frozenset[_Root]().union(*known.values())) > 1:
            listed = "; ".join(f"{up}: {_describe(roots)}" for up, roots in known.items())
            return (
                f"job {name!r} runs after {', '.join(after)}, which share no schedule tick "
                f"({listed}); a job after several jobs is due when all of them succeeded for "
                f"the same tick: give them the same schedule, or give {name!r} a schedule of "
                "its own"
            )
    return None


def _roots(
    name: str, fields_of: Callable[[str], Fields | None], memo: dict[str, frozenset[_Root] | None]
) -> frozenset[_Root] | None:
    """Where the ticks of ``name`` come from (None: not known)."""
    if name in memo:
        return memo[name]
    memo[name] = None
    fields = fields_of(name)
    roots: frozenset[_Root] | None
    if fields is None:
        roots = None
    elif fields.get("schedule"):
        roots = frozenset({("cron", fields["schedule"], fields.get("timezone") or "UTC")})
    elif fields.get("every") or not fields.get("after"):
        roots = frozenset({("job", name)})  # anchored on its own runs
    else:
        parts = [_roots(upstream, fields_of, memo) for upstream in fields["after"]]
        known = [part for part in parts if part is not None]
        roots = frozenset[_Root]().union(*known) if len(known) == len(parts) else None
    memo[name] = roots
    return roots


def _describe(roots: frozenset[_Root]) -> str:
    return " and ".join(
        f'schedule "{root[1]}" in {root[2]}' if root[0] == "cron" else f"the runs of {root[1]}"
        for root in sorted(roots)
    )


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
