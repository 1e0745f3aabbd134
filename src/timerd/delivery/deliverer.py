"""Sending webhooks: one shared keep-alive client, per-attempt timeout, outcome classification.

The limits on how many requests run at once live in dispatch.Dispatcher.
"""

from __future__ import annotations

import asyncio
import functools
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import aiohttp

from timerd import __version__
from timerd.delivery.outbound import OutboundPolicy, PolicyResolver, blocked_reason
from timerd.delivery.signing import signature_headers
from timerd.delivery.webhook_client import NoAddress, WebhookClient
from timerd.delivery.webhook_conn import BadAnswer, ReceiverClosed
from timerd.models import Timer


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What one attempt got back."""

    delivered: bool
    status_code: int | None
    error: str | None
    started_at: float
    duration_ms: float
    retry_after_s: float | None = None
    permanent: bool = False
    """Retrying cannot help (the outbound policy blocks the destination): fail now."""


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """The knobs of delivery, taken from Settings."""

    attempt_timeout_s: float
    max_in_flight: int
    max_per_host: int
    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    retry_after_max_s: float


def backoff_s(
    attempt: int, base_s: float, max_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Return the delay after failed attempt number `attempt`: doubling, capped, jittered.

    "Equal jitter": half of the exponential step is kept, half is random, so retries of
    timers that failed together spread out but never come back sooner than half the step.
    """
    step = min(max_s, base_s * 2.0 ** min(attempt - 1, 62))
    return step / 2 + step / 2 * rand()


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Return the seconds a `Retry-After` header asks for (delta or HTTP date), or None.

    Never raises: an unreadable value is as good as none.
    """
    if not value:
        return None
    value = value.strip()
    # isdigit() alone takes "\xb9" and other non-ASCII digits, which float() refuses
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@functools.lru_cache(maxsize=4096)
def host_key(url: str) -> str:
    """Return the `host:port` a URL's requests count against (cached: many timers share
    a URL, and parsing one cost more than the rest of dispatching it)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


class Deliverer:
    """Posts webhooks through one shared keep-alive client."""

    def __init__(
        self,
        policy: DeliveryPolicy,
        *,
        resolver: aiohttp.abc.AbstractResolver | None = None,
        outbound: OutboundPolicy | None = None,
        signing_key: bytes | None = None,
        node_id: str = "",
    ) -> None:
        self.policy = policy
        self.node_id = node_id
        """Sent as `Timerd-Node`, so a receiver can tell which node delivered."""
        self._resolver = resolver
        self._outbound = outbound
        self._signing_key = signing_key
        self._own_resolver: PolicyResolver | None = None
        self._client: WebhookClient | None = None
        self.in_flight = 0

    @property
    def signs(self) -> bool:
        """Tell whether each webhook carries the Standard Webhooks signature headers."""
        return self._signing_key is not None

    async def start(self) -> None:
        """Open the shared client and its connection pools."""
        resolver = self._resolver
        if self._outbound is not None:  # every resolved address passes the policy first
            resolver = self._own_resolver = PolicyResolver(self._outbound, resolver)
        self._client = WebhookClient(
            user_agent=f"timerd/{__version__}",
            resolver=resolver,
            max_idle=self.policy.max_in_flight,
        )

    async def close(self) -> None:
        """Close the client and its connections; calling it twice is harmless."""
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._own_resolver is not None:
            await self._own_resolver.close()
            self._own_resolver = None

    async def send(self, timer: Timer, attempt: int) -> DeliveryResult:
        """POST an empty body to the timer's webhook URL and classify the answer.

        Concurrency limits are the caller's (see dispatch.Dispatcher).
        """
        assert self._client is not None, "Deliverer.start() was not called"
        headers = {
            "Timerd-Fire-At": _epoch(timer.fire_at),
            "Timerd-Attempt": str(attempt),
        }
        if self.node_id:
            headers["Timerd-Node"] = self.node_id
        started_at = time.time()
        started = time.perf_counter()
        if self._outbound is not None:  # literal IPs skip the resolver; the policy may be new
            reason = self._outbound.check_url(timer.url)
            if reason is not None:
                return self._blocked(started_at, started, reason)
        if self._signing_key is not None:
            headers.update(signature_headers(self._signing_key, timer.id, int(started_at)))
        self.in_flight += 1
        deadline = asyncio.get_running_loop().time() + self.policy.attempt_timeout_s
        try:
            # models.webhook_url's rule; the client keeps each base URL parsed once
            answer = await self._client.post(timer.url, headers, timer.id, deadline)
        except TimeoutError:
            return self._failed(
                started_at, started, f"timed out after {self.policy.attempt_timeout_s:g} s"
            )
        except (OSError, ValueError, UnicodeError) as exc:
            reason = blocked_reason(exc)
            if reason is not None:
                return self._blocked(started_at, started, reason)
            return self._failed(started_at, started, _describe(exc, timer.url))
        finally:
            self.in_flight -= 1
        duration_ms = (time.perf_counter() - started) * 1000
        status = answer.status
        if 200 <= status < 300:  # delivered, whatever else the answer says
            return DeliveryResult(True, status, None, started_at, duration_ms)
        retry_after = parse_retry_after(answer.retry_after, time.time())
        if retry_after is not None:
            retry_after = min(retry_after, self.policy.retry_after_max_s)
        return DeliveryResult(
            False, status, f"HTTP {status}", started_at, duration_ms, retry_after_s=retry_after
        )

    @staticmethod
    def _blocked(started_at: float, started: float, reason: str) -> DeliveryResult:
        duration_ms = (time.perf_counter() - started) * 1000
        if not reason.startswith("blocked"):
            reason = f"blocked by the outbound policy: {reason}"
        return DeliveryResult(False, None, reason, started_at, duration_ms, permanent=True)

    @staticmethod
    def _failed(started_at: float, started: float, error: str) -> DeliveryResult:
        duration_ms = (time.perf_counter() - started) * 1000
        return DeliveryResult(False, None, error, started_at, duration_ms)


def _epoch(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def _describe(exc: BaseException, url: str) -> str:
    """One readable line for a failed attempt, as kept in `last_error`."""
    if isinstance(exc, ReceiverClosed | BadAnswer):
        return str(exc)[:500]
    if isinstance(exc, NoAddress):
        return f"cannot connect to {host_key(url)}: {exc}"[:500]
    if isinstance(exc, ConnectionRefusedError | socket.gaierror) or (
        isinstance(exc, OSError) and exc.strerror
    ):
        return f"cannot connect to {host_key(url)}: {exc.strerror or exc}"[:500]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]
