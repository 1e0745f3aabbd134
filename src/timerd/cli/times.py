"""Times as people type and read them: `--in 1d12h`, `--at 2026-12-24T10:00:00`, `3d4h` left."""

from __future__ import annotations

import re
from datetime import datetime

import click

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_DURATION_RE = re.compile(
    rf"(?:{_NUMBER}d)?(?:{_NUMBER}h)?(?:{_NUMBER}m)?(?:{_NUMBER}s)?", re.IGNORECASE
)
_UNITS_S = (86400, 3600, 60, 1)
_NAMES = ("d", "h", "m", "s")


def parse_duration(text: str) -> float:
    """Parse `1d12h`, `1.5h`, `10m`, `90s`, `1h2m3.5s` into seconds (BadParameter if not one)."""
    match = _DURATION_RE.fullmatch(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise click.BadParameter(
            f"{text!r} is not a duration like 1d12h, 1.5h, 10m or 90s (units d, h, m, s)"
        )
    return sum(float(v) * unit for v, unit in zip(match.groups(), _UNITS_S, strict=True) if v)


def parse_instant(text: str) -> datetime:
    """Parse an RFC 3339 time; one without an offset is in this machine's local time zone."""
    raw = text.strip()
    try:
        when = datetime.fromisoformat(raw.upper() if "t" in raw or "z" in raw else raw)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time like 2026-12-24T10:00:00 (local) or 2026-12-24T10:00:00Z"
        ) from None
    return when.astimezone() if when.tzinfo is None else when


def format_left(seconds: float | None) -> str:
    """Return time left as people read it, to the nearest second unit: `3d4h`, `2h5m`, `9s`."""
    if seconds is None:
        return "-"
    total = max(0, round(seconds))
    for i, unit in enumerate(_UNITS_S[:-1]):
        if total >= unit:
            step = _UNITS_S[i + 1]
            total = (total + step // 2) // step * step  # nearest hour under a day, ...
            break
    parts: list[str] = []
    for unit, name in zip(_UNITS_S, _NAMES, strict=True):
        count, total = divmod(total, unit)
        if count:
            parts.append(f"{count}{name}")
    return "".join(parts[:2]) or "0s"


def format_time(epoch: float | None) -> str:
    """Return an epoch instant as local RFC 3339 with its offset, to the second."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")
