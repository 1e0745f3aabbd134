"""The error answers of the OpenAPI document: each a problem+json body with its meaning.

Statuses whose meaning depends on the operation (400, 404, 409, 422, 429) are written where
the operation is; those of the guards in front of every handler (Origin, Host, token, body
deadline, body size, content type) and of the store (503) are shared components, added to
each operation they can answer by `with_guard_errors`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from timerd.api.auth import OPEN_PATHS
from timerd.api.origin_guard import EXEMPT_PATHS, ForbiddenOrigin, MisdirectedRequest
from timerd.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    TimerdError,
    TooManyTimers,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    ValidationFailed,
)

PROBLEM_TYPE = "application/problem+json"
_PROBLEM_REF = "#/components/schemas/Problem"
_TIMEOUT_SLUG, _TIMEOUT_TITLE = "request-timeout", "Request timeout"


def _example(kind: type[TimerdError], detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"urn:timerd:problem:{kind.type_slug}",
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        **extra,
    }


def problem(
    kind: type[TimerdError],
    meaning: str,
    detail: str,
    *,
    headers: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Return a problem+json response of `kind`: `meaning` says when, `detail` an example."""
    response: dict[str, Any] = {
        "description": meaning,
        "content": {
            PROBLEM_TYPE: {
                "schema": {"$ref": _PROBLEM_REF},
                "example": _example(kind, detail, **extra),
            }
        },
    }
    if headers:
        response["headers"] = headers
    return response


def invalid(meaning: str, field: str, message: str) -> dict[str, Any]:
    """Return a 422 response: `meaning` says which rules; one example field error."""
    errors = [{"field": field, "message": message}]
    return problem(ValidationFailed, meaning, f"{field}: {message}", errors=errors)


NOT_JSON = problem(
    BadRequest,
    "The body is not JSON, or not a JSON object.",
    "The body is not valid JSON.",
)
UNKNOWN_TIMER = problem(
    NotFound,
    "No timer has this id (an unknown or malformed id).",
    "no timer P88mRWNe9I-aQmECsl3bc9Z",
)
TOO_MANY = problem(
    TooManyTimers,
    "`max_pending` live timers are already waiting: nothing was created. Wait for some "
    "to fire, or cancel some.",
    "timerd holds about 10000000 pending timers and max_pending is 10000000; wait for "
    "some to fire, or cancel some",
)
IN_PROGRESS = problem(
    Conflict,
    "A request with the same `Idempotency-Key` is still being processed: retry it once "
    "that one has answered (then it replays that answer).",
    "a request with this Idempotency-Key is still being processed",
)
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 0, "examples": [1]},
    }
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": 'The bearer challenge: `Bearer realm="timerd"`, with '
        '`error="invalid_token"` when a wrong token was sent.',
        "schema": {"type": "string", "examples": ['Bearer realm="timerd"']},
    }
}

GUARD_RESPONSES: dict[str, Any] = {
    "Unauthorized": problem(
        Unauthorized,
        "Only when the daemon has an API token (`token`, `token_file`): the request does "
        "not carry it as `Authorization: Bearer <token>`, or carries a wrong one.",
        "Send the API token as 'Authorization: Bearer <token>'.",
        headers=_WWW_AUTHENTICATE,
    ),
    "ForbiddenOrigin": problem(
        ForbiddenOrigin,
        "The request has an `Origin` header (a web page sent it) that names neither "
        "timerd itself (an http/https origin with the request's own host and port) nor a "
        "host in `allowed_hosts`; `Origin: null` never passes. timerd grants no CORS, so "
        "a page the user visits cannot use the API. Holds with or without a token.",
        "Requests from web pages of another origin ('https://evil.example') are refused; "
        "timerd grants no CORS.",
    ),
    "MisdirectedRequest": problem(
        MisdirectedRequest,
        "Only without an API token: the `Host` header is not a loopback name or address "
        "(`localhost`, 127.0.0.0/8, [::1]), the address timerd listens on, or a name in "
        "`allowed_hosts` (this stops DNS rebinding from making a web page an API client).",
        "timerd does not answer for Host 'rebind.example:8000': without an API token it "
        "answers only loopback names, its own address and the names in allowed_hosts.",
    ),
    "RequestTimeout": {
        "description": "The request body did not arrive within `request_body_timeout_s` "
        "of its headers; the connection is closed.",
        "content": {
            PROBLEM_TYPE: {
                "schema": {"$ref": _PROBLEM_REF},
                "example": {
                    "type": f"urn:timerd:problem:{_TIMEOUT_SLUG}",
                    "title": _TIMEOUT_TITLE,
                    "status": 408,
                    "detail": "The request body did not arrive within 30 s "
                    "(request_body_timeout_s).",
                },
            }
        },
    },
    "PayloadTooLarge": problem(
        PayloadTooLarge,
        "The body is larger than `max_body_bytes`; nothing was done.",
        "The request body is larger than the configured limit.",
    ),
    "UnsupportedMediaType": problem(
        UnsupportedMediaType,
        "The request does not say `Content-Type: application/json` (so a web page cannot "
        "send it as a simple cross-site form or text POST).",
        "Send the body with Content-Type: application/json.",
    ),
    "Unavailable": problem(
        Unavailable,
        "The database cannot serve the request now: the daemon is shutting down, too many "
        "writes are waiting, or the disk or database server refused. Retry after "
        "`Retry-After` seconds.",
        "too many writes are waiting for the disk; retry shortly",
        headers=_RETRY_AFTER,
    ),
}
_GUARDS = {
    "403": "ForbiddenOrigin",
    "421": "MisdirectedRequest",
    "401": "Unauthorized",
    "408": "RequestTimeout",
    "413": "PayloadTooLarge",
    "415": "UnsupportedMediaType",
}
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "options", "head", "trace"})


def guard_ref(code: str) -> dict[str, str]:
    """Return a reference to the shared response of status `code` (503 or a guard's)."""
    name = "Unavailable" if code == "503" else _GUARDS[code]
    return {"$ref": f"#/components/responses/{name}"}


def _guard_codes(
    path: str, operation: dict[str, Any], is_public: Callable[[str], bool]
) -> list[str]:
    """Return the guard statuses an operation on `path` can answer, as the middlewares do."""
    if path in EXEMPT_PATHS:
        return []
    codes = ["403", "421"]
    # a template such as /ui/timers/{id} stands for paths such as /ui/timers/x
    if path not in OPEN_PATHS and not is_public(re.sub(r"\{[^}]*\}", "x", path)):
        codes.append("401")
    if "requestBody" in operation:
        codes += ["408", "413", "415"]
    return codes


def with_guard_errors(paths: dict[str, Any], is_public: Callable[[str], bool]) -> dict[str, Any]:
    """Add to each operation the guard answers it can give; mark those that need no token.

    `is_public` tells the paths the token middleware lets through (pages and their files).
    """
    out: dict[str, Any] = {}
    for path, item in paths.items():
        out[path] = dict(item)
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            responses = dict(operation["responses"])
            codes = _guard_codes(path, operation, is_public)
            for code in codes:
                responses.setdefault(code, guard_ref(code))
            changed = {**operation, "responses": dict(sorted(responses.items()))}
            if "401" not in codes:
                changed["security"] = []
            out[path][method] = changed
    return out
