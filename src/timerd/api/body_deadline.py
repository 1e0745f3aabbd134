"""A deadline on request bodies: a client that stalls mid-body gets `408` and a closed socket.

aiohttp has no such bound: a request whose headers arrived but whose body stalls (a slow or
stuck client, a chunked body that stops) holds its handler, and the connection, forever.
The deadline starts when the handler is reached (the headers are in). When it passes with
the body still incomplete, the body stream fails with `BodyTimeout`: a handler waiting on
it answers `408` (problem+json, `Connection: close`); a handler that never reads the body
has answered already, and aiohttp closes the connection instead of draining the rest.

Bodies that arrived with their headers (nearly all) cost one `is_eof()` check, no timer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from aiohttp.streams import StreamReader

PROBLEM_TYPE = "application/problem+json"


class BodyTimeout(TimeoutError):
    """The request body did not arrive in time.

    A TimeoutError, so that aiohttp's own drain of an unread body treats it as its timeout
    and closes the connection quietly.
    """


def _expire(content: StreamReader, timeout_s: float) -> None:
    if not content.is_eof():
        content.set_exception(BodyTimeout(f"the request body took over {timeout_s:g} s"))


def _request_timeout(timeout_s: float) -> web.Response:
    body = {
        "type": "urn:timerd:problem:request-timeout",
        "title": "Request timeout",
        "status": 408,
        "detail": f"The request body did not arrive within {timeout_s:g} s "
        "(request_body_timeout_s).",
    }
    response = web.Response(body=json.dumps(body).encode(), status=408, content_type=PROBLEM_TYPE)
    response.force_close()  # the rest of the body may still come: the stream is unusable
    return response


Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


async def within_body_deadline(
    request: web.Request, handler: Handler, timeout_s: float
) -> web.StreamResponse:
    """Run `handler`, failing its request body if still incomplete after `timeout_s` (408)."""
    content = request.content
    if content.is_eof():  # no body, or all of it came with the headers
        return await handler(request)
    timer = asyncio.get_running_loop().call_later(timeout_s, _expire, content, timeout_s)
    try:
        return await handler(request)
    except BodyTimeout:
        return _request_timeout(timeout_s)
    finally:
        if content.is_eof():
            timer.cancel()
        # else leave it armed: it also ends aiohttp's drain of a body the handler left
