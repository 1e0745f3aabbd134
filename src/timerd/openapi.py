"""The OpenAPI 3 document of the API, written by hand and tested against the router."""

from __future__ import annotations

from functools import cache
from typing import Any

from timerd import __version__
from timerd.webui import ui_paths

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Repeat a create safely: the same key and body replay the first answer.",
}


def _json_body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _ok(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _PROBLEM for code in codes}


_DURATIONS = {
    "hours": {"type": "integer", "minimum": 0},
    "minutes": {"type": "integer", "minimum": 0},
    "seconds": {"type": "number", "minimum": 0},
    "fire_at": {
        "oneOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
        "description": "Absolute due instant; excludes hours/minutes/seconds.",
    },
}

_SCHEMAS: dict[str, Any] = {
    "CreateTimer": {
        "type": "object",
        "required": ["url"],
        "properties": {"url": {"type": "string", "format": "uri"}, **_DURATIONS},
    },
    "PatchTimer": {
        "type": "object",
        "properties": {"url": {"type": "string", "format": "uri"}, **_DURATIONS},
    },
    "CreateBatch": {
        "type": "object",
        "required": ["timers"],
        "properties": {
            "timers": {"type": "array", "items": {"$ref": "#/components/schemas/CreateTimer"}}
        },
    },
    "Created": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
    "CreatedBatch": {
        "type": "object",
        "required": ["ids"],
        "properties": {"ids": {"type": "array", "items": {"type": "string"}}},
    },
    "Timer": {
        "type": "object",
        "required": ["id", "time_left", "status", "url", "fire_at", "created_at", "attempts"],
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["pending", "retrying", "fired", "failed", "cancelled"],
            },
            "time_left": {"type": "integer", "minimum": 0},
            "fire_at": {"type": "number"},
            "created_at": {"type": "number"},
            "updated_at": {"type": "number"},
            "next_attempt_at": {"type": ["number", "null"]},
            "fired_at": {"type": ["number", "null"]},
            "attempts": {"type": "integer", "minimum": 0},
            "last_status_code": {"type": ["integer", "null"]},
            "last_error": {"type": ["string", "null"]},
        },
    },
    "TimerList": {
        "type": "object",
        "required": ["timers", "next_cursor"],
        "properties": {
            "timers": {"type": "array", "items": {"$ref": "#/components/schemas/Timer"}},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "Attempts": {
        "type": "object",
        "required": ["attempts"],
        "properties": {
            "attempts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "attempt": {"type": "integer"},
                        "started_at": {"type": "number"},
                        "duration_ms": {"type": "number"},
                        "status_code": {"type": ["integer", "null"]},
                        "error": {"type": ["string", "null"]},
                        "outcome": {"type": "string", "enum": ["delivered", "retry", "failed"]},
                    },
                },
            }
        },
    },
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    },
}

_PATHS: dict[str, Any] = {
    "/timers": {
        "post": {
            "summary": "Create a timer",
            "parameters": [_IDEMPOTENCY],
            "requestBody": _json_body("#/components/schemas/CreateTimer"),
            "responses": {
                "201": _ok("#/components/schemas/Created", "Created and committed"),
                **_errors(400, 409, 413, 415, 422, 503),
            },
        },
        "get": {
            "summary": "List timers by due time",
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "schema": {
                        "type": "string",
                        "enum": ["pending", "retrying", "fired", "failed", "cancelled", "all"],
                    },
                },
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {"200": _ok("#/components/schemas/TimerList", "A page"), **_errors(422)},
        },
    },
    "/timers/batch": {
        "post": {
            "summary": "Create many timers, all or nothing",
            "parameters": [_IDEMPOTENCY],
            "requestBody": _json_body("#/components/schemas/CreateBatch"),
            "responses": {
                "201": _ok("#/components/schemas/CreatedBatch", "All created and committed"),
                **_errors(400, 409, 413, 415, 422, 503),
            },
        }
    },
    "/timers/{id}": {
        "parameters": [_ID_PARAM],
        "get": {
            "summary": "Show a timer",
            "responses": {"200": _ok("#/components/schemas/Timer", "The timer"), **_errors(404)},
        },
        "delete": {
            "summary": "Cancel a timer",
            "responses": {
                "200": _ok("#/components/schemas/Timer", "Now cancelled"),
                **_errors(404, 409),
            },
        },
        "patch": {
            "summary": "Reschedule a pending or retrying timer",
            "requestBody": _json_body("#/components/schemas/PatchTimer"),
            "responses": {
                "200": _ok("#/components/schemas/Timer", "Rescheduled"),
                **_errors(400, 404, 409, 413, 415, 422, 503),
            },
        },
    },
    "/timers/{id}/fire": {
        "parameters": [_ID_PARAM],
        "post": {
            "summary": "Fire a timer now",
            "responses": {
                "202": _ok("#/components/schemas/Timer", "Due now"),
                **_errors(404, 409),
            },
        },
    },
    "/timers/{id}/attempts": {
        "parameters": [_ID_PARAM],
        "get": {
            "summary": "Delivery history, oldest first",
            "responses": {"200": _ok("#/components/schemas/Attempts", "History"), **_errors(404)},
        },
    },
    "/healthz": {
        "get": {"summary": "Liveness and readiness", "responses": {"200": {"description": "OK"}}}
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "responses": {
                "200": {
                    "description": "Metrics",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/openapi.json": {
        "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}
    },
}


@cache
def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document (built once)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "timerd",
            "version": __version__,
            "description": "Fire HTTP webhooks after a delay. Errors are RFC 9457 problem+json.",
        },
        "paths": {**_with_auth_errors(_PATHS), **ui_paths()},
        # the token is optional: a daemon without one answers every request
        "security": [{"bearer": []}, {}],
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Problem": {
                    "description": "An error",
                    "content": {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    },
                }
            },
        },
    }


_OPEN = {"/healthz"}
_CREATES = {("/timers", "post"), ("/timers/batch", "post")}


def _with_auth_errors(paths: dict[str, Any]) -> dict[str, Any]:
    """Add 401 (token required) to every guarded operation and 429 (too many) to creates."""
    out: dict[str, Any] = {}
    for path, item in paths.items():
        out[path] = dict(item)
        for method, op in item.items():
            if method == "parameters":
                continue
            responses = dict(op["responses"])
            if path not in _OPEN:
                responses["401"] = _PROBLEM
            else:
                out[path][method] = {**op, "security": []}
            if (path, method) in _CREATES:
                responses["429"] = _PROBLEM
            out[path][method] = {**out[path][method], "responses": responses}
    return out
