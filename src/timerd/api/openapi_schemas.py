"""The component schemas of the OpenAPI document: what the API answers, each field explained.

The request bodies live in `openapi_bodies`; the examples here are shaped exactly as the
handlers answer (a test validates each against its schema).
"""

from __future__ import annotations

from typing import Any

from timerd import __version__
from timerd.api.openapi_bodies import (
    FIRE_AT_EPOCH,
    HOOK_URL,
    DocumentLimits,
    batch_body,
    timer_body,
)

TIMER_ID = "P88mRWNe9I-aQmECsl3bc9Z"
OTHER_ID = "P88mRWN5C9g-xkrFLF7OQce"
TIMER_REF = "#/components/schemas/Timer"
_CREATED_AT = FIRE_AT_EPOCH - 1800.0

TIMER_EXAMPLE: dict[str, Any] = {
    "id": TIMER_ID,
    "url": HOOK_URL,
    "status": "pending",
    "time_left": 1800,
    "fire_at": float(FIRE_AT_EPOCH),
    "created_at": _CREATED_AT,
    "updated_at": _CREATED_AT,
    "next_attempt_at": float(FIRE_AT_EPOCH),
    "fired_at": None,
    "attempts": 0,
    "last_status_code": None,
    "last_error": None,
}
RETRYING_EXAMPLE: dict[str, Any] = {
    **TIMER_EXAMPLE,
    "status": "retrying",
    "time_left": 0,
    "updated_at": FIRE_AT_EPOCH + 0.21,
    "next_attempt_at": FIRE_AT_EPOCH + 1.7,
    "attempts": 1,
    "last_status_code": 503,
    "last_error": "HTTP 503",
}
NODE_EXAMPLE: dict[str, Any] = {
    "id": "web-1-4242",
    "started_at": _CREATED_AT - 86400,
    "last_seen_at": _CREATED_AT + 60.5,
    "version": __version__,
}
ATTEMPT_EXAMPLE: dict[str, Any] = {
    "attempt": 1,
    "started_at": FIRE_AT_EPOCH + 0.002,
    "duration_ms": 204.518,
    "status_code": 503,
    "error": "HTTP 503",
    "outcome": "retry",
}


def prop_or_null(kind: str, description: str, example: Any) -> dict[str, Any]:
    """Return a described property of type `kind` or null, with an example."""
    return {"type": [kind, "null"], "description": description, "examples": [example]}


def prop(kind: str, description: str, example: Any, **extra: Any) -> dict[str, Any]:
    """Return a described property of type `kind` (and `extra` keywords), with an example."""
    return {"type": kind, "description": description, "examples": [example], **extra}


_TIMER_PROPERTIES: dict[str, Any] = {
    "id": prop(
        "string",
        "The timer's id: opaque, URL-safe and unguessable; the last path segment of its "
        "webhook and its `webhook-id`.",
        TIMER_ID,
    ),
    "url": prop("string", "The webhook URL as given; the request goes to `<url>/<id>`.", HOOK_URL),
    "status": prop(
        "string",
        "`pending`: waiting for its time (or for a free delivery slot); `retrying`: an "
        "attempt failed and another is due at `next_attempt_at`; `fired`: a receiver "
        "answered 2xx; `failed`: every allowed attempt failed (fire it again by hand); "
        "`cancelled`: by DELETE.",
        "pending",
        enum=["pending", "retrying", "fired", "failed", "cancelled"],
    ),
    "time_left": prop(
        "integer",
        "Whole seconds until due, rounded up while pending; 0 once due, retrying, fired, "
        "failed or cancelled.",
        1800,
        minimum=0,
    ),
    "fire_at": prop(
        "number",
        "The due instant, epoch seconds: the one asked for (a manual fire sets it to when "
        "the fire was asked). Webhooks carry it as `Timerd-Fire-At`.",
        FIRE_AT_EPOCH,
    ),
    "created_at": prop("number", "When it was created, epoch seconds.", _CREATED_AT),
    "updated_at": prop("number", "When its state last changed, epoch seconds.", _CREATED_AT),
    "next_attempt_at": prop_or_null(
        "number",
        "When its next attempt is due, epoch seconds: `fire_at` while pending, later while "
        "retrying; null once fired, failed or cancelled.",
        FIRE_AT_EPOCH,
    ),
    "fired_at": prop_or_null(
        "number", "When a receiver acknowledged it (2xx), epoch seconds; null until then.", None
    ),
    "attempts": prop(
        "integer",
        "Delivery attempts since it was created or last rescheduled or fired by hand "
        "(those start the count over); the next webhook's `Timerd-Attempt` is this plus one.",
        0,
        minimum=0,
    ),
    "last_status_code": prop_or_null(
        "integer",
        "The HTTP status of the last attempt's answer; null before any attempt, or when "
        "none came (timeout, connection error).",
        503,
    ),
    "last_error": prop_or_null(
        "string",
        "Why the last attempt did not deliver (`HTTP 503`, `timed out after 10 s`, "
        "`cannot connect to host:port: ...`); null when none failed or it was delivered.",
        "HTTP 503",
    ),
}


def _timer() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A timer as the API shows it.",
        "required": list(_TIMER_PROPERTIES),
        "properties": _TIMER_PROPERTIES,
        "example": TIMER_EXAMPLE,
    }


def _attempt() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "One delivery attempt of a timer.",
        "required": list(ATTEMPT_EXAMPLE),
        "properties": {
            "attempt": prop("integer", "Its number, 1 for the first try.", 1, minimum=1),
            "started_at": prop(
                "number", "When the request started, epoch seconds.", FIRE_AT_EPOCH + 0.002
            ),
            "duration_ms": prop(
                "number", "How long it took until the answer (or the error), ms.", 204.518
            ),
            "status_code": prop_or_null(
                "integer", "The receiver's HTTP status; null when no answer came.", 503
            ),
            "error": prop_or_null(
                "string", "Why it did not deliver; null when it delivered.", "HTTP 503"
            ),
            "outcome": prop(
                "string",
                "`delivered` (2xx), `retry` (another attempt is scheduled) or `failed` "
                "(the last allowed attempt, or a destination the outbound policy blocks).",
                "retry",
                enum=["delivered", "retry", "failed"],
            ),
        },
        "example": ATTEMPT_EXAMPLE,
    }


def _problem() -> dict[str, Any]:
    field_error = {
        "type": "object",
        "description": "One broken rule, named by the field that broke it.",
        "required": ["field", "message"],
        "properties": {
            "field": prop(
                "string",
                "The field: a body field (`seconds`, `timers[3].url`), a query parameter, "
                "`body` for the body as a whole, or a header (`Idempotency-Key`).",
                "secs",
            ),
            "message": prop(
                "string", "What is wrong with it.", "is not a known field; did you mean seconds?"
            ),
        },
    }
    return {
        "type": "object",
        "description": "An RFC 9457 problem: every error of the API is one.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": prop(
                "string",
                "What kind of error: `urn:timerd:problem:<slug>`, stable for programs.",
                "urn:timerd:problem:validation",
            ),
            "title": prop("string", "The kind of error in words.", "Validation failed"),
            "status": prop("integer", "The HTTP status of the answer.", 422),
            "detail": prop(
                "string",
                "What went wrong this time, for people.",
                "secs: is not a known field; did you mean seconds?",
            ),
            "errors": {
                "type": "array",
                "items": field_error,
                "description": "Validation errors (422 only): one entry per broken field.",
                "examples": [
                    [{"field": "secs", "message": "is not a known field; did you mean seconds?"}]
                ],
            },
        },
    }


def _page() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "One page of timers by due time.",
        "required": ["timers", "next_cursor"],
        "properties": {
            "timers": {
                "type": "array",
                "items": {"$ref": TIMER_REF},
                "description": "The timers of this page, soonest due first.",
                "examples": [[TIMER_EXAMPLE]],
            },
            "next_cursor": prop_or_null(
                "string",
                "Pass it as `cursor` for the next page; null on the last page.",
                f"{float(FIRE_AT_EPOCH)!r}~{TIMER_ID}",
            ),
        },
    }


def schemas(limits: DocumentLimits, built_at: float) -> dict[str, Any]:
    """Return the document's component schemas for a daemon with `limits`."""
    return {
        "CreateTimer": timer_body(limits, built_at, patch=False),
        "PatchTimer": timer_body(limits, built_at, patch=True),
        "CreateBatch": batch_body(limits),
        "Created": {
            "type": "object",
            "description": "The new timer's id (its URL is in the `Location` header).",
            "required": ["id"],
            "properties": {"id": prop("string", "The new timer's id.", TIMER_ID)},
        },
        "CreatedBatch": {
            "type": "object",
            "description": "The new timers' ids.",
            "required": ["ids"],
            "properties": {
                "ids": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "One id per item, in request order.",
                    "examples": [[TIMER_ID, OTHER_ID]],
                }
            },
        },
        "Timer": _timer(),
        "TimerList": _page(),
        "Attempt": _attempt(),
        "Attempts": {
            "type": "object",
            "description": "A timer's kept delivery history.",
            "required": ["attempts"],
            "properties": {
                "attempts": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Attempt"},
                    "description": "Oldest first; the last `attempts_kept` of the timer "
                    "(older ones are dropped).",
                    "examples": [[ATTEMPT_EXAMPLE]],
                }
            },
        },
        "Node": {
            "type": "object",
            "description": "One live node: a `timerd serve` process sharing the timer set.",
            "required": ["id", "started_at", "last_seen_at", "version"],
            "properties": {
                "id": prop(
                    "string",
                    "Its id (setting `node_id`, default `<hostname>-<pid>`), sent on each "
                    "webhook it delivers as `Timerd-Node`.",
                    NODE_EXAMPLE["id"],
                ),
                "started_at": prop(
                    "number", "When it started, epoch seconds.", NODE_EXAMPLE["started_at"]
                ),
                "last_seen_at": prop(
                    "number",
                    "Its last heartbeat, epoch seconds; a node silent for `node_lease_s` is "
                    "dropped.",
                    NODE_EXAMPLE["last_seen_at"],
                ),
                "version": prop("string", "Its timerd version.", NODE_EXAMPLE["version"]),
            },
        },
        "Nodes": {
            "type": "object",
            "description": "The live nodes.",
            "required": ["nodes"],
            "properties": {
                "nodes": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Node"},
                    "description": "Every live node, by id; on SQLite, this daemon alone.",
                    "examples": [[NODE_EXAMPLE]],
                }
            },
        },
        "Health": {
            "type": "object",
            "description": "The daemon is up, its database open and its event loop turning.",
            "required": ["status"],
            "properties": {"status": prop("string", "Always `ok`.", "ok", const="ok")},
        },
        "Problem": _problem(),
    }
