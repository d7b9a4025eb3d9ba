"""Small PromQL building blocks shared by the alert rules and the dashboards.

Every selector the generators write goes through :class:`Selector`, so the user's extra
matchers (``--selector 'job="jobpulse"'``) reach every series, and a malformed one fails once,
up front, with the offending text in the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jobpulse.instrumentation.errors import ConfigError

__all__ = ["DEFAULT_SIDECAR_MATCHER", "Selector", "join_job_labels"]

# The scrape job the deploy/ files and the docs give the sidecar; used for `up` when the
# selector names no `job` itself.
DEFAULT_SIDECAR_MATCHER = 'job="jobpulse"'

_STRING = r'"(?:[^"\\\n]|\\.)*"'
_MATCHER = rf"\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*{_STRING}\s*"
_MATCHERS = re.compile(rf"(?:{_MATCHER})(?:,(?:{_MATCHER}))*,?\s*")
_JOB_MATCHER = re.compile(r"(?:^|,)\s*job\s*(?:=~|!~|!=|=)")


@dataclass(frozen=True)
class Selector:
    """Extra label matchers, e.g. ``job="jobpulse", env="prod"``, added to every series."""

    matchers: str = ""

    def __post_init__(self) -> None:
        text = self.matchers.strip()
        if text and _MATCHERS.fullmatch(text) is None:
            raise ConfigError(
                f"selector {self.matchers!r} is not a list of PromQL label matchers; "
                'expected text like job="jobpulse", env=~"prod|staging"'
            )
        object.__setattr__(self, "matchers", text.rstrip(",").strip())

    def __call__(self, metric: str, **labels: str) -> str:
        """``metric{<selector>, label="value", ...}``; values must need no escaping."""
        parts = [self.matchers] if self.matchers else []
        parts += [f'{name}="{value}"' for name, value in labels.items()]
        return f"{metric}{{{', '.join(parts)}}}" if parts else metric

    def sidecar_up(self, scrape_job: str | None = None) -> str:
        """The ``up`` series of the sidecar's scrape targets (scrape job ``scrape_job``, unless
        the selector names a ``job`` itself)."""
        if _JOB_MATCHER.search(self.matchers):
            return f"up{{{self.matchers}}}"
        job = DEFAULT_SIDECAR_MATCHER if scrape_job is None else f'job="{scrape_job}"'
        extra = f", {self.matchers}" if self.matchers else ""
        return f"up{{{job}{extra}}}"

    def including(self, matcher: str) -> Selector:
        """This selector with one more matcher (a dashboard's ``cluster=~"$cluster"``)."""
        return Selector(f"{self.matchers}, {matcher}" if self.matchers else matcher)


def join_job_labels(
    expr: str, selector: Selector, labels: tuple[str, ...], group_by: tuple[str, ...] = ()
) -> str:
    """Copy the configured job labels (team, owner, severity...) from ``jobpulse_job_info``.

    The left side must carry ``job_name`` and the ``group_by`` labels only (aggregate it
    ``by (cluster, ..., job_name)``). The right side
    keeps one series per job with ``topk``, so several sidecar replicas serving the same job,
    or a scrape that still holds a job's old labels next to its new ones, never raise a
    many-to-many matching error and never duplicate the alert.
    """
    if not labels:
        return expr
    info = selector("jobpulse_job_info")
    on = ", ".join((*group_by, "job_name"))
    return (
        f"(\n  {expr}\n)\n"
        f"* on ({on}) group_left ({', '.join(labels)})\n"
        f"  topk by ({on}) (1, {info})"
    )
