from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker._kits.durations import MAX_SECONDS, format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (900, 900),
        (900.0, 900),
        ("900", 900),
        (" 900 ", 900),
        ("15m", 900),
        ("1h30m", 5400),
        ("90s", 90),
        ("2h", 7200),
        ("1.5h", 5400),
        (".5h", 1800),
        ("1h1h", 7200),  # Go accepts repeated units too
        ("2000ms", 2),
        ("3000000us", 3),
        ("3000000µs", 3),  # U+00B5
        ("3000000μs", 3),  # U+03BC
        ("1000000000ns", 1),
        ("1h0m0s", 3600),  # what Go's Duration.String() prints
        (str(MAX_SECONDS), MAX_SECONDS),
        (MAX_SECONDS, MAX_SECONDS),
    ],
)
def test_parses(value: str | int | float, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        "0",
        "0s",
        "-5m",
        "500ms",  # not a whole number of seconds
        "1500ms",
        "1.5",  # a bare number must be whole seconds
        1.5,
        math.nan,
        math.inf,
        True,
        False,
        "",
        "   ",
        "5d",  # Go has no day unit
        "1e3",
        "15 m",
        "m",
        ".h",
        "h1",
        "١٢٣",  # Arabic-Indic digits: int() would take them
        MAX_SECONDS + 1,
        f"{MAX_SECONDS + 1}s",
        "99999999999999999999h",
        "1" * 100,
        None,
        [900],
    ],
)
def test_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)  # type: ignore[arg-type]


def test_messages_are_short_and_caller_safe() -> None:
    with pytest.raises(ValueError) as exc:
        parse_duration("x" * 10_000)
    assert len(str(exc.value)) < 120
    with pytest.raises(ValueError) as exc:
        parse_duration("15x")
    assert "'15x'" in str(exc.value)
    assert "15m" in str(exc.value)  # tells what would work


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1, "1s"),
        (59, "59s"),
        (60, "1m"),
        (90, "1m30s"),
        (3600, "1h"),
        (5400, "1h30m"),
        (7205, "2h5s"),
    ],
)
def test_format(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("bad", [-1, 1.5, True, "60"])
def test_format_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        format_duration(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=MAX_SECONDS))
def test_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
    assert parse_duration(str(seconds)) == seconds


@given(st.text(max_size=80))
def test_arbitrary_text_only_value_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert 1 <= seconds <= MAX_SECONDS


@given(st.from_regex(r"\A([0-9]{1,4}(\.[0-9]{0,3})?(ns|us|ms|s|m|h)){1,4}\Z"))
def test_go_like_text_only_value_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert 1 <= seconds <= MAX_SECONDS


@given(st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none()))
def test_arbitrary_numbers_only_value_error(value: object) -> None:
    try:
        seconds = parse_duration(value)  # type: ignore[arg-type]
    except ValueError:
        return
    assert 1 <= seconds <= MAX_SECONDS
