"""The OpenAPI path items of the pages, their static files and their JSON views.

The guard answers (401, 403, 408, 413, 415, 421) are added with the API's by
`openapi_responses.with_guard_errors`; here are those the views give themselves.
"""

from __future__ import annotations

from typing import Any

from timerd.api.openapi_responses import NOT_JSON, UNKNOWN_TIMER, guard_ref, invalid, problem
from timerd.api.openapi_schemas import OTHER_ID, TIMER_ID
from timerd.api.openapi_views import (
    BY,
    FIRED,
    GROUPS,
    PAGE,
    SUMMARY,
    TIMER_VIEW,
    fire_again_body,
)
from timerd.api.webui.pages import ID_PATTERN, STATIC_PREFIX, VENDOR_PREFIX
from timerd.api.webui.views import FIRE_AGAIN_MAX, PAGE_MAX
from timerd.browse import SCAN_ROWS
from timerd.cursor import CURSOR_PATTERN
from timerd.errors import NotFound

_UNAVAILABLE = guard_ref("503")


def _html(summary: str, description: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": description + " The page holds no data (it needs no token); its "
        "scripts read the JSON views below.",
        "tags": ["ui"],
        "responses": {
            "200": {
                "description": "The HTML page.",
                "content": {"text/html": {"example": "<!doctype html>..."}},
            }
        },
    }


def _json_get(
    summary: str, description: str, schema: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": summary + ".",
            "content": {"application/json": {"schema": schema, "example": schema["examples"][0]}},
        },
        "503": _UNAVAILABLE,
    }
    responses.update(extra.pop("responses", {}))
    return {
        "get": {
            "summary": summary,
            "description": description,
            "tags": ["ui"],
            "responses": responses,
            **extra,
        }
    }


def _query(name: str, description: str, schema: dict[str, Any], example: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": schema,
        "example": example,
    }


_ID_PARAM: dict[str, Any] = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The timer's id.",
    "schema": {"type": "string", "pattern": "^" + ID_PATTERN + "$"},
    "example": TIMER_ID,
}
_FILE_PARAM: dict[str, Any] = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The file's name.",
    "schema": {"type": "string"},
    "example": "status.js",
}
_STATUS_FILTER: dict[str, Any] = {
    "type": "string",
    "enum": ["pending", "retrying", "fired", "failed", "cancelled", "live", "all"],
}
_FILE: dict[str, Any] = {
    "parameters": [_FILE_PARAM],
    "get": {
        "tags": ["ui"],
        "responses": {
            "200": {"description": "The file (JavaScript, CSS or SVG)."},
            "404": problem(NotFound, "No such file.", "No route /ui/static/nope.js."),
        },
    },
}


def _timer_page() -> dict[str, Any]:
    page = _html("One timer's page", "A timer, its attempts, its webhook, its actions.")
    not_an_id = problem(
        NotFound,
        "Not an id. The page exists for any id; its data says whether the timer does.",
        "No route /ui/timers/no such id.",
    )
    return {**page, "responses": {**page["responses"], "404": not_an_id}}


def ui_paths() -> dict[str, Any]:
    """Return the OpenAPI path items of the pages, their assets and their JSON views."""
    return {
        "/": {"get": _html("The status page", "Counts, what fires next, recent failures.")},
        "/ui": {"get": _html("The status page", "The same page as `/`.")},
        "/ui/timers/{id}": {
            "parameters": [_ID_PARAM],
            "get": _timer_page(),
        },
        "/docs": {"get": _html("These API docs", "This document, rendered by Swagger UI.")},
        "/ui/summary.json": _json_get(
            "What the status page shows, in one read",
            "Counts by status, the next timers, recent outcomes and this process's figures.",
            SUMMARY,
        ),
        "/ui/timers.json": _json_get(
            "One page of timers: filtered, searched, sorted (URLs redacted)",
            "A page of the status page's lists; an `id` search ignores `status` and `sort`.",
            PAGE,
            parameters=[
                _query("status", "One status, `live` or `all`", _STATUS_FILTER, "failed"),
                _query(
                    "sort",
                    "By due time, soonest (`due`) or latest (`due_desc`) first, or by last "
                    "change (`changed`)",
                    {"type": "string", "enum": ["due", "due_desc", "changed"]},
                    "due",
                ),
                _query(
                    "id",
                    "An id or the start of one (every status, in id order)",
                    {"type": "string", "pattern": "^[A-Za-z0-9_-]{0,64}$"},
                    "P88mRWN",
                ),
                _query(
                    "url",
                    "A part of the (redacted) URL",
                    {"type": "string", "maxLength": 200},
                    "example.com",
                ),
                _query(
                    "limit",
                    "Timers per page",
                    {"type": "integer", "minimum": 1, "maximum": PAGE_MAX, "default": 50},
                    50,
                ),
                _query(
                    "cursor",
                    "`next_cursor` of the page before",
                    {"type": "string", "pattern": CURSOR_PATTERN},
                    f"1800000000.0~{TIMER_ID}",
                ),
            ],
            responses={
                "422": invalid(
                    "A parameter is wrong: `status`, `sort`, `limit`, an `id` with "
                    "characters no id has, a `url` over 200 characters, or a foreign `cursor`.",
                    "sort",
                    "must be one of due, due_desc, changed",
                )
            },
        ),
        "/ui/timers/{id}.json": {
            "parameters": [_ID_PARAM],
            **_json_get(
                "One timer, its kept attempts and the webhook request it makes",
                "What a timer's page shows, URL credentials redacted.",
                TIMER_VIEW,
                responses={"404": UNKNOWN_TIMER},
            ),
        },
        "/ui/failures.json": _json_get(
            "Recent failed timers grouped by host or by error",
            f"The last {SCAN_ROWS} failed timers by due time, grouped; each group can be fired "
            "again at once.",
            GROUPS,
            parameters=[_query("by", "Grouping", BY, "host")],
            responses={
                "422": invalid("`by` is neither host nor error.", "by", "must be host or error")
            },
        ),
        "/ui/failures/fire": {
            "post": {
                "summary": "Fire again failed timers: some by id, or a whole group",
                "description": "Each failed timer named (or in the group) is made due now, "
                "as `POST /timers/{id}/fire` does; others are skipped with the reason.",
                "tags": ["ui"],
                "requestBody": {
                    "required": True,
                    "description": "Which timers.",
                    "content": {"application/json": {"schema": fire_again_body(FIRE_AGAIN_MAX)}},
                },
                "responses": {
                    "200": {
                        "description": "How many fired; which were skipped and why.",
                        "content": {
                            "application/json": {
                                "schema": FIRED,
                                "example": {
                                    "asked": 2,
                                    "fired": 1,
                                    "skipped": [
                                        {"id": OTHER_ID, "reason": "is pending, not failed"}
                                    ],
                                },
                            }
                        },
                    },
                    "400": NOT_JSON,
                    "422": invalid(
                        "Neither or both of `ids` and `group`, an unknown field, bad ids "
                        f"(1 to {FIRE_AGAIN_MAX}), or a malformed group.",
                        "ids",
                        "give either ids or group",
                    ),
                    "503": _UNAVAILABLE,
                },
            }
        },
        STATIC_PREFIX + "{name}": _file("A script, stylesheet or icon of the pages"),
        VENDOR_PREFIX + "{name}": _file("A pinned third-party file of the pages (Swagger UI)"),
    }


def _file(summary: str) -> dict[str, Any]:
    return {
        **_FILE,
        "get": {
            **_FILE["get"],
            "summary": summary,
            "description": summary + ", served from the package; needs no token.",
        },
    }
