"""The request bodies of the OpenAPI document: create, PATCH and batch, with this daemon's bounds.

JSON Schema states each rule the handlers enforce (unknown fields refused, `fire_at` or
durations but never both, the configured maxima), so a body the schema accepts is one the
API accepts; the descriptions say the rest in words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from timerd.config import TEN_YEARS_S
from timerd.validation import EPOCH_MAX_S, human_duration

HOOK_URL = "https://example.com/hook"
FIRE_AT_TEXT = "2027-01-15T08:00:00Z"
FIRE_AT_EPOCH = 1800000000
"""The same instant as FIRE_AT_TEXT, as epoch seconds."""

_LABEL = "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PORT = "[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]"
# A name whose last label starts with a letter (a number there makes an IPv4 address),
# or a dotted-quad; then an optional port, path and query in plain URL characters.
_URL_PATTERN = (
    f"^https?://(({_LABEL}\\.)*[a-z]([a-z0-9-]{{0,20}}[a-z0-9])?|{_OCTET}(\\.{_OCTET}){{3}})"
    f"(:({_PORT}))?"
    "(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?(\\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?$"
)


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    """The configured bounds the document states (defaults: those of a default daemon)."""

    max_delay_s: float = TEN_YEARS_S
    max_url_length: int = 2048
    batch_max: int = 1000
    list_limit_max: int = 1000


def _url(limits: DocumentLimits) -> dict[str, Any]:
    return {
        "type": "string",
        "format": "uri",
        "maxLength": limits.max_url_length,
        "pattern": _URL_PATTERN,
        "description": "Where the webhook goes: an absolute http or https URL with a host. "
        "timerd POSTs to `<url>/<id>` (the id is a new last path segment; a query string "
        "stays at the end). The API accepts any such URL; the pattern shows a plain subset. "
        "`user:password@` in it is sent as HTTP Basic `Authorization` and redacted on the "
        "status page. The outbound policy (`deny_hosts`, `deny_networks`) may refuse a host "
        f"(422). At most {limits.max_url_length} characters.",
        "examples": [HOOK_URL],
    }


def _durations(most: float) -> dict[str, Any]:
    return {
        "hours": {
            "type": "integer",
            "minimum": 0,
            "maximum": math.floor(most / 3600),
            "description": "Whole hours from now; added to `minutes` and `seconds`.",
            "examples": [1],
        },
        "minutes": {
            "type": "integer",
            "minimum": 0,
            "maximum": math.floor(most / 60),
            "description": "Whole minutes from now; added to `hours` and `seconds`.",
            "examples": [30],
        },
        "seconds": {
            "type": "number",
            "minimum": 0,
            "maximum": most,
            "description": "Seconds from now, fractions allowed; added to `hours` and "
            "`minutes`. `0` fires at once.",
            "examples": [30],
        },
    }


def _fire_at(most: float, built_at: float) -> dict[str, Any]:
    # the latest instant surely within the maximum whenever a request arrives
    latest = built_at + most
    last_year = datetime.fromtimestamp(latest, UTC).year - 1
    years = "|".join(str(y) for y in range(1970, max(1970, last_year) + 1))
    return {
        "oneOf": [
            {"type": "number", "minimum": -EPOCH_MAX_S, "maximum": math.floor(latest)},
            {
                "type": "string",
                "pattern": f"^({years})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[Tt]"
                "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?"
                "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$",
            },
        ],
        "description": "Absolute due instant: epoch seconds, or RFC 3339 with an offset "
        "(a string without one is 422); "
        f"at most {human_duration(most)} from now (the bounds shown hold from when this "
        "document was built); a past instant fires at once. Excludes hours, minutes and "
        "seconds.",
        "examples": [FIRE_AT_TEXT, FIRE_AT_EPOCH],
    }


def timer_body(limits: DocumentLimits, built_at: float, *, patch: bool) -> dict[str, Any]:
    """Return a create body (or a PATCH body): `fire_at` or durations, never both, no other field.

    JSON Schema cannot add fields up, so the durations' total (at most `max_delay_s`) is
    stated as: one duration field up to the whole maximum, or several up to a third each.
    """
    most = limits.max_delay_s
    durations = _durations(most)
    thirds = {
        "hours": {"maximum": math.floor(most / 3 / 3600)},
        "minutes": {"maximum": math.floor(most / 3 / 60)},
        "seconds": {"maximum": most / 3},
    }
    no = False
    only = {
        name: {"required": [name], "properties": {o: no for o in durations if o != name}}
        for name in durations
    }
    several = {"properties": thirds, "anyOf": [{"required": [name]} for name in durations]}
    forms: list[dict[str, Any]] = [
        {"required": ["fire_at"], "properties": dict.fromkeys(durations, no)},
        {"properties": {"fire_at": no}, "anyOf": [*only.values(), several]},
    ]
    description = (
        "Say when: `fire_at`, or any of hours, minutes and seconds (counted from now; "
        f'`{{"seconds": 0}}` fires at once), whose total may not exceed {human_duration(most)}. '
        "Unknown fields are refused (422 naming each, with a hint for a near miss)."
    )
    if patch:
        forms.append(
            {"required": ["url"], "properties": {"fire_at": no, **dict.fromkeys(durations, no)}}
        )
        description = (
            "A new time (as a create says it), a new url, or both; `{}` is refused. "
            + description.split(" ", 1)[1]
        )
    # the docs page starts its "try it" body from the example
    example = {"minutes": 30} if patch else {"seconds": 30, "url": HOOK_URL}
    url = _url(limits)
    if patch:
        url = {
            **url,
            "description": "A new webhook URL; the due time stays unless a new "
            "time is given too. " + url["description"],
        }
    return {
        "type": "object",
        "description": description,
        "example": example,
        "additionalProperties": False,
        **({} if patch else {"required": ["url"]}),
        "properties": {"url": url, **durations, "fire_at": _fire_at(most, built_at)},
        "oneOf": forms,
    }


def batch_body(limits: DocumentLimits) -> dict[str, Any]:
    """Return the batch create body: 1 to `batch_max` create bodies."""
    return {
        "type": "object",
        "description": "Timers to create together: all or nothing, in one transaction.",
        "example": {"timers": [{"seconds": 30, "url": HOOK_URL}]},
        "additionalProperties": False,
        "required": ["timers"],
        "properties": {
            "timers": {
                "type": "array",
                "minItems": 1,
                "maxItems": limits.batch_max,
                "items": {"$ref": "#/components/schemas/CreateTimer"},
                "description": f"1 to {limits.batch_max} create bodies. One bad item "
                "refuses the whole batch (422, `errors[].field` like `timers[3].url`).",
                "examples": [
                    [{"seconds": 30, "url": HOOK_URL}, {"fire_at": FIRE_AT_TEXT, "url": HOOK_URL}]
                ],
            }
        },
    }


def request_examples(patch: bool = False) -> dict[str, Any]:
    """Return the named examples of a create (or PATCH) body, as the docs page offers them."""
    if patch:
        return {
            "later": {"summary": "30 minutes from now", "value": {"minutes": 30}},
            "at": {"summary": "At an instant", "value": {"fire_at": FIRE_AT_TEXT}},
            "url": {"summary": "A new URL, same time", "value": {"url": HOOK_URL + "/v2"}},
        }
    return {
        "in": {"summary": "In 30 seconds", "value": {"seconds": 30, "url": HOOK_URL}},
        "at": {"summary": "At an instant", "value": {"fire_at": FIRE_AT_TEXT, "url": HOOK_URL}},
        "now": {"summary": "At once", "value": {"seconds": 0, "url": HOOK_URL}},
    }
