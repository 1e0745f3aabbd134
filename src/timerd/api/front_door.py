"""The API's front door: the one middleware every request passes, and problem+json answers.

The request checks (the Host and Origin rules, the token) are plain functions, run here in
order; then the handler, within the request-body deadline. Every error, raised by a check or
a handler, is answered as RFC 9457 problem+json; nothing escapes as a 500 with a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from timerd.api.body_deadline import within_body_deadline
from timerd.errors import TimerdError, Unavailable, ValidationFailed

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"
_HTTP_PROBLEMS = {
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Payload too large"),
}


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> web.Response:
    """Return an RFC 9457 problem+json response."""
    body = {
        "type": f"urn:timerd:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra.pop("retry_after"))
        body.pop("retry_after")
    return web.Response(
        body=json.dumps(body).encode(), status=status, content_type=PROBLEM_TYPE, headers=headers
    )


def error_response(error: TimerdError) -> web.Response:
    """Turn a TimerdError into its problem+json response."""
    extra: dict[str, Any] = {}
    if isinstance(error, ValidationFailed):
        extra["errors"] = [{"field": e.field, "message": e.message} for e in error.errors]
    if isinstance(error, Unavailable):
        extra["retry_after"] = error.retry_after_s
    return problem(error.status, error.type_slug, error.title, error.detail, **extra)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def front_door(
    checks: list[Callable[[web.Request], web.Response | None]], body_timeout_s: float
) -> Middleware:
    """Return the API's one middleware: the checks, the body deadline, errors as problems.

    One aiohttp middleware layer, not one per concern: each layer is a call and a coroutine
    on every request. A check raises a TimerdError or returns the answer that refuses the
    request (None lets it through); every error, here or in a handler, becomes problem+json
    and nothing escapes as a 500 with a traceback.
    """

    @web.middleware
    async def door(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            for check in checks:
                refusal = check(request)
                if refusal is not None:
                    return refusal
            return await within_body_deadline(request, handler, body_timeout_s)
        except TimerdError as error:
            return error_response(error)
        except web.HTTPException as exc:
            return _http_problem(exc, request)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return problem(500, "internal", "Internal error", "An unexpected error was logged.")

    return door


def _http_problem(exc: web.HTTPException, request: web.Request) -> web.StreamResponse:
    """Answer aiohttp's own HTTP errors (404, 405, 413...) as problem+json."""
    if exc.status < 400:
        raise exc
    slug, title = _HTTP_PROBLEMS.get(exc.status, ("http-error", exc.reason))
    detail = exc.text if exc.status not in _HTTP_PROBLEMS else _http_detail(exc, request)
    response = problem(exc.status, slug, title, detail or exc.reason)
    if exc.status == 405:
        response.headers["Allow"] = ", ".join(sorted(getattr(exc, "allowed_methods", ())))
    return response


def _http_detail(exc: web.HTTPException, request: web.Request) -> str:
    if exc.status == 404:
        return f"No route {request.path}."
    if exc.status == 405:
        allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
        return f"{request.method} is not allowed on {request.path}; allowed: {allowed}."
    return "The request body is larger than the configured limit."
