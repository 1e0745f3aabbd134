"""The JSON views behind the pages: the summary, listings, one timer, failures, fire again.

They answer what the pages show in one request each, with URLs redacted; the pages change
timers through the ordinary API (fire, PATCH, DELETE), except "fire again" for many failed
timers at once, which is one request here. Errors are the API's problem+json.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from timerd import __version__
from timerd.api.app_keys import SERVICE
from timerd.browse import (
    SCAN_ROWS,
    GroupBy,
    Sort,
    browse,
    by_id_prefix,
    failure_groups,
    ids_in,
    newest_timers,
    next_timers,
    public_json,
    statuses_of,
)
from timerd.cursor import Cursor, decode_cursor, encode_cursor
from timerd.errors import (
    BadRequest,
    FieldError,
    TimerdError,
    UnsupportedMediaType,
    ValidationFailed,
)
from timerd.metrics_summary import parse_figures
from timerd.models import LIVE_STATUSES, Status, Timer, is_plausible_id, redact_url, webhook_url

if TYPE_CHECKING:
    from timerd.service import TimerService

NEXT_COUNT = 10
RECENT_COUNT = 8
COUNTS_EVERY_S = 2.0
PAGE_DEFAULT = 50
PAGE_MAX = 200
FIRE_AGAIN_MAX = SCAN_ROWS
FIRE_AGAIN_CONCURRENCY = 100
"""Fires in flight at once: their commits share the store's group commits."""
STARTED_AT = web.AppKey("ui_started_at", float)


def _service(request: web.Request) -> TimerService:
    return request.app[SERVICE]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def summary(request: web.Request) -> web.Response:
    """GET /ui/summary.json: counts, the next timers, recent outcomes and headline figures."""
    service = _service(request)
    now = service.clock.now()
    counts = await service.status_counts(COUNTS_EVERY_S)  # shared with /metrics
    by_status = {status.value: counts.get(status, 0) for status in Status}
    await service.refresh_gauges()
    figures = parse_figures(service.metrics.render().decode()).to_json()
    figures["timers"] = by_status
    store = service.store
    fired = await newest_timers(store, Status.FIRED, RECENT_COUNT)
    failed = await newest_timers(store, Status.FAILED, RECENT_COUNT)
    nodes = None  # on SQLite the page shows nothing about nodes
    if service.shares_timers:
        nodes = {
            "this": service.nodes.node_id,
            "live": [node.to_json() for node in await service.live_nodes()],
        }
    return _json(
        {
            "nodes": nodes,
            "now": now,
            "version": __version__,
            "started_at": request.app[STARTED_AT],
            "counts": by_status,
            "counts_every_s": COUNTS_EVERY_S,
            "next": [public_json(t, now) for t in await next_timers(service, NEXT_COUNT)],
            "recent_fired": [public_json(t, now) for t in fired],
            "recent_failed": [public_json(t, now) for t in failed],
            "figures": figures,
        }
    )


def _limit(raw: str | None, errors: list[FieldError]) -> int:
    if raw is None:
        return PAGE_DEFAULT
    if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= PAGE_MAX:
        return int(raw)
    errors.append(FieldError("limit", f"must be an integer from 1 to {PAGE_MAX}"))
    return PAGE_DEFAULT


async def list_view(request: web.Request) -> web.Response:
    """GET /ui/timers.json: one page of timers, filtered, searched and sorted."""
    service = _service(request)
    encode, decode = encode_cursor, decode_cursor
    query = request.query
    errors: list[FieldError] = []
    statuses: list[Status] | None = None
    try:
        statuses = statuses_of(query.get("status", "all"))
    except ValueError:
        names = ", ".join([*(s.value for s in Status), "live", "all"])
        errors.append(FieldError("status", f"must be one of {names}"))
    try:
        sort = Sort(query.get("sort", Sort.DUE.value))
    except ValueError:
        errors.append(FieldError("sort", "must be one of " + ", ".join(s.value for s in Sort)))
        sort = Sort.DUE
    limit = _limit(query.get("limit"), errors)
    prefix = query.get("id", "").strip()
    if prefix and not is_plausible_id(prefix):
        errors.append(FieldError("id", "ids are letters, digits, '-' and '_'"))
    url_part = query.get("url", "").strip()
    if len(url_part) > 200:
        errors.append(FieldError("url", "must be at most 200 characters"))
    after: Cursor | None = None
    if query.get("cursor"):
        try:
            after = decode(query["cursor"])
        except ValidationFailed as exc:
            errors.extend(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    if prefix:
        page = await by_id_prefix(service.store, prefix, limit, after[1] if after else None)
    else:
        page = await browse(service.store, statuses, sort, url_part, limit, after)
    now = service.clock.now()
    return _json(
        {
            "timers": [public_json(t, now) for t in page.timers],
            "next_cursor": encode(page.next_after) if page.next_after else None,
            "order": "id" if prefix else sort.value,
            "scanned": page.scanned,
            "scan_limit": SCAN_ROWS,
            "complete": page.complete,
        }
    )


def epoch_text(value: float) -> str:
    """An instant as the webhook headers write it: epoch seconds, at most 3 decimals."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def _fire_at_header(timer: Timer) -> dict[str, str]:
    """The Timerd-Fire-At a receiver gets: the due instant, or when a manual fire was asked."""
    if timer.status is Status.FAILED:
        value, note = (
            "<when you fire it again, epoch seconds>",
            "a manual fire sends when it was asked",
        )
    else:
        value, note = (
            epoch_text(timer.fire_at),
            "the due instant, epoch seconds; the same on every retry",
        )
    return {"name": "Timerd-Fire-At", "value": value, "note": note}


def _attempt_header(timer: Timer) -> dict[str, str]:
    """The Timerd-Attempt of the next attempt (or, for a finished timer, of the last one)."""
    if timer.status in LIVE_STATUSES:
        value, note = timer.attempts + 1, "this timer's next attempt; 1 for the first try"
    elif timer.status is Status.FAILED:
        value, note = 1, "fire again starts the count over"
    else:
        value, note = timer.attempts, f"its last attempt: a {timer.status.value} timer is not sent"
    return {"name": "Timerd-Attempt", "value": str(value), "note": note}


def webhook_preview(timer: Timer, signs: bool) -> dict[str, Any]:
    """Return the request a receiver gets for this timer's next attempt, URL redacted."""
    headers = [
        {"name": "User-Agent", "value": f"timerd/{__version__}", "note": ""},
        {"name": "Content-Length", "value": "0", "note": "the body is empty"},
        _fire_at_header(timer),
        _attempt_header(timer),
    ]
    if signs:
        headers += [
            {"name": "webhook-id", "value": timer.id, "note": "the same on every retry"},
            {
                "name": "webhook-timestamp",
                "value": "<when the attempt is sent, epoch seconds>",
                "note": "",
            },
            {
                "name": "webhook-signature",
                "value": f'v1,<base64 HMAC-SHA256 of "{timer.id}.<timestamp>.">',
                "note": "Standard Webhooks, keyed by signing_secret",
            },
        ]
    return {
        "method": "POST",
        "url": webhook_url(redact_url(timer.url), timer.id),
        "headers": headers,
        "signed": signs,
    }


async def timer_view(request: web.Request) -> web.Response:
    """GET /ui/timers/<id>.json: one timer, its kept attempts and its webhook request."""
    service = _service(request)
    timer = await service.get(request.match_info["id"])
    attempts = await service.store.attempts(timer.id)
    now = service.clock.now()
    live = timer.status in LIVE_STATUSES
    return _json(
        {
            "now": now,
            "timer": public_json(timer, now),
            "attempts": [a.to_json() for a in attempts],
            "attempts_kept": service.limits.attempts_kept,
            "webhook": webhook_preview(timer, service.deliverer.signs),
            "actions": {
                "fire": live or timer.status is Status.FAILED,
                "reschedule": live,
                "cancel": live or timer.status is Status.FAILED,
            },
        }
    )


def _group_by(raw: str) -> GroupBy:
    try:
        return GroupBy(raw)
    except ValueError:
        raise ValidationFailed([FieldError("by", "must be host or error")]) from None


async def failures_view(request: web.Request) -> web.Response:
    """GET /ui/failures.json?by=host|error: the recent failed timers, grouped."""
    service = _service(request)
    groups, scanned = await failure_groups(
        service.store, _group_by(request.query.get("by", "host"))
    )
    now = service.clock.now()
    return _json(
        {
            "by": request.query.get("by", "host"),
            "groups": [g.to_json(now) for g in groups],
            "scanned": scanned,
            "scan_limit": SCAN_ROWS,
        }
    )


async def _fire_again_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise UnsupportedMediaType("Send the body with Content-Type: application/json.")
    try:
        body = json.loads(await request.read())
    except (ValueError, RecursionError):
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    errors = [FieldError(k, "is not a known field") for k in body if k not in ("ids", "group")]
    if ("ids" in body) == ("group" in body):
        errors.append(FieldError("ids", "give either ids or group"))
    if errors:
        raise ValidationFailed(errors)
    return body


async def _ids_to_fire(service: TimerService, body: dict[str, Any]) -> list[str]:
    if "group" in body:
        group = body["group"]
        if not isinstance(group, dict) or set(group) != {"by", "key"}:
            raise ValidationFailed([FieldError("group", "must be {by, key}")])
        key = group["key"]
        if not isinstance(key, str):
            raise ValidationFailed([FieldError("group.key", "must be a string")])
        groups, _ = await failure_groups(service.store, _group_by(str(group["by"])))
        return ids_in(groups, key)
    ids = body["ids"]
    if (
        not isinstance(ids, list)
        or not 1 <= len(ids) <= FIRE_AGAIN_MAX
        or not all(isinstance(i, str) and is_plausible_id(i) for i in ids)
    ):
        raise ValidationFailed([FieldError("ids", f"must be 1 to {FIRE_AGAIN_MAX} timer ids")])
    return list(dict.fromkeys(ids))


async def fire_again(request: web.Request) -> web.Response:
    """POST /ui/failures/fire: fire again failed timers, by ids or a whole failure group."""
    service = _service(request)
    body = await _fire_again_body(request)
    ids = await _ids_to_fire(service, body)
    found = {t.id: t for t in await service.store.get_timers(ids)}
    skipped: list[dict[str, str]] = []
    failed: list[str] = []
    for tid in ids:
        timer = found.get(tid)
        if timer is None:
            skipped.append({"id": tid, "reason": "no such timer"})
        elif timer.status is not Status.FAILED:
            skipped.append({"id": tid, "reason": f"is {timer.status.value}, not failed"})
        else:
            failed.append(tid)
    fired = 0
    for start in range(0, len(failed), FIRE_AGAIN_CONCURRENCY):
        chunk = failed[start : start + FIRE_AGAIN_CONCURRENCY]
        results = await asyncio.gather(
            *(service.fire_now(tid) for tid in chunk), return_exceptions=True
        )
        for tid, result in zip(chunk, results, strict=True):
            if isinstance(result, TimerdError):
                skipped.append({"id": tid, "reason": result.detail})
            elif isinstance(result, BaseException):
                raise result
            else:
                fired += 1
    return _json({"asked": len(ids), "fired": fired, "skipped": skipped})


def add_view_routes(app: web.Application) -> None:
    """Register the JSON views of the pages."""
    app[STARTED_AT] = time.time()
    app.router.add_get("/ui/summary.json", summary, allow_head=False)
    app.router.add_get("/ui/timers.json", list_view, allow_head=False)
    app.router.add_get("/ui/timers/{id:[A-Za-z0-9_-]{1,64}}.json", timer_view, allow_head=False)
    app.router.add_get("/ui/failures.json", failures_view, allow_head=False)
    app.router.add_post("/ui/failures/fire", fire_again)
