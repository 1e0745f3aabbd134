"""API authentication: the bearer token and its middleware.

The token comes from `token` (config file, `TIMERD_TOKEN`, `--token`) or, if that is empty,
the first line of `token_file`. It is compared in constant time and never logged, echoed
in an error, or shown in `repr(Settings)`. `/healthz` stays open for liveness probes.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from timerd.errors import Unauthorized

if TYPE_CHECKING:
    pass

OPEN_PATHS = frozenset({"/healthz"})
"""Paths that answer without a token."""

_REALM = 'Bearer realm="timerd"'


def token_matches(header: str | None, token: str) -> bool:
    """Return True if an `Authorization` header carries `token` as a bearer token."""
    if not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _unauthorized(detail: str, error: str | None) -> web.Response:
    challenge = _REALM if error is None else f'{_REALM}, error="{error}"'
    body = {
        "type": f"urn:timerd:problem:{Unauthorized.type_slug}",
        "title": Unauthorized.title,
        "status": Unauthorized.status,
        "detail": detail,
    }
    return web.Response(
        body=json.dumps(body).encode(),
        status=Unauthorized.status,
        content_type="application/problem+json",
        headers={"WWW-Authenticate": challenge},
    )


Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


def token_check(
    token: str, is_public: Callable[[str], bool] | None = None
) -> Callable[[web.Request], web.Response | None]:
    """Return the check that requires `Authorization: Bearer <token>`: a 401 answer, or None.

    `/healthz` and the paths `is_public` accepts (pages and assets that hold no data) are open.
    """

    def check(request: web.Request) -> web.Response | None:
        if request.path in OPEN_PATHS or (is_public is not None and is_public(request.path)):
            return None
        header = request.headers.get("Authorization")
        if header is None:
            return _unauthorized("Send the API token as 'Authorization: Bearer <token>'.", None)
        if not token_matches(header, token):
            return _unauthorized("The API token is wrong.", "invalid_token")
        return None

    return check
