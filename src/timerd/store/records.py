"""The rules an exported timer line must pass to be imported, made of the API's own checks.

A line is a timer's stored form plus its kept delivery history. Its url and instants go
through the very functions that judge a request body (`timerd.validation`), so an import can
let in nothing the API would refuse: no NaN, no infinity, no control character in a url.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

from timerd.errors import FieldError, ValidationFailed
from timerd.models import LIVE_STATUSES, Attempt, Outcome, Status, Timer, is_plausible_id
from timerd.validation import BodyLimits, check_url, epoch_seconds, unknown_fields

TIMER_RECORD_FIELDS = frozenset(
    {
        "id",
        "url",
        "status",
        "fire_at",
        "created_at",
        "updated_at",
        "next_attempt_at",
        "fired_at",
        "attempts",
        "last_status_code",
        "last_error",
        "history",
    }
)
ATTEMPT_RECORD_FIELDS = frozenset(
    {"attempt", "started_at", "duration_ms", "status_code", "error", "outcome"}
)
_E = TypeVar("_E", Status, Outcome)
_COUNT_MAX = 1_000_000
_TEXT_MAX = 4096
_DURATION_MS_MAX = 1e9


def attempt_record(attempt: Attempt) -> dict[str, Any]:
    """Return one history entry as an export writes it: as the API shows it, so an export
    through a daemon (`--addr`) and one from its file (`--db`) are the same bytes."""
    return attempt.to_json()


def parse_record(data: Any, limits: BodyLimits) -> tuple[Timer, list[Attempt]]:
    """Validate one exported timer; raise ValidationFailed naming every broken field."""
    if not isinstance(data, dict):
        raise ValidationFailed([FieldError("line", "must be a JSON object")])
    errors = unknown_fields(data, TIMER_RECORD_FIELDS)
    tid = data.get("id")
    if not isinstance(tid, str) or not is_plausible_id(tid):
        errors.append(FieldError("id", "must be a timer id (1 to 64 of A-Z a-z 0-9 _ -)"))
        tid = ""
    url = None
    if "url" in data:
        url = check_url(data["url"], limits, "url", errors)
    else:
        _missing("url", errors)
    status = _choice(data.get("status"), Status, "status", errors)
    fire_at = _instant(data.get("fire_at"), "fire_at", errors, required=True)
    created_at = _instant(data.get("created_at"), "created_at", errors, required=True)
    updated_at = _instant(data.get("updated_at"), "updated_at", errors)
    next_at = _instant(data.get("next_attempt_at"), "next_attempt_at", errors)
    fired_at = _instant(data.get("fired_at"), "fired_at", errors)
    attempts = _count(data.get("attempts", 0), "attempts", errors, low=0)
    code = _status_code(data.get("last_status_code"), "last_status_code", errors)
    last_error = _text(data.get("last_error"), "last_error", errors)
    history = _history(data.get("history", []), tid, errors)
    if errors:
        raise ValidationFailed(errors)
    assert url is not None
    assert status is not None
    assert fire_at is not None
    assert created_at is not None
    assert attempts is not None
    # a live timer waits for next_at; a finished one has none (what the scheduler expects)
    next_at = (fire_at if next_at is None else next_at) if status in LIVE_STATUSES else None
    timer = Timer(
        tid,
        url,
        fire_at,
        created_at,
        status,
        next_at,
        attempts,
        created_at if updated_at is None else updated_at,
        fired_at,
        code,
        last_error,
    )
    return timer, history


def _missing(field: str, errors: list[FieldError]) -> None:
    errors.append(FieldError(field, "is required"))


def _instant(
    value: Any, field: str, errors: list[FieldError], *, required: bool = False
) -> float | None:
    if value is None:
        if required:
            _missing(field, errors)
        return None
    return epoch_seconds(value, field, errors)


def _choice(value: Any, kind: type[_E], field: str, errors: list[FieldError]) -> _E | None:
    try:
        return kind(value)
    except ValueError:
        names = ", ".join(member.value for member in kind)
        errors.append(FieldError(field, f"must be one of {names}"))
        return None


def _count(value: Any, field: str, errors: list[FieldError], *, low: int) -> int | None:
    if type(value) is int and low <= value <= _COUNT_MAX:
        return value
    errors.append(FieldError(field, f"must be a whole number from {low} to {_COUNT_MAX}"))
    return None


def _status_code(value: Any, field: str, errors: list[FieldError]) -> int | None:
    if value is None or (type(value) is int and 100 <= value <= 599):
        return value
    errors.append(FieldError(field, "must be an HTTP status code (100 to 599) or null"))
    return None


def _text(value: Any, field: str, errors: list[FieldError]) -> str | None:
    if value is None or (isinstance(value, str) and len(value) <= _TEXT_MAX):
        return value
    errors.append(FieldError(field, f"must be a string of at most {_TEXT_MAX} characters or null"))
    return None


def _history(value: Any, tid: str, errors: list[FieldError]) -> list[Attempt]:
    if not isinstance(value, list):
        errors.append(FieldError("history", "must be an array of attempts"))
        return []
    history: list[Attempt] = []
    for index, entry in enumerate(value):
        prefix = f"history[{index}]."
        if not isinstance(entry, dict):
            errors.append(FieldError(f"history[{index}]", "must be a JSON object"))
            continue
        before = len(errors)
        errors.extend(unknown_fields(entry, ATTEMPT_RECORD_FIELDS, prefix))
        number = _count(entry.get("attempt"), prefix + "attempt", errors, low=1)
        started_at = _instant(entry.get("started_at"), prefix + "started_at", errors, required=True)
        duration_ms = _duration_ms(entry.get("duration_ms"), prefix + "duration_ms", errors)
        code = _status_code(entry.get("status_code"), prefix + "status_code", errors)
        error = _text(entry.get("error"), prefix + "error", errors)
        outcome = _choice(entry.get("outcome"), Outcome, prefix + "outcome", errors)
        if len(errors) == before:
            assert number is not None
            assert started_at is not None
            assert duration_ms is not None
            assert outcome is not None
            history.append(Attempt(tid, number, started_at, duration_ms, code, error, outcome))
    return history


def _duration_ms(value: Any, field: str, errors: list[FieldError]) -> float | None:
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= _DURATION_MS_MAX
    ):
        return float(value)
    errors.append(FieldError(field, f"must be a number from 0 to {_DURATION_MS_MAX:g}"))
    return None
