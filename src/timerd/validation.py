"""The body rules of SPEC.md, as pure functions over parsed JSON.

Kept free of aiohttp so the benchmark's ceiling handler validates with exactly this code.
"""

from __future__ import annotations

import difflib
import math
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from timerd.errors import BadRequest, FieldError, ValidationFailed

DURATION_FIELDS = ("hours", "minutes", "seconds")
TIMER_FIELDS = frozenset({"url", "fire_at", *DURATION_FIELDS})
"""The fields of a create body, a batch item and a PATCH body."""
BATCH_FIELDS = frozenset({"timers"})
EPOCH_MAX_S = 1e11
"""Epoch seconds beyond this (year 5138) are refused as `fire_at`: a typo, not a plan."""
_UNKNOWN_REPORTED_MAX = 20
"""Unknown fields named one by one; a body of thousands gets one more entry for the rest."""
_SAY_WHEN = 'must say when: hours, minutes, seconds or fire_at ({"seconds": 0} fires at once)'
_UNIT_S = {"hours": 3600, "minutes": 60, "seconds": 1}
_NUMERIC_LABEL = re.compile(r"\d+|0[xX][0-9a-fA-F]*", re.ASCII)
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """The configurable bounds a request body is checked against."""

    max_delay_s: float
    max_url_length: int
    host_check: Callable[[str], str | None] | None = None
    """Returns why a URL host is refused (the outbound policy), or None; no DNS."""


class CreateSpec(NamedTuple):
    """A validated request to create one timer (a named tuple: made once per batch item)."""

    url: str
    fire_at: float


@dataclass(frozen=True, slots=True)
class PatchSpec:
    """A validated reschedule: a new due instant, a new url, or both."""

    url: str | None
    fire_at: float | None


def parse_create(body: Any, *, now: float, limits: BodyLimits) -> CreateSpec:
    """Validate a `POST /timers` body; raise BadRequest (400) or ValidationFailed (422)."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    errors: list[FieldError] = []
    spec = _create_from(body, now, limits, "", errors)
    if errors or spec is None:
        raise ValidationFailed(errors)
    return spec


def unknown_fields(
    body: dict[str, Any], known: frozenset[str], prefix: str = ""
) -> list[FieldError]:
    """Name each field of `body` that is not in `known`, with a hint for a near miss."""
    if known.issuperset(body):  # the common case: one pass, nothing built
        return []
    unknown = [name for name in body if name not in known]
    errors = [_unknown(name, known, prefix) for name in unknown[:_UNKNOWN_REPORTED_MAX]]
    if len(unknown) > _UNKNOWN_REPORTED_MAX:
        more = len(unknown) - _UNKNOWN_REPORTED_MAX
        errors.append(FieldError(_whole(prefix), f"has {more} more unknown fields"))
    return errors


def _whole(prefix: str) -> str:
    """The field name of a whole body: `body`, or the batch item `timers[3]`."""
    return prefix.removesuffix(".") or "body"


_UNITS = (("year", 365.25 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60))


def human(limits: BodyLimits) -> str:
    """The maximum delay of `limits`, spelled for people, then in seconds as configured."""
    most = float(limits.max_delay_s)  # a setting given as an int has no is_integer on 3.11
    return f"{human_duration(most)} ({int(most) if most.is_integer() else most} s)"


def human_duration(seconds: float) -> str:
    """Spell a duration as people read it: `10 years`, `16 minutes 40 seconds`."""
    parts = []
    rest = seconds
    for name, size in _UNITS:
        count = int(rest // size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
            rest -= count * size
    rest = round(rest, 6)
    if rest or not parts:
        parts.append(f"{rest:g} second{'s' if rest != 1 else ''}")
    return " ".join(parts)


def _unknown(name: str, known: frozenset[str], prefix: str) -> FieldError:
    shown = name if len(name) <= 64 else name[:64] + "..."
    message = f"is not a known field (known: {', '.join(sorted(known))})"
    if len(name) <= 32:
        close = difflib.get_close_matches(name.lower(), sorted(known), n=1, cutoff=0.6)
        if close:
            message = f"is not a known field; did you mean {close[0]}?"
    return FieldError(prefix + shown, message)


def parse_batch(body: Any, *, now: float, limits: BodyLimits, max_items: int) -> list[CreateSpec]:
    """Validate a `POST /timers/batch` body: every item, all or nothing."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    stray = unknown_fields(body, BATCH_FIELDS)
    items = body.get("timers")
    if not isinstance(items, list):
        raise ValidationFailed([*stray, FieldError("timers", "must be an array of timer objects")])
    if stray:
        raise ValidationFailed(stray)
    if not 1 <= len(items) <= max_items:
        raise ValidationFailed([FieldError("timers", f"must hold between 1 and {max_items} items")])
    errors: list[FieldError] = []
    specs: list[CreateSpec] = []
    seen_urls: dict[str, str | None] = {}
    for index, item in enumerate(items):
        prefix = f"timers[{index}]."
        if not isinstance(item, dict):
            errors.append(FieldError(f"timers[{index}]", "must be a JSON object"))
            continue
        spec = _create_from(item, now, limits, prefix, errors, seen_urls)
        if spec is not None:
            specs.append(spec)
    if errors:
        raise ValidationFailed(errors)
    return specs


def parse_patch(body: Any, *, now: float, limits: BodyLimits) -> PatchSpec:
    """Validate a `PATCH /timers/<id>` body: durations or `fire_at`, and/or `url`."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    errors = unknown_fields(body, TIMER_FIELDS)
    url = check_url(body["url"], limits, "url", errors) if "url" in body else None
    has_time = "fire_at" in body or any(name in body for name in DURATION_FIELDS)
    fire_at = _due(body, now, limits, "", errors) if has_time else None
    if not errors and url is None and fire_at is None:
        errors.append(
            FieldError("body", "give a new time (hours/minutes/seconds or fire_at) or url")
        )
    if errors:
        raise ValidationFailed(errors)
    return PatchSpec(url=url, fire_at=fire_at)


def _create_from(
    body: dict[str, Any],
    now: float,
    limits: BodyLimits,
    prefix: str,
    errors: list[FieldError],
    seen_urls: dict[str, str | None] | None = None,
) -> CreateSpec | None:
    before = len(errors)
    errors.extend(unknown_fields(body, TIMER_FIELDS, prefix))
    if "url" in body:
        url = check_url(body["url"], limits, prefix + "url", errors, seen_urls)
    else:
        url = None
        errors.append(FieldError(prefix + "url", "is required"))
    if "fire_at" in body or any(name in body for name in DURATION_FIELDS):
        fire_at = _due(body, now, limits, prefix, errors)
    else:
        fire_at = None
        errors.append(FieldError(_whole(prefix), _SAY_WHEN))
    if len(errors) > before or url is None or fire_at is None:
        return None
    return CreateSpec(url, fire_at)


def _due(
    body: dict[str, Any], now: float, limits: BodyLimits, prefix: str, errors: list[FieldError]
) -> float | None:
    """Return the due instant from durations or `fire_at`, or record why not."""
    if "fire_at" in body:
        present = [name for name in DURATION_FIELDS if name in body]
        if present:
            errors.append(
                FieldError(prefix + "fire_at", f"cannot be combined with {', '.join(present)}")
            )
            return None
        at = _instant(body["fire_at"], prefix + "fire_at", errors)
        if at is None:
            return None
        if at - now > limits.max_delay_s:
            errors.append(
                FieldError(
                    prefix + "fire_at",
                    f"is more than the maximum delay, {human(limits)}, away",
                )
            )
            return None
        return at
    delay = 0.0
    ok = True
    for name in DURATION_FIELDS:
        if name not in body:
            continue
        value = body[name]
        if type(value) is int and 0 <= value <= limits.max_delay_s:  # the common case, first
            delay += value * _UNIT_S[name]
            continue
        field = prefix + name
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(FieldError(field, "must be a non-negative number"))
            ok = False
            continue
        if isinstance(value, float) and not math.isfinite(value):
            errors.append(FieldError(field, "must be a finite number"))
            ok = False
            continue
        if value < 0:
            errors.append(FieldError(field, "must not be negative"))
            ok = False
            continue
        if name != "seconds" and isinstance(value, float) and not value.is_integer():
            errors.append(FieldError(field, "must be a whole number"))
            ok = False
            continue
        # compare before converting: an int like 10**400 does not fit a float
        if value > limits.max_delay_s:
            errors.append(
                FieldError(
                    field,
                    f"makes the delay exceed the maximum, {human(limits)}",
                )
            )
            ok = False
            continue
        delay += float(value) * _UNIT_S[name]
    if not ok:
        return None
    if delay > limits.max_delay_s:
        present = [name for name in DURATION_FIELDS if name in body]
        errors.append(
            FieldError(
                prefix + (present[0] if len(present) == 1 else "seconds"),
                f"makes the total delay exceed the maximum, {human(limits)}",
            )
        )
        return None
    return now + delay


def epoch_seconds(value: Any, field: str, errors: list[FieldError]) -> float | None:
    """Accept a finite number of epoch seconds within range, or record why not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(FieldError(field, "must be a number of epoch seconds"))
        return None
    if isinstance(value, float) and not math.isfinite(value):
        errors.append(FieldError(field, "must be a finite number"))
        return None
    if abs(value) > EPOCH_MAX_S:
        errors.append(FieldError(field, "is out of range"))
        return None
    return float(value)


def _instant(value: Any, field: str, errors: list[FieldError]) -> float | None:
    """Parse epoch seconds or an RFC 3339 string with an offset."""
    if isinstance(value, bool):
        errors.append(FieldError(field, "must be epoch seconds or an RFC 3339 string"))
        return None
    if isinstance(value, int | float):
        return epoch_seconds(value, field, errors)
    if isinstance(value, str):
        if not _RFC3339.fullmatch(value):
            errors.append(
                FieldError(
                    field,
                    "must be an RFC 3339 date-time with an offset, like 2026-11-23T10:00:00Z",
                )
            )
            return None
        try:
            parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            errors.append(FieldError(field, "is not a valid date-time"))
            return None
        return parsed.timestamp()
    errors.append(FieldError(field, "must be epoch seconds or an RFC 3339 string"))
    return None


def check_url(
    value: Any,
    limits: BodyLimits,
    field: str,
    errors: list[FieldError],
    seen: dict[str, str | None] | None = None,
) -> str | None:
    """Accept an absolute http(s) URL with a host, of bounded length, without controls.

    `seen` remembers each distinct URL's verdict: the items of a batch mostly share one,
    and parsing it again for each of a thousand items was a fifth of a batch's cost.
    """
    if not isinstance(value, str):
        errors.append(FieldError(field, "must be a string"))
        return None
    if seen is None:
        problem = _url_problem(value, limits)
    else:
        problem = (
            seen[value] if value in seen else seen.setdefault(value, _url_problem(value, limits))
        )
    if problem is not None:
        errors.append(FieldError(field, problem))
        return None
    return value


def _url_problem(value: str, limits: BodyLimits) -> str | None:
    """Return what is wrong with `value` as a webhook URL, or None."""
    if len(value) > limits.max_url_length:
        return f"must be at most {limits.max_url_length} characters"
    if not value.isprintable() or " " in value:
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must be an absolute http or https URL"
    if not host:
        return "must have a host"
    if not host.isascii():
        try:
            host.encode("idna")
        except UnicodeError:
            return "has a host name that is not valid"
    if (
        ":" not in host  # an IPv6 literal may end in an IPv4 address; the policy judges it
        and _NUMERIC_LABEL.fullmatch(host.rstrip(".").rpartition(".")[2])
        and not _is_ipv4(host)
    ):
        # a host ending in a number is an IPv4 address to resolvers and browsers (WHATWG URL)
        return f"has a host, {host}, that is not a valid IPv4 address"
    if limits.host_check is not None:
        reason = limits.host_check(host)
        if reason is not None:
            return f"is refused by the outbound policy: {reason}"
    return None


def _is_ipv4(host: str) -> bool:
    """Tell whether `host` is an IPv4 address, in any form the C resolver reads as one."""
    try:
        socket.inet_aton(host.rstrip("."))
    except OSError:
        return False
    return True
