"""The pages' one formatter of measured durations (run durations, p50/p95/max, chart axis)."""

from __future__ import annotations

import math

import pytest

from jobpulse.sidecar.http.pages.markup import seconds


@pytest.mark.parametrize(
    "value, text",
    [
        (0.0, "0 s"),
        (-0.5, "0 s"),  # clamped, as durations are
        (0.0000004, "0.4 µs"),
        (0.0000126, "13 µs"),
        (0.0009994, "999 µs"),
        (0.0009996, "1.0 ms"),
        (0.00376, "3.8 ms"),
        (0.0126, "13 ms"),
        (0.125, "125 ms"),
        (0.9994, "999 ms"),
        (0.9996, "1.00 s"),
        (1.25, "1.25 s"),
        (9.996, "10.0 s"),
        (12.5, "12.5 s"),
        (59.94, "59.9 s"),
        (59.96, "1m 00s"),
        (60.0, "1m 00s"),
        (125.4, "2m 05s"),
        (3599.4, "59m 59s"),
        (3599.6, "1h 00m"),
        (3720.0, "1h 02m"),
        (86369.0, "23h 59m"),
        (86371.0, "1d 00h"),
        (90000.0, "1d 01h"),
        (400 * 86400.0, "400d 00h"),
    ],
)
def test_durations_for_people(value: float, text: str) -> None:
    assert seconds(value) == text


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf])
def test_no_duration_is_a_dash(value: float | None) -> None:
    assert seconds(value) == "—"
