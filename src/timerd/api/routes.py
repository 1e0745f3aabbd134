"""The HTTP API: routes, body checks and RFC 9457 problem+json errors.

Handlers parse and validate, call the service, and shape JSON. No SQL and no heap here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from aiohttp import web

from timerd.api.app_keys import LIMITS, SERVICE, ApiLimits
from timerd.api.auth import token_check
from timerd.api.front_door import front_door
from timerd.api.openapi import DocumentLimits, openapi_document
from timerd.api.origin_guard import HostRule, host_origin_check
from timerd.api.webui import add_ui_routes, is_public_path
from timerd.cursor import decode_cursor, encode_cursor
from timerd.errors import (
    BadRequest,
    FieldError,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from timerd.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from timerd.models import LIVE_STATUSES, Status, Timer, is_plausible_id
from timerd.service import AnswerBody, IdempotentRequest, Replay, TimerService
from timerd.validation import CreateSpec, parse_batch, parse_create, parse_patch

log = logging.getLogger(__name__)


JSON_TYPE = "application/json"
ROUTE_CREATE = "POST /timers"
ROUTE_BATCH = "POST /timers/batch"
_ID_PATH = "/timers/{id:(?!batch$)[^/]+}"
"""/timers/batch is only the batch route: a 405 there lists exactly its own methods."""


def _timer_json(timer: Timer, now: float, status: int = 200) -> web.Response:
    """One timer as its API JSON (encoded by `Timer.to_json_bytes`)."""
    return web.Response(body=timer.to_json_bytes(now), status=status, content_type=JSON_TYPE)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(), status=status, content_type=JSON_TYPE, headers=headers
    )


async def _read_json(request: web.Request) -> Any:
    if request.content_type != JSON_TYPE:
        raise UnsupportedMediaType("Send the body with Content-Type: application/json.")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge("The request body is larger than the configured limit.") from None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("The body is not valid JSON.") from None


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not all(0x20 <= ord(c) <= 0x7E for c in key):
        raise ValidationFailed(
            [FieldError("Idempotency-Key", "must be 1 to 255 printable ASCII characters")]
        )
    return key


def _body_hash(body: Any, raw: bytes) -> str:
    """Hash the parsed body so that equal JSON (key order, 3600 vs 3600.0) hashes alike."""
    try:
        canonical = json.dumps(_canonical(body), sort_keys=True, separators=(",", ":")).encode()
    except (RecursionError, ValueError):  # absurdly deep: fall back to the exact bytes
        canonical = b"raw:" + raw
    return hashlib.sha256(canonical).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


async def _create(
    request: web.Request, route: str, body: Any, specs: list[CreateSpec], answer: AnswerBody
) -> list[Timer] | web.Response:
    """Create the timers, once per Idempotency-Key; a repeat gets the first answer again."""
    service = request.app[SERVICE]
    key = _idempotency_key(request)
    if key is None:
        return await service.create(specs)
    once = IdempotentRequest(route, key, _body_hash(body, await request.read()))
    created = await service.create_once(specs, once, answer)
    if not isinstance(created, Replay):
        return created
    headers = {"Idempotent-Replayed": "true", "Content-Type": JSON_TYPE}
    data = json.loads(created.body)
    if "id" in data:
        headers["Location"] = f"/timers/{data['id']}"
    return web.Response(body=created.body, status=created.status, headers=headers)


async def create_timer(request: web.Request) -> web.Response:
    """POST /timers."""
    service, limits = request.app[SERVICE], request.app[LIMITS]
    body = await _read_json(request)
    spec = parse_create(body, now=service.clock.now(), limits=limits.body)
    timers = await _create(request, ROUTE_CREATE, body, [spec], _created_body)
    if isinstance(timers, web.Response):
        return timers  # a replay
    tid = timers[0].id
    return web.Response(
        body=_created_body(timers),
        status=201,
        headers={"Content-Type": JSON_TYPE, "Location": f"/timers/{tid}"},
    )


async def create_batch(request: web.Request) -> web.Response:
    """POST /timers/batch: all or nothing, one transaction."""
    service, limits = request.app[SERVICE], request.app[LIMITS]
    body = await _read_json(request)
    specs = parse_batch(
        body, now=service.clock.now(), limits=limits.body, max_items=limits.batch_max
    )
    timers = await _create(request, ROUTE_BATCH, body, specs, _created_batch_body)
    if isinstance(timers, web.Response):
        return timers  # a replay
    return web.Response(body=_created_batch_body(timers), status=201, content_type=JSON_TYPE)


def _created_body(timers: list[Timer]) -> bytes:
    # ids are URL-safe characters only: no JSON escaping needed
    return b'{"id":"%s"}' % timers[0].id.encode()


def _created_batch_body(timers: list[Timer]) -> bytes:
    return json.dumps({"ids": [t.id for t in timers]}, separators=(",", ":")).encode()


def _timer_id(request: web.Request) -> str:
    timer_id = request.match_info["id"]
    if not is_plausible_id(timer_id):
        raise NotFound(f"no timer {timer_id[:80]}")
    return timer_id


async def get_timer(request: web.Request) -> web.Response:
    """GET /timers/<id>."""
    service = request.app[SERVICE]
    timer = await service.get(_timer_id(request))
    return _timer_json(timer, service.clock.now())


async def cancel_timer(request: web.Request) -> web.Response:
    """DELETE /timers/<id>."""
    service = request.app[SERVICE]
    timer = await service.cancel(_timer_id(request))
    return _timer_json(timer, service.clock.now())


async def fire_timer(request: web.Request) -> web.Response:
    """POST /timers/<id>/fire."""
    service = request.app[SERVICE]
    timer = await service.fire_now(_timer_id(request))
    return _timer_json(timer, service.clock.now(), 202)


async def patch_timer(request: web.Request) -> web.Response:
    """PATCH /timers/<id>."""
    service, limits = request.app[SERVICE], request.app[LIMITS]
    timer_id = _timer_id(request)
    body = await _read_json(request)
    patch = parse_patch(body, now=service.clock.now(), limits=limits.body)
    timer = await service.reschedule(timer_id, patch)
    return _timer_json(timer, service.clock.now())


async def timer_attempts(request: web.Request) -> web.Response:
    """GET /timers/<id>/attempts."""
    service = request.app[SERVICE]
    attempts = await service.attempts(_timer_id(request))
    return _json({"attempts": [a.to_json() for a in attempts]})


async def list_timers(request: web.Request) -> web.Response:
    """GET /timers?status=&limit=&cursor=."""
    service, limits = request.app[SERVICE], request.app[LIMITS]
    query = request.query
    errors: list[FieldError] = []
    statuses: frozenset[Status] | None = None
    raw_status = query.get("status", "all")
    if raw_status == "live":
        statuses = LIVE_STATUSES
    elif raw_status != "all":
        try:
            statuses = frozenset({Status(raw_status)})
        except ValueError:
            names = ", ".join([*(s.value for s in Status), "live", "all"])
            errors.append(FieldError("status", f"must be one of {names}"))
    limit = 100
    raw_limit = query.get("limit")
    if raw_limit is not None:
        if (
            raw_limit.isascii()
            and raw_limit.isdigit()
            and 1 <= int(raw_limit) <= limits.list_limit_max
        ):
            limit = int(raw_limit)
        else:
            errors.append(
                FieldError("limit", f"must be an integer from 1 to {limits.list_limit_max}")
            )
    after = None
    raw_cursor = query.get("cursor")
    if raw_cursor:
        try:
            after = decode_cursor(raw_cursor)
        except ValidationFailed as exc:
            errors.extend(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    page = await service.list_timers(statuses, limit + 1, after)
    more = len(page) > limit
    page = page[:limit]
    now = service.clock.now()
    next_cursor = encode_cursor((page[-1].fire_at, page[-1].id)) if more else None
    body = b'{"timers":[%s],"next_cursor":%s}' % (
        b",".join(t.to_json_bytes(now) for t in page),
        json.dumps(next_cursor).encode(),
    )
    return web.Response(body=body, content_type=JSON_TYPE)


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: alive and ready (the database is open and the loop turns)."""
    return _json({"status": "ok"})


async def list_nodes(request: web.Request) -> web.Response:
    """GET /nodes: the live nodes sharing the timer set (on SQLite, this daemon alone)."""
    nodes = await request.app[SERVICE].live_nodes()
    return _json({"nodes": [node.to_json() for node in nodes]})


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics in the Prometheus text format."""
    service = request.app[SERVICE]
    await service.refresh_gauges()
    return web.Response(
        body=service.metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE}
    )


async def openapi(request: web.Request) -> web.Response:
    """GET /openapi.json, stating this daemon's configured bounds."""
    limits = request.app[LIMITS]
    return _json(
        openapi_document(
            DocumentLimits(
                max_delay_s=limits.body.max_delay_s,
                max_url_length=limits.body.max_url_length,
                batch_max=limits.batch_max,
                list_limit_max=limits.list_limit_max,
            )
        )
    )


def add_routes(app: web.Application) -> None:
    """Register every route of SPEC.md on `app`."""
    app.router.add_post("/timers/batch", create_batch)
    app.router.add_post("/timers", create_timer)
    app.router.add_get("/timers", list_timers, allow_head=False)
    app.router.add_get(_ID_PATH, get_timer, allow_head=False)
    app.router.add_delete(_ID_PATH, cancel_timer)
    app.router.add_patch(_ID_PATH, patch_timer)
    app.router.add_post("/timers/{id}/fire", fire_timer)
    app.router.add_get("/timers/{id}/attempts", timer_attempts, allow_head=False)
    app.router.add_get("/healthz", healthz, allow_head=False)
    app.router.add_get("/nodes", list_nodes, allow_head=False)
    app.router.add_get("/metrics", metrics, allow_head=False)
    app.router.add_get("/openapi.json", openapi, allow_head=False)
    add_ui_routes(app)


def build_api(
    service: TimerService,
    limits: ApiLimits,
    max_body_bytes: int,
    token: str = "",
    *,
    body_timeout_s: float,
    host_rule: HostRule | None = None,
) -> web.Application:
    """Return the aiohttp application serving the API over `service`; `token`: required bearer.

    `body_timeout_s` bounds a request body; `host_rule` names the Host values answered
    without a token (default: loopback only).
    """
    checks = [
        host_origin_check(host_rule or HostRule(), check_host=not token),
        *([token_check(token, is_public_path)] if token else []),
    ]
    door = front_door(checks, body_timeout_s)
    app = web.Application(middlewares=[door], client_max_size=max_body_bytes)
    app[SERVICE] = service
    app[LIMITS] = limits
    add_routes(app)
    return app
