"""The schemas of the status page's JSON views in the OpenAPI document, each field explained.

`webui.schema` puts them in the views' path items; the examples are shaped as the views answer.
"""

from __future__ import annotations

from typing import Any

from timerd import __version__
from timerd.api.openapi_schemas import (
    ATTEMPT_EXAMPLE,
    NODE_EXAMPLE,
    OTHER_ID,
    TIMER_EXAMPLE,
    TIMER_ID,
    TIMER_REF,
    prop,
    prop_or_null,
)
from timerd.browse import GROUP_SAMPLE, SCAN_ROWS

_NOW = TIMER_EXAMPLE["created_at"] + 60.0
_FAILED: dict[str, Any] = {
    **TIMER_EXAMPLE,
    "url": "https://***@example.com/hook",
    "status": "failed",
    "time_left": 0,
    "next_attempt_at": None,
    "attempts": 8,
    "last_status_code": 503,
    "last_error": "HTTP 503",
}


def _timers(description: str, example: dict[str, Any] = TIMER_EXAMPLE) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"$ref": TIMER_REF},
        "description": description + " URL credentials are redacted (`***@`).",
        "examples": [[example]],
    }


def _object(description: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An object schema whose example is made of its properties' examples."""
    example = {name: schema["examples"][0] for name, schema in properties.items()}
    return {
        "type": "object",
        "description": description,
        **extra,
        "properties": properties,
        "examples": [example],
    }


_SCANNED = prop_or_null(
    "integer",
    "Rows looked at, when a URL search or the last-change order (which no index serves) "
    "read at most `scan_limit` of them; null when an index served the page.",
    None,
)
_SCAN_LIMIT = prop("integer", "The most rows one such request looks at.", SCAN_ROWS)
_COUNTS = dict.fromkeys(("pending", "retrying", "fired", "failed", "cancelled"), 0)

SUMMARY = _object(
    "Counts, what fires next, recent outcomes and this process's figures.",
    {
        "nodes": {
            "type": ["object", "null"],
            "description": "With PostgreSQL, the nodes sharing the timer set: `this` node's "
            "id and the `live` ones (as `GET /nodes`); null on SQLite.",
            "properties": {
                "this": prop("string", "The id of the node that answered.", "web-1-4242"),
                "live": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Node"},
                    "description": "The live nodes, as `GET /nodes` lists them.",
                    "examples": [[NODE_EXAMPLE]],
                },
            },
            "examples": [None, {"this": "web-1-4242", "live": [NODE_EXAMPLE]}],
        },
        "now": prop("number", "The daemon's clock, epoch seconds.", _NOW),
        "version": prop("string", "The daemon's version.", __version__),
        "started_at": prop("number", "When this process started, epoch seconds.", _NOW - 3600),
        "counts": {
            "type": "object",
            "description": "Timers in the database by status, counted at most "
            "`counts_every_s` ago.",
            "additionalProperties": {"type": "integer"},
            "examples": [{**_COUNTS, "pending": 1}],
        },
        "counts_every_s": prop("number", "How old `counts` may be, seconds.", 2.0),
        "next": _timers("The live timers due soonest."),
        "recent_fired": _timers(
            "The timers delivered most recently.",
            {**TIMER_EXAMPLE, "status": "fired", "time_left": 0, "next_attempt_at": None},
        ),
        "recent_failed": _timers("The timers failed most recently.", _FAILED),
        "figures": {
            "type": "object",
            "description": "This process's figures since it started (created, deliveries, "
            "lateness and overdue histograms), as `timerd stats --json` gives them, and "
            "`timers`: the counts by status.",
            "examples": [{"created": 1, "heap_size": 1, "in_flight": 0}],
        },
    },
    required=["now", "counts", "next", "recent_fired", "recent_failed", "figures"],
)
PAGE = _object(
    "One page of timers, filtered, searched and sorted.",
    {
        "timers": _timers("The timers of this page."),
        "next_cursor": prop_or_null(
            "string", "Pass it as `cursor` for the next page; null on the last.", None
        ),
        "order": prop(
            "string",
            "The order of the page: by due time (`due`, `due_desc`), last change (`changed`), "
            "or `id` for an id search.",
            "due",
            enum=["due", "due_desc", "changed", "id"],
        ),
        "scanned": _SCANNED,
        "scan_limit": _SCAN_LIMIT,
        "complete": prop(
            "boolean", "False when a scan stopped at `scan_limit` before the end.", True
        ),
    },
    required=["timers", "next_cursor"],
)
_HEADER = _object(
    "One header of the webhook request.",
    {
        "name": prop("string", "The header's name.", "Timerd-Attempt"),
        "value": prop("string", "Its value, or what it will be in `<...>`.", "1"),
        "note": prop("string", "What it means here.", "this timer's next attempt"),
    },
)
_WEBHOOK = _object(
    "The request a receiver gets on this timer's next attempt.",
    {
        "method": prop("string", "Always POST.", "POST"),
        "url": prop(
            "string", "`<url>/<id>`, credentials redacted.", f"https://example.com/hook/{TIMER_ID}"
        ),
        "headers": {
            "type": "array",
            "items": _HEADER,
            "description": "Its headers, signature headers included when it is signed.",
            "examples": [[{"name": "Timerd-Attempt", "value": "1", "note": ""}]],
        },
        "signed": prop("boolean", "Whether the daemon signs webhooks (`signing_secret`).", False),
    },
)
_ACTIONS = _object(
    "Which actions apply to the timer in its status.",
    {
        "fire": prop("boolean", "Fire now (live or failed timers).", True),
        "reschedule": prop("boolean", "Reschedule (live timers).", True),
        "cancel": prop("boolean", "Cancel (live or failed timers).", True),
    },
)
TIMER_VIEW = _object(
    "One timer, its kept attempts and the webhook request it makes.",
    {
        "now": prop("number", "The daemon's clock, epoch seconds.", _NOW),
        "timer": {
            "$ref": TIMER_REF,
            "description": "The timer, URL credentials redacted.",
            "examples": [TIMER_EXAMPLE],
        },
        "attempts": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/Attempt"},
            "description": "Its kept delivery attempts, oldest first.",
            "examples": [[ATTEMPT_EXAMPLE]],
        },
        "attempts_kept": prop("integer", "How many attempts a timer keeps (`attempts_kept`).", 20),
        "webhook": _WEBHOOK,
        "actions": _ACTIONS,
    },
)
_GROUP = _object(
    "Failed timers sharing a host or an error.",
    {
        "key": prop("string", "The host (`host:port`) or the error.", "example.com:443"),
        "count": prop("integer", "How many failed timers share it.", 1),
        "latest_fire_at": prop(
            "number", "The latest due time among them.", TIMER_EXAMPLE["fire_at"]
        ),
        "timers": _timers(f"The first {GROUP_SAMPLE} of them.", _FAILED),
    },
)
GROUPS = _object(
    "The most recently due failed timers, grouped, largest group first.",
    {
        "by": prop("string", "What they are grouped by.", "host", enum=["host", "error"]),
        "groups": {
            "type": "array",
            "items": _GROUP,
            "description": "The groups, largest first.",
            "examples": [_GROUP["examples"]],
        },
        "scanned": prop("integer", "Failed timers looked at.", 1),
        "scan_limit": _SCAN_LIMIT,
    },
)
BY = {"type": "string", "enum": ["host", "error"]}


def fire_again_body(max_ids: int) -> dict[str, Any]:
    """Return the body of "fire again": up to `max_ids` ids, or one failure group."""
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "Either `ids` or `group`, not both.",
        "example": {"ids": [TIMER_ID, OTHER_ID]},
        "oneOf": [{"required": ["ids"]}, {"required": ["group"]}],
        "properties": {
            "ids": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                "minItems": 1,
                "maxItems": max_ids,
                "description": f"Failed timers to fire again, by id (1 to {max_ids}).",
                "examples": [[TIMER_ID, OTHER_ID]],
            },
            "group": {
                "type": "object",
                "additionalProperties": False,
                "required": ["by", "key"],
                "description": "A whole failure group, as `/ui/failures.json` names it.",
                "examples": [{"by": "host", "key": "example.com:443"}],
                "properties": {
                    "by": {**BY, "description": "`host` or `error`.", "examples": ["host"]},
                    "key": prop("string", "The group's key.", "example.com:443"),
                },
            },
        },
    }


FIRED = _object(
    "What fire again did.",
    {
        "asked": prop("integer", "Timers asked for.", 2),
        "fired": prop("integer", "Timers fired again.", 1),
        "skipped": {
            "type": "array",
            "description": "Timers not fired, each with why (not found, not failed, busy).",
            "items": {
                "type": "object",
                "description": "One skipped timer.",
                "properties": {
                    "id": prop("string", "Its id.", OTHER_ID),
                    "reason": prop("string", "Why it was skipped.", "is pending, not failed"),
                },
            },
            "examples": [[{"id": OTHER_ID, "reason": "is pending, not failed"}]],
        },
    },
)
