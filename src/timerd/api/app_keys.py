"""What every handler finds on the app: the timer service and the request limits."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from timerd.service import TimerService
from timerd.validation import BodyLimits


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """Request limits the handlers enforce."""

    body: BodyLimits
    batch_max: int
    list_limit_max: int


SERVICE = web.AppKey("service", TimerService)
LIMITS = web.AppKey("limits", ApiLimits)
