"""API authentication: the bearer token, its middleware, and the checks `serve` makes first.

The token comes from `token` (config file, `TIMERD_TOKEN`, `--token`) or, if that is empty,
the first line of `token_file`. It is compared in constant time and never logged, echoed
in an error, or shown in `repr(Settings)`. `/healthz` stays open for liveness probes.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from timerd.errors import ConfigError, Unauthorized

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.typedefs import Middleware

    from timerd.config import Settings

OPEN_PATHS = frozenset({"/healthz"})
"""Paths that answer without a token."""

_REALM = 'Bearer realm="timerd"'


def read_token(settings: Settings) -> str:
    """Return the API token of `settings` ('' for none); raise ConfigError for a bad token_file."""
    if settings.token:
        return settings.token
    if not settings.token_file:
        return ""
    path = Path(settings.token_file).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"token_file: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"token_file: {path} is not UTF-8 text") from None
    lines = text.splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise ConfigError(f"token_file: {path} is empty")
    return token


def check_serve_settings(settings: Settings) -> None:
    """Refuse settings that would expose the daemon; raise ConfigError with one line.

    A non-loopback `host` needs a token unless `insecure` is set. The token file, the
    signing secret, the outbound rules and `allowed_hosts` must also parse.
    """
    from timerd.origin_guard import HostRule
    from timerd.outbound import OutboundPolicy, is_loopback_host
    from timerd.signing import parse_secret

    token = read_token(settings)
    if not token and not settings.insecure and not is_loopback_host(settings.host):
        raise ConfigError(
            f"refusing to listen on {settings.host} without an API token: set token "
            "(TIMERD_TOKEN) or token_file, or pass --insecure to accept anyone on the network"
        )
    if settings.signing_secret:
        parse_secret(settings.signing_secret)
    OutboundPolicy.from_settings(settings)
    HostRule.from_settings(settings)


def token_matches(header: str | None, token: str) -> bool:
    """Return True if an `Authorization` header carries `token` as a bearer token."""
    if not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _unauthorized(detail: str, error: str | None) -> web.Response:
    from aiohttp import web

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


def auth_middleware(token: str, is_public: Callable[[str], bool] | None = None) -> Middleware:
    """Return an aiohttp middleware that requires `Authorization: Bearer <token>`.

    `/healthz` and the paths `is_public` accepts (pages and assets that hold no data) are open.
    """
    from aiohttp import web

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or (is_public is not None and is_public(request.path)):
            return await handler(request)
        header = request.headers.get("Authorization")
        if header is None:
            return _unauthorized("Send the API token as 'Authorization: Bearer <token>'.", None)
        if not token_matches(header, token):
            return _unauthorized("The API token is wrong.", "invalid_token")
        return await handler(request)

    return require_token
