"""The duration chart and the page helpers, without HTTP."""

from __future__ import annotations

import re

import pytest

from jobpulse.sidecar.http.pages.markup import age, seconds, until
from jobpulse.sidecar.http.pages.routes import parse_filters
from jobpulse.sidecar.http.pages.svg import HEIGHT, TOP, duration_chart, nice_ceiling


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, 1.0),
        (0.3, 0.5),
        (1.0, 1.0),
        (1.01, 2.0),
        (4.2, 5.0),
        (7.0, 10.0),
        (41.0, 50.0),
        (3600.0, 5000.0),
        (120.0, 200.0),
    ],
)
def test_nice_ceiling(value, expected):
    assert nice_ceiling(value) == pytest.approx(expected)


def test_chart_scales_bars_and_escapes_tooltips():
    runs = [  # newest first, as the job page reads them
        {"started_at": "2026-11-23T10:00:00Z", "outcome": "failure", "duration": 25.0},
        {"started_at": "2026-11-23T09:00:00Z", "outcome": "running", "duration": None},
        {"started_at": "<b>", "outcome": "success", "duration": 50.0},
    ]
    svg = duration_chart(runs)
    bars = re.findall(
        r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" fill="(#\w+)">', svg
    )
    plot = HEIGHT - TOP - 24
    # oldest first: the 50 s success fills the axis (top 50 s), the 25 s failure half of it
    assert [(float(h), fill) for _, h, fill in bars] == [(plot, "#2e7d32"), (plot / 2, "#c62828")]
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert ">50.0 s</text>" in svg and ">25.0 s</text>" in svg and ">0 s</text>" in svg


def test_chart_without_durations():
    assert "<svg" not in duration_chart(
        [{"started_at": "x", "outcome": "running", "duration": None}]
    )


def test_time_helpers():
    now = 1_000_000.0
    assert seconds(2.345) == "2.35 s" and seconds(75) == "1m 15s" and seconds(None) == "—"
    assert ">5m ago<" in age(now - 300, now) and "never" in age(None, now)
    assert ">in 2h<" in until(now + 7200, now) and ">due 1m ago<" in until(now - 61, now)


def test_parse_filters():
    filters, refresh = parse_filters({"state": "down", "refresh": "60"}, ["team=data", "", "a=b=c"])
    assert filters.state == "down" and refresh == 60
    assert filters.labels == (("team", "data"), ("a", "b=c"))
    for query, labels in (({"state": "gone"}, []), ({}, ["=x"]), ({"refresh": "4"}, [])):
        with pytest.raises(ValueError):
            parse_filters(query, labels)
