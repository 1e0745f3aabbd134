"""The OpenAPI 3 document of the API, written by hand and tested against the router."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from timerd import __version__
from timerd.api.webui import ui_paths
from timerd.config import TEN_YEARS_S
from timerd.cursor import CURSOR_PATTERN
from timerd.validation import EPOCH_MAX_S, human_duration

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
    # printable ASCII, 1 to 255 characters; no space at either end (HTTP would strip it)
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]{0,253}[\\x21-\\x7e])?$"},
    "description": "Repeat a create safely: the same key and body replay the first answer.",
}


def _json_body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _ok(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _PROBLEM for code in codes}


"""A page cursor: the last row's `fire_at` as Python writes a float, `~`, then its id."""
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


def _timer_body(limits: DocumentLimits, built_at: float, *, patch: bool) -> dict[str, Any]:
    """A create body (or a PATCH body): `fire_at` or durations, never both, and no other field.

    JSON Schema cannot add fields up, so the durations' total (at most `max_delay_s`) is
    stated as: one duration field up to the whole maximum, or several up to a third each.
    """
    most = limits.max_delay_s
    human = human_duration(most)
    url = {
        "type": "string",
        "format": "uri",
        "maxLength": limits.max_url_length,
        "pattern": _URL_PATTERN,
        "description": "Absolute http or https URL with a host; the webhook is POSTed to "
        "<url>/<id>. The outbound policy (deny_hosts, deny_networks) may refuse a host.",
    }
    durations = {
        "hours": {"type": "integer", "minimum": 0, "maximum": math.floor(most / 3600)},
        "minutes": {"type": "integer", "minimum": 0, "maximum": math.floor(most / 60)},
        "seconds": {"type": "number", "minimum": 0, "maximum": most},
    }
    thirds = {
        "hours": {"maximum": math.floor(most / 3 / 3600)},
        "minutes": {"maximum": math.floor(most / 3 / 60)},
        "seconds": {"maximum": most / 3},
    }
    # the latest instant surely within the maximum whenever a request arrives
    latest = built_at + most
    last_year = datetime.fromtimestamp(latest, UTC).year - 1
    years = "|".join(str(y) for y in range(1970, max(1970, last_year) + 1))
    fire_at = {
        "oneOf": [
            {"type": "number", "minimum": -EPOCH_MAX_S, "maximum": math.floor(latest)},
            {
                "type": "string",
                "pattern": f"^({years})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[Tt]"
                "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?"
                "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$",
            },
        ],
        "description": "Absolute due instant: epoch seconds, or RFC 3339 with an offset; "
        f"at most {human} from now (the bounds shown hold from when this document was "
        "built); a past instant fires at once. Excludes hours, minutes and seconds.",
    }
    no = False
    only = {
        name: {"required": [name], "properties": {o: no for o in durations if o != name}}
        for name in durations
    }
    several = {
        "properties": thirds,
        "anyOf": [{"required": [name]} for name in durations],
    }
    forms: list[dict[str, Any]] = [
        {"required": ["fire_at"], "properties": dict.fromkeys(durations, no)},
        {"properties": {"fire_at": no}, "anyOf": [*only.values(), several]},
    ]
    description = (
        "Say when: `fire_at`, or any of hours, minutes and seconds (counted from now; "
        f'`{{"seconds": 0}}` fires at once), whose total may not exceed {human}. '
        "Unknown fields are refused (422 naming each)."
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
    example = {"minutes": 30} if patch else {"seconds": 30, "url": "https://example.com/hook"}
    return {
        "type": "object",
        "description": description,
        "example": example,
        "additionalProperties": False,
        **({} if patch else {"required": ["url"]}),
        "properties": {"url": url, **durations, "fire_at": fire_at},
        "oneOf": forms,
    }


def _schemas(limits: DocumentLimits, built_at: float) -> dict[str, Any]:
    return {
        "CreateTimer": _timer_body(limits, built_at, patch=False),
        "PatchTimer": _timer_body(limits, built_at, patch=True),
        "CreateBatch": {
            "type": "object",
            "example": {"timers": [{"seconds": 30, "url": "https://example.com/hook"}]},
            "additionalProperties": False,
            "required": ["timers"],
            "properties": {
                "timers": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": limits.batch_max,
                    "items": {"$ref": "#/components/schemas/CreateTimer"},
                }
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
        "Nodes": {
            "type": "object",
            "required": ["nodes"],
            "properties": {
                "nodes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "started_at", "last_seen_at", "version"],
                        "properties": {
                            "id": {"type": "string"},
                            "started_at": {"type": "number"},
                            "last_seen_at": {"type": "number"},
                            "version": {"type": "string"},
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
                    "description": "One status, `live` (pending and retrying) or `all`.",
                    "schema": {
                        "type": "string",
                        "enum": [
                            "pending",
                            "retrying",
                            "fired",
                            "failed",
                            "cancelled",
                            "live",
                            "all",
                        ],
                        "default": "all",
                    },
                },
                # "limit" is added by openapi_document: its maximum is a setting
                {
                    "name": "cursor",
                    "in": "query",
                    "schema": {"type": "string", "pattern": CURSOR_PATTERN},
                    "description": "The next_cursor of the previous page.",
                },
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
    "/nodes": {
        "get": {
            "summary": "The live nodes sharing the timer set (on SQLite: this daemon)",
            "responses": {
                "200": _ok("#/components/schemas/Nodes", "Live nodes, by id"),
                **_errors(503),
            },
        }
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


def _with_list_limit(paths: dict[str, Any], limit_max: int) -> dict[str, Any]:
    listing = paths["/timers"]["get"]
    limit = {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": limit_max, "default": 100},
    }
    listing = {**listing, "parameters": [*listing["parameters"], limit]}
    return {**paths, "/timers": {**paths["/timers"], "get": listing}}


@cache
def openapi_document(limits: DocumentLimits = DocumentLimits()) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document for a daemon with `limits` (built once for each)."""
    paths = _with_list_limit(_PATHS, limits.list_limit_max)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "timerd",
            "version": __version__,
            "description": "Fire HTTP webhooks after a delay. Errors are RFC 9457 problem+json.",
        },
        "paths": {**_with_auth_errors(paths), **ui_paths()},
        # the token is optional: a daemon without one answers every request
        "security": [{"bearer": []}, {}],
        "components": {
            "schemas": _schemas(limits, time.time()),
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
