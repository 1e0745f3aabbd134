"""The OpenAPI path items of the pages, their static files and their JSON views."""

from __future__ import annotations

from typing import Any

from timerd.api.webui.pages import STATIC_PREFIX, VENDOR_PREFIX
from timerd.api.webui.views import FIRE_AGAIN_MAX, PAGE_MAX
from timerd.cursor import CURSOR_PATTERN

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_TIMERS = {"type": "array", "items": {"$ref": "#/components/schemas/Timer"}}


def _html(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": ["ui"],
        "responses": {"200": {"description": "An HTML page", "content": {"text/html": {}}}},
    }


def _json_get(summary: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": summary, "content": {"application/json": {"schema": schema}}}
    }
    responses.update(extra.pop("responses", {}))
    return {"get": {"summary": summary, "tags": ["ui"], "responses": responses, **extra}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema}


_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_FILE_PARAM = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}

_SUMMARY = {
    "type": "object",
    "required": ["now", "counts", "next", "recent_fired", "recent_failed", "figures"],
    "properties": {
        "now": {"type": "number", "description": "The daemon's clock, epoch seconds."},
        "version": {"type": "string"},
        "started_at": {"type": "number", "description": "When this process started."},
        "counts": {
            "type": "object",
            "description": "Timers in the database by status, counted at most "
            "`counts_every_s` ago.",
            "additionalProperties": {"type": "integer"},
        },
        "counts_every_s": {"type": "number"},
        "next": _TIMERS,
        "recent_fired": _TIMERS,
        "recent_failed": _TIMERS,
        "figures": {"type": "object", "description": "The figures of `timerd stats --json`."},
    },
}
_PAGE = {
    "type": "object",
    "required": ["timers", "next_cursor"],
    "properties": {
        "timers": _TIMERS,
        "next_cursor": {"type": ["string", "null"]},
        "order": {"type": "string", "enum": ["due", "due_desc", "changed", "id"]},
        "scanned": {
            "type": ["integer", "null"],
            "description": "Rows looked at, when a URL search or the last-change order "
            "(which no index serves) read at most `scan_limit` of them.",
        },
        "scan_limit": {"type": "integer"},
        "complete": {"type": "boolean"},
    },
}
_TIMER_VIEW = {
    "type": "object",
    "properties": {
        "now": {"type": "number"},
        "timer": {"$ref": "#/components/schemas/Timer"},
        "attempts": {"type": "array", "items": {"type": "object"}},
        "attempts_kept": {"type": "integer"},
        "webhook": {"type": "object", "description": "The request a receiver gets."},
        "actions": {"type": "object", "additionalProperties": {"type": "boolean"}},
    },
}
_GROUPS = {
    "type": "object",
    "properties": {
        "by": {"type": "string", "enum": ["host", "error"]},
        "groups": {"type": "array", "items": {"type": "object"}},
        "scanned": {"type": "integer"},
        "scan_limit": {"type": "integer"},
    },
}
_FIRE_AGAIN = {
    "description": "Either `ids` or `group`, not both.",
    "oneOf": [
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["ids"],
            "properties": {
                "ids": {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                    "minItems": 1,
                    "maxItems": FIRE_AGAIN_MAX,
                }
            },
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["group"],
            "properties": {
                "group": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["by", "key"],
                    "properties": {
                        "by": {"type": "string", "enum": ["host", "error"]},
                        "key": {"type": "string"},
                    },
                }
            },
        },
    ],
}
_STATUS_FILTER = {
    "type": "string",
    "enum": ["pending", "retrying", "fired", "failed", "cancelled", "live", "all"],
}


def ui_paths() -> dict[str, Any]:
    """Return the OpenAPI path items of the pages, their assets and their JSON views."""
    bad = {"422": _PROBLEM}
    return {
        "/": {"get": _html("The status page")},
        "/ui": {"get": _html("The status page")},
        "/ui/timers/{id}": {
            "parameters": [_ID_PARAM],
            "get": {
                **_html("One timer's page"),
                "responses": {
                    **_html("One timer's page")["responses"],
                    "404": {**_PROBLEM, "description": "Not a timer id (the page exists for any)"},
                },
            },
        },
        "/docs": {"get": _html("These API docs")},
        "/ui/summary.json": _json_get("What the status page shows, in one read", _SUMMARY),
        "/ui/timers.json": _json_get(
            "One page of timers: filtered, searched, sorted (URLs redacted)",
            _PAGE,
            parameters=[
                _query("status", "One status, `live` or `all`", _STATUS_FILTER),
                _query("sort", "Order", {"type": "string", "enum": ["due", "due_desc", "changed"]}),
                _query(
                    "id",
                    "An id or the start of one (every status, in id order)",
                    {"type": "string", "pattern": "^[A-Za-z0-9_-]{0,64}$"},
                ),
                _query(
                    "url",
                    "A part of the (redacted) URL",
                    {"type": "string", "maxLength": 200},
                ),
                _query(
                    "limit",
                    "Timers per page",
                    {"type": "integer", "minimum": 1, "maximum": PAGE_MAX},
                ),
                _query(
                    "cursor",
                    "`next_cursor` of the page before",
                    {"type": "string", "pattern": CURSOR_PATTERN},
                ),
            ],
            responses=bad,
        ),
        "/ui/timers/{id}.json": {
            "parameters": [_ID_PARAM],
            **_json_get(
                "One timer, its kept attempts and the webhook request it makes",
                _TIMER_VIEW,
                responses={"404": _PROBLEM},
            ),
        },
        "/ui/failures.json": _json_get(
            "Recent failed timers grouped by host or by error",
            _GROUPS,
            parameters=[_query("by", "Grouping", {"type": "string", "enum": ["host", "error"]})],
            responses=bad,
        ),
        "/ui/failures/fire": {
            "post": {
                "summary": "Fire again failed timers: some by id, or a whole group",
                "tags": ["ui"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _FIRE_AGAIN}},
                },
                "responses": {
                    "200": {"description": "How many fired; which were skipped and why"},
                    "400": _PROBLEM,
                    "415": _PROBLEM,
                    "422": _PROBLEM,
                },
            }
        },
        STATIC_PREFIX + "{name}": {
            "parameters": [_FILE_PARAM],
            "get": {
                "summary": "A script or stylesheet of the pages",
                "tags": ["ui"],
                "responses": {"200": {"description": "The file"}, "404": _PROBLEM},
            },
        },
        VENDOR_PREFIX + "{name}": {
            "parameters": [_FILE_PARAM],
            "get": {
                "summary": "A pinned third-party file of the pages (the OpenAPI viewer)",
                "tags": ["ui"],
                "responses": {"200": {"description": "The file"}, "404": _PROBLEM},
            },
        },
    }
