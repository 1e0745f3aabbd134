"""The API's path items in the OpenAPI document: each operation, its parameters and answers.

The guard answers (401, 403, 408, 413, 415, 421) are added by `with_guard_errors`; here are
the answers each handler gives itself, with what each status means for that operation.
"""

from __future__ import annotations

from typing import Any

from timerd.api.openapi_bodies import request_examples
from timerd.api.openapi_responses import (
    IN_PROGRESS,
    NOT_JSON,
    TOO_MANY,
    UNKNOWN_TIMER,
    guard_ref,
    invalid,
    problem,
)
from timerd.api.openapi_schemas import (
    ATTEMPT_EXAMPLE,
    NODE_EXAMPLE,
    OTHER_ID,
    RETRYING_EXAMPLE,
    TIMER_EXAMPLE,
    TIMER_ID,
)
from timerd.cursor import CURSOR_PATTERN
from timerd.errors import Conflict

_SCHEMAS = "#/components/schemas/"
_UNAVAILABLE = guard_ref("503")
_ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The timer's id, as its create answered it.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    "example": TIMER_ID,
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    # printable ASCII, 1 to 255 characters; no space at either end (HTTP would strip it)
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]{0,253}[\\x21-\\x7e])?$"},
    "description": "Repeat a create safely (1 to 255 printable ASCII characters). The first "
    "request with a key does the work; a repeat with the same key and the same JSON body "
    "within `idempotency_retention_s` (default 24 h, kept across restarts) gets the first "
    "answer again with `Idempotent-Replayed: true` and creates nothing. Keys are scoped "
    "to the route; only a success is replayed. The same key with another body is 422; a "
    "repeat while the first still runs is 409.",
    "example": "order-4711-reminder",
}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer of an earlier request with "
        "the same `Idempotency-Key` (nothing was created this time); absent otherwise.",
        "schema": {"type": "string", "const": "true", "examples": ["true"]},
    }
}
_KEY_REUSED = ("Idempotency-Key", "was used before with a different body")


def _json(ref: str, description: str, example: Any, **extra: Any) -> dict[str, Any]:
    content = {"schema": {"$ref": _SCHEMAS + ref}, "example": example}
    return {"description": description, "content": {"application/json": content}, **extra}


def _body(ref: str, description: str, examples: dict[str, Any]) -> dict[str, Any]:
    content = {"schema": {"$ref": _SCHEMAS + ref}, "examples": examples}
    return {"required": True, "description": description, "content": {"application/json": content}}


def _busy(*states: str) -> dict[str, Any]:
    return problem(
        Conflict,
        "The timer "
        + ", ".join(states)
        + "; or one of its attempts is on the wire right now, or another request is "
        "changing it (retry after `attempt_timeout_s`). A timer only waiting for a free "
        "delivery slot is not in flight.",
        f"timer {TIMER_ID} is being delivered right now",
    )


_CREATE = {
    "summary": "Create a timer",
    "description": "Schedule one webhook: timerd POSTs an empty body to `<url>/<id>` when "
    "the timer is due (see the `timerFired` webhook). The timer is committed to the "
    "database before the 201 is sent, so an acknowledged timer is never lost.",
    "parameters": [_IDEMPOTENCY],
    "requestBody": _body("CreateTimer", "When, and where to.", request_examples()),
    "responses": {
        "201": _json(
            "Created",
            "Created and committed.",
            {"id": TIMER_ID},
            headers={
                "Location": {
                    "description": "The new timer's URL, `/timers/<id>`.",
                    "required": True,
                    "schema": {"type": "string", "examples": [f"/timers/{TIMER_ID}"]},
                },
                **_REPLAYED,
            },
        ),
        "400": NOT_JSON,
        "409": IN_PROGRESS,
        "422": invalid(
            "The body breaks a rule (each broken field is one `errors` entry): an unknown "
            "field, a missing `url` or time, a bad value, `fire_at` together with durations, "
            "a delay over `max_delay_s`, a URL the outbound policy refuses; or the "
            "`Idempotency-Key` is malformed or was used with another body.",
            "secs",
            "is not a known field; did you mean seconds?",
        ),
        "429": TOO_MANY,
        "503": _UNAVAILABLE,
    },
}
_LIST = {
    "summary": "List timers by due time",
    "description": "One page of timers, soonest due first (ties by id). Follow "
    "`next_cursor` for the next page; pages are read from an index, never the whole table.",
    "parameters": [
        {
            "name": "status",
            "in": "query",
            "description": "One status, `live` (pending and retrying) or `all`.",
            "schema": {
                "type": "string",
                "enum": ["pending", "retrying", "fired", "failed", "cancelled", "live", "all"],
                "default": "all",
            },
            "example": "live",
        },
        # "limit" is added by openapi_document: its maximum is a setting
        {
            "name": "cursor",
            "in": "query",
            "schema": {"type": "string", "pattern": CURSOR_PATTERN},
            "description": "The `next_cursor` of the previous page (opaque).",
            "example": f"1800000000.0~{TIMER_ID}",
        },
    ],
    "responses": {
        "200": _json(
            "TimerList",
            "A page of timers.",
            {"timers": [TIMER_EXAMPLE], "next_cursor": f"1800000000.0~{TIMER_ID}"},
        ),
        "422": invalid(
            "A query parameter is wrong: an unknown `status`, a `limit` out of range, or a "
            "`cursor` this API did not make.",
            "limit",
            "must be an integer from 1 to 1000",
        ),
        "503": _UNAVAILABLE,
    },
}
_BATCH = {
    "summary": "Create many timers, all or nothing",
    "description": "Create up to `batch_max` timers in one transaction: all are committed "
    "before the answer, or none is created.",
    "parameters": [_IDEMPOTENCY],
    "requestBody": _body(
        "CreateBatch",
        "The timers, each a create body.",
        {
            "two": {
                "summary": "Two timers",
                "value": {
                    "timers": [
                        {"seconds": 30, "url": "https://example.com/hook"},
                        {"fire_at": "2027-01-15T08:00:00Z", "url": "https://example.com/hook"},
                    ]
                },
            }
        },
    ),
    "responses": {
        "201": _json(
            "CreatedBatch",
            "All created and committed; ids in request order.",
            {"ids": [TIMER_ID, OTHER_ID]},
            headers=_REPLAYED,
        ),
        "400": NOT_JSON,
        "409": IN_PROGRESS,
        "422": invalid(
            "An item breaks a create rule (fields named like `timers[3].url`), `timers` is "
            "missing, empty or longer than `batch_max`, or the `Idempotency-Key` is "
            "malformed or was used with another body. Nothing was created.",
            "timers[1].url",
            "is required",
        ),
        "429": TOO_MANY,
        "503": _UNAVAILABLE,
    },
}
_CANCELLED = {**TIMER_EXAMPLE, "status": "cancelled", "time_left": 0, "next_attempt_at": None}
_ONE = {
    "get": {
        "summary": "Show a timer",
        "description": "The timer in any status, with its time left and last attempt.",
        "responses": {
            "200": _json("Timer", "The timer.", TIMER_EXAMPLE),
            "404": UNKNOWN_TIMER,
            "503": _UNAVAILABLE,
        },
    },
    "delete": {
        "summary": "Cancel a timer",
        "description": "Cancel a pending, retrying or failed timer: it will not be sent. "
        "Cancelling a cancelled timer answers it unchanged.",
        "responses": {
            "200": _json("Timer", "Now cancelled.", _CANCELLED),
            "404": UNKNOWN_TIMER,
            "409": _busy("already fired"),
            "503": _UNAVAILABLE,
        },
    },
    "patch": {
        "summary": "Reschedule a pending or retrying timer",
        "description": "Give a new time (durations from now, or `fire_at`), a new `url`, or "
        "both, with the create rules. The timer becomes `pending` with its attempt count at "
        "0 (its history is kept); a url-only PATCH keeps the due time.",
        "requestBody": _body(
            "PatchTimer", "A new time, a new url, or both.", request_examples(True)
        ),
        "responses": {
            "200": _json("Timer", "Rescheduled.", TIMER_EXAMPLE),
            "400": NOT_JSON,
            "404": UNKNOWN_TIMER,
            "409": _busy("is fired, failed or cancelled (only live timers move)"),
            "422": invalid(
                "The body breaks a rule: `{}`, an unknown field, a bad value, `fire_at` "
                "together with durations, a delay over `max_delay_s`, a refused URL.",
                "body",
                "give a new time (hours/minutes/seconds or fire_at) or url",
            ),
            "503": _UNAVAILABLE,
        },
    },
}
_ASKED_AT = RETRYING_EXAMPLE["next_attempt_at"] + 600.0
_FIRED_AGAIN = {
    **RETRYING_EXAMPLE,
    "status": "pending",
    "fire_at": _ASKED_AT,
    "updated_at": _ASKED_AT,
    "next_attempt_at": _ASKED_AT,
    "attempts": 0,
}
_FIRE = {
    "summary": "Fire a timer now",
    "description": "Make a pending, retrying or failed timer due now, with a fresh attempt "
    "count: it is sent at once (its `Timerd-Fire-At` is this moment). This is how a failed "
    "timer is sent again.",
    "responses": {
        "202": _json("Timer", "Due now; the webhook follows.", _FIRED_AGAIN),
        "404": UNKNOWN_TIMER,
        "409": _busy("already fired, or is cancelled"),
        "503": _UNAVAILABLE,
    },
}
_ATTEMPTS = {
    "summary": "Delivery history, oldest first",
    "description": "Each delivery attempt kept for the timer (the last `attempts_kept`): "
    "when it started, how long it took, the receiver's status or the error, the outcome.",
    "responses": {
        "200": _json("Attempts", "The kept attempts.", {"attempts": [ATTEMPT_EXAMPLE]}),
        "404": UNKNOWN_TIMER,
        "503": _UNAVAILABLE,
    },
}
_METRICS_EXAMPLE = (
    "# HELP timerd_timers_created_total Timers created.\n"
    "# TYPE timerd_timers_created_total counter\n"
    "timerd_timers_created_total 1234.0\n"
)

PATHS: dict[str, Any] = {
    "/timers": {"post": _CREATE, "get": _LIST},
    "/timers/batch": {"post": _BATCH},
    "/timers/{id}": {"parameters": [_ID_PARAM], **_ONE},
    "/timers/{id}/fire": {"parameters": [_ID_PARAM], "post": _FIRE},
    "/timers/{id}/attempts": {"parameters": [_ID_PARAM], "get": _ATTEMPTS},
    "/healthz": {
        "get": {
            "summary": "Liveness and readiness",
            "description": "Answers once the database is open and the event loop turns. "
            "Needs no token and answers any `Host` and `Origin`, so probes just work.",
            "responses": {"200": _json("Health", "Alive and ready.", {"status": "ok"})},
        }
    },
    "/nodes": {
        "get": {
            "summary": "The live nodes sharing the timer set (on SQLite: this daemon)",
            "description": "With PostgreSQL, every `timerd serve` sharing the database that "
            "is alive (a node silent for `node_lease_s` is dropped); on SQLite, this daemon.",
            "responses": {
                "200": _json("Nodes", "Live nodes, by id.", {"nodes": [NODE_EXAMPLE]}),
                "503": _UNAVAILABLE,
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "description": "This node's counters and histograms in the Prometheus text "
            "format; the counts by status are those of the whole database.",
            "responses": {
                "200": {
                    "description": "The metrics.",
                    "content": {
                        "text/plain": {"schema": {"type": "string"}, "example": _METRICS_EXAMPLE}
                    },
                },
                "503": _UNAVAILABLE,
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "description": "The OpenAPI 3.1 document of this daemon, stating its configured "
            "bounds (maximum delay, URL length, batch size, page size).",
            "responses": {
                "200": {
                    "description": "The OpenAPI document.",
                    "content": {
                        "application/json": {
                            "schema": {"type": "object"},
                            "example": {"openapi": "3.1.0", "info": {"title": "timerd"}},
                        }
                    },
                }
            },
        }
    },
}


def list_limit(limit_max: int) -> dict[str, Any]:
    """Return the `limit` query parameter of the listing, up to the configured maximum."""
    return {
        "name": "limit",
        "in": "query",
        "description": f"Timers per page, 1 to {limit_max} (`list_limit_max`).",
        "schema": {"type": "integer", "minimum": 1, "maximum": limit_max, "default": 100},
        "example": min(50, limit_max),
    }
