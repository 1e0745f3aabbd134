"""The ceiling: aiohttp + uvloop answering `POST /timers` after full validation, storing nothing.

This is the HTTP layer's own limit on this machine; timerd's create rate is judged as a
fraction of it. `GET /timers/{id}` answers one fixed timer body without any lookup, the
ceiling for the `get` scenario.
"""

from __future__ import annotations

import secrets

from aiohttp import web
from common import arguments, created, problem, read_create, run

_FIXED = (
    b'{"id":"AAAAAAAAAAAAAAAAAAAAAA","url":"http://127.0.0.1:9/hook","fire_at":2000000000.0,'
    b'"created_at":1700000000.0,"status":"pending","next_attempt_at":2000000000.0,'
    b'"attempts":0,"updated_at":1700000000.0,"fired_at":null,"last_status_code":null,'
    b'"last_error":null,"time_left":236000000}'
)


async def create(request: web.Request) -> web.Response:
    spec = await read_create(request)
    if isinstance(spec, web.Response):
        return spec
    return created(secrets.token_urlsafe(16))


async def get(request: web.Request) -> web.Response:
    if not request.match_info["id"]:
        return problem(404, "no such timer")
    return web.Response(body=_FIXED, content_type="application/json")


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    app = web.Application()
    app.router.add_post("/timers", create)
    app.router.add_get("/timers/{id}", get)
    app.router.add_get("/healthz", healthz)
    run(app, args.host, args.port)


if __name__ == "__main__":
    main()
