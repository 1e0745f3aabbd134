"""The CLI's time syntax and its page cursor, as pure functions (the e2e tests run the CLI)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import click
import pytest

from timerd.cli.list_command import parse_cursor
from timerd.cli.times import format_left, parse_duration, parse_instant
from timerd.cursor import encode_cursor


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("1h2m3s", 3723),
        ("1d12h", 129_600),
        ("1.5h", 5_400),
        ("0.5d", 43_200),
        (".5m", 30),
        ("1.5s", 1.5),
        ("2D3H", 183_600),
        (" 3d ", 259_200),
        ("0s", 0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "90", "1h1d", "1x", "-1h", "1h 2m", "1..5h", "h"])
def test_not_durations(text: str) -> None:
    with pytest.raises(click.BadParameter, match="is not a duration like 1d12h"):
        parse_duration(text)


def test_an_instant_without_offset_is_local_time() -> None:
    naive = parse_instant("2026-12-24T10:00:00")
    assert naive.tzinfo is not None
    assert naive.replace(tzinfo=None) == datetime(2026, 12, 24, 10)
    assert naive.utcoffset() == datetime(2026, 12, 24, 10).astimezone().utcoffset()
    assert parse_instant("2026-12-24T10:00:00Z") == datetime(2026, 12, 24, 10, tzinfo=UTC)
    assert parse_instant("2026-12-24t10:00:00z") == datetime(2026, 12, 24, 10, tzinfo=UTC)
    offset = timezone(timedelta(hours=-5))
    assert parse_instant("2026-12-24T10:00:00-05:00") == datetime(2026, 12, 24, 10, tzinfo=offset)
    with pytest.raises(click.BadParameter, match="is not a time like"):
        parse_instant("tomorrow")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (0, "0s"),
        (59, "59s"),
        (61, "1m1s"),
        (3600, "1h"),
        (3661, "1h1m"),
        (3 * 86400 + 4 * 3600 + 10, "3d4h"),
        (2_147_510, "24d21h"),
        (172_799.9, "2d"),
    ],
)
def test_time_left_as_people_read_it(seconds: float | None, shown: str) -> None:
    assert format_left(seconds) == shown


def test_the_cli_reads_the_apis_cursor() -> None:
    position = (1_795_457_180.39, "P88flSRBiyaHc8EtoSR7JxY")
    assert parse_cursor(encode_cursor(position)) == position
    with pytest.raises(click.BadParameter):
        parse_cursor("nonsense")
