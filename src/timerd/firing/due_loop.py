"""From "due" to "recorded": the heap, the window refill, dispatch and the outcome log.

Read top to bottom, this is the way of one timer: the window refill pages it from the store
into the heap; the due loop pops it when due, checks it against its row, claims it and
queues it for a delivery slot; the dispatcher sends it; `retry.decide` turns the answer
into the timer's next state; the outcome log commits that state with its history entry;
settling puts a retry back in the heap and frees the claim.

The database stays the source of truth: every entry popped from the heap is checked
against its row before it is sent, and a changed row wins over the heap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from timerd.clock import Clock
from timerd.delivery.deliverer import Deliverer, DeliveryResult
from timerd.delivery.retry import decide
from timerd.errors import Conflict, TimerdError
from timerd.firing.dispatch import Dispatcher
from timerd.firing.live_count import LiveCount
from timerd.firing.outcome_log import OutcomeEntry, OutcomeLog
from timerd.firing.pacing import LoopLagGovernor
from timerd.firing.scheduler import Scheduler
from timerd.firing.token_bucket import TokenBucket
from timerd.metrics import Metrics
from timerd.models import LIVE_STATUSES, Outcome, Timer, redact_url
from timerd.store import Cursor, Store
from timerd.store.claims import ClaimKind, ClaimResult

log = logging.getLogger(__name__)

_BOTTOM: Cursor = (float("-inf"), "")
_READ_CHUNK = 250
"""Due timers checked against their rows per step: each step holds the event loop, and API
requests wait for it."""
_REFILL_CHUNK = 1000
"""Keys paged into the heap per read, for the same reason."""
_SHARED_MARGIN_S = 2.0
"""On a shared database, what this node creates or changes is kept in its heap this far past
the window too: another node's clock, and so its loaded horizon, may be ahead of ours."""
_OVERDUE_AFTER_S = 1.0
"""A timer due this long before timerd learnt of it (or booted) was overdue, not late: a
`{"seconds": 0}` create is due a moment before the service stamps it, and is not overdue."""


@dataclass(frozen=True, slots=True)
class FiringLimits:
    """The settings the firing path acts on."""

    window_s: float
    window_max: int
    dispatch_queue_max: int
    catchup_rate_per_s: float


class DueLoop:
    """Delivers timers when they fall due, and keeps the heap agreeing with the store."""

    def __init__(
        self,
        store: Store,
        deliverer: Deliverer,
        clock: Clock,
        limits: FiringLimits,
        metrics: Metrics,
        live: LiveCount,
    ) -> None:
        self.store = store
        self.claims = store.claims
        self.deliverer = deliverer
        self.clock = clock
        self.limits = limits
        self.metrics = metrics
        self.live = live
        self.scheduler = Scheduler(clock)
        self._horizon: Cursor = _BOTTOM
        self._horizon_complete = False
        self._refill_target = float("-inf")
        policy = deliverer.policy
        self._dispatcher = Dispatcher(self._deliver, policy.max_in_flight, policy.max_per_host)
        self._outcomes = OutcomeLog(self._record, self._settle)
        self._pacing = LoopLagGovernor(policy.max_in_flight, self._dispatcher.set_limit)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._boot_at = 0.0
        self._catchup = TokenBucket(limits.catchup_rate_per_s)
        self._reload = False
        self._send_by: dict[str, float] = {}
        """Timers whose claim is a lease: when their attempt must have started."""

    # lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the due loop; overdue timers fire right away, oldest first, rate-limited."""
        self._boot_at = self.clock.now()
        self._outcomes.start()
        self._pacing.start()
        self.store.watch_ownership(self._ownership_changed)
        self._task = asyncio.create_task(self._run(), name="timerd-due-loop")

    async def stop(
        self, grace_s: float, handover: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Stop firing; let deliveries in flight finish within `grace_s`, then cancel them.

        A cancelled delivery, or one whose outcome could not be committed in time, left its
        timer as it was in the database, so the next boot delivers it again (at-least-once).
        `handover` runs once nothing new is sent and the queued timers' claims are given
        up, before the wait: on a shared database the node leaves the set there, so the
        others take its timers over at once.
        """
        deadline = time.monotonic() + grace_s
        self._stopping = True
        await self._pacing.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # not started: they stay due, for another node now or the next boot
        queued = [waiting.id for waiting in self._dispatcher.drain()]
        try:
            await self.store.release_claims(queued)
        except TimerdError as exc:
            log.warning("could not give up %d claims (%s); their leases expire", len(queued), exc)
        if handover is not None:
            await handover()
        running = set(self._dispatcher.tasks)
        if running:
            log.info("waiting up to %.1f s for %d deliveries", grace_s, len(running))
            _, late = await asyncio.wait(running, timeout=grace_s)
            for task in late:
                task.cancel()
            if late:
                log.warning(
                    "%d deliveries cut short by shutdown; they run again at boot", len(late)
                )
                await asyncio.wait(late)
        if not await self._outcomes.flush(max(0.0, deadline - time.monotonic())):
            log.warning(
                "%d delivery outcomes not committed; they run again at boot", len(self._outcomes)
            )
        self._settle(await self._outcomes.stop(), False)

    # what a change does to the schedule ---------------------------------------------------

    def schedule(self, timer_id: str, at: float, *, force: bool = False) -> None:
        """Put a timer in the heap if it falls inside the loaded window; else the store keeps it.

        `force` puts it back even beyond the window: it was in the heap, and a refill that
        ran meanwhile may have moved the horizon past it.
        """
        if (
            force
            or (at, timer_id) <= self._horizon
            or at <= self._refill_target
            or (self.store.shared and at <= self._shared_reach())
        ):
            self.scheduler.push(timer_id, at)

    def _shared_reach(self) -> float:
        """How far ahead another node sharing the database may have paged its window."""
        return self.clock.now() + self.limits.window_s + _SHARED_MARGIN_S

    def take_for_change(self, timer_id: str) -> float | None:
        """Claim `timer_id` for a change and take it off the schedule; return when it was due.

        A timer queued for a delivery slot is taken out of the queue: only an attempt on
        the wire (or its outcome being committed) makes a change wait (Conflict, 409).
        """
        owner = self.claims.owner(timer_id)
        if owner is ClaimKind.DELIVERY and not self._dispatcher.withdraw(timer_id):
            raise Conflict(f"timer {timer_id} is being delivered right now")
        self._send_by.pop(timer_id, None)  # withdrawn, or never queued
        if owner is ClaimKind.CHANGE:
            raise Conflict(f"timer {timer_id} is being changed by another request")
        self.claims.take(timer_id, ClaimKind.CHANGE)
        due_at = self.scheduler.remove(timer_id)
        return self.clock.now() if owner is ClaimKind.DELIVERY else due_at

    def changed(self, timer_id: str, next_at: float | None) -> None:
        """Schedule a committed change; any due time a refill paged in meanwhile goes."""
        self.scheduler.remove(timer_id)
        if next_at is not None:
            self.schedule(timer_id, next_at)

    def unchanged(self, timer_id: str, due_at: float | None, *, was_scheduled: bool) -> None:
        """Put back a timer whose change did not happen, where its row says it is due."""
        if due_at is not None:
            self.schedule(timer_id, due_at, force=was_scheduled)

    def release(self, timer_id: str) -> None:
        """End a change's claim."""
        self.claims.release(timer_id)

    # the due loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop guard: log, pause a moment, carry on
                log.exception("due loop failed; retrying in 1 s")
                await asyncio.sleep(1.0)

    async def _step(self) -> None:
        await self._refill_if_needed()
        capacity = self.limits.dispatch_queue_max - len(self._dispatcher) - len(self._outcomes)
        if capacity <= 0:
            self._dispatcher.slot_free.clear()
            await self._dispatcher.slot_free.wait()
            return
        head = self.scheduler.peek()
        now = self.clock.now()
        if head is None or head[0] > now:
            await self.scheduler.sleep_until_due(self._until_refill_s(now))
            return
        limit = min(capacity, _READ_CHUNK)
        if head[0] < self._boot_at:  # catching up on what fell due while we were down
            tokens = self._catchup.available()
            if tokens < 1:
                await asyncio.sleep(self._catchup.wait_s())
                return
            limit = min(limit, tokens)
        due = self.scheduler.pop_due(now, limit)
        self._catchup.take(sum(1 for at, _ in due if at < self._boot_at))
        await self._dispatch(due)

    def _until_refill_s(self, now: float) -> float:
        if not self._horizon_complete:
            if self.limits.window_max - len(self.scheduler) >= self.limits.window_max // 2:
                return 0.0  # more of the window to page in: the next step reads a chunk
            return self.limits.window_s / 2
        return max(0.0, self._horizon[0] - self.limits.window_s / 2 - now)

    def _ownership_changed(self) -> None:
        """The store pages other timers now: reload the window from its start."""
        self._reload = True
        self.scheduler.wake()

    async def _refill_if_needed(self) -> None:
        """Page the next due timers from the store into the heap as the window advances."""
        if self._reload:  # entries of buckets no longer owned cost a refused claim at most
            self._reload = False
            self._horizon, self._horizon_complete = _BOTTOM, False
        now = self.clock.now()
        free = self.limits.window_max - len(self.scheduler)
        if self._horizon_complete:
            if self._horizon[0] - now > self.limits.window_s / 2:
                return
        elif free < self.limits.window_max // 2 and self._horizon != _BOTTOM:
            return
        if free <= 0:
            return
        until = now + self.limits.window_s
        self._refill_target = until
        try:
            limit = min(free, _REFILL_CHUNK)
            keys = await self.store.due_keys(self._horizon, until, limit)
        finally:
            self._refill_target = float("-inf")
        claims = self.claims
        for at, timer_id in keys:
            # changing ones too: a change that fails leaves its timer where the row says
            if timer_id not in self.scheduler and claims.owner(timer_id) is not ClaimKind.DELIVERY:
                self.scheduler.push(timer_id, at)
        if self._reload:  # the owned buckets changed during the read: start again
            return
        if len(keys) == limit:
            self._horizon, self._horizon_complete = keys[-1], False
        else:
            self._horizon, self._horizon_complete = (until, "\U0010ffff"), True
        self.metrics.heap_size.set(len(self.scheduler))

    async def _dispatch(self, due: list[Cursor]) -> None:
        """Claim the popped entries still due in the store and queue a delivery for each.

        A timer claimed meanwhile (a change in progress) is left to that change, which
        schedules it again whether or not it succeeds.
        """
        try:
            result: ClaimResult = await self.store.claim_due(due)
        except BaseException:
            for at, tid in due:  # back into the heap: the next step tries again
                self.scheduler.push(tid, at)
            raise
        for at, tid in result.moved:
            self.schedule(tid, at)  # moved since: its row decides
        for at, tid in result.held:
            self.schedule(tid, at, force=True)  # its holder may die: look again at lease end
        limited = result.send_by != float("inf")
        for timer in result.claimed:
            if limited:
                self._send_by[timer.id] = result.send_by
            self._dispatcher.submit(timer)

    # one delivery -------------------------------------------------------------------------

    async def _deliver(self, timer: Timer) -> None:
        """Send one attempt; its outcome goes to the outcome log, which keeps the claim."""
        attempt_no = timer.attempts + 1
        queued = False
        send_by = self._send_by.pop(timer.id, None)
        if send_by is not None and time.monotonic() > send_by:  # its lease may be another's
            self.claims.release(timer.id)
            self.schedule(timer.id, self.clock.now(), force=True)  # claim it again first
            return
        try:
            result = await self._send(timer, attempt_no)
            if attempt_no == 1:
                self._observe_lateness(timer, result.started_at)
            self.metrics.delivery_seconds.observe(result.duration_ms / 1000)
            decision = decide(timer, attempt_no, result, self.clock.now(), self.deliverer.policy)
            self.metrics.deliveries_by_outcome[decision.outcome].inc()
            _log_attempt(timer, attempt_no, result, decision.outcome)
            self._outcomes.add(decision.after, decision.attempt)
            queued = True
        finally:
            if not queued:
                self.claims.release(timer.id)

    async def _send(self, timer: Timer, attempt_no: int) -> DeliveryResult:
        """Send one attempt; a bug in sending is a failed attempt, retried, not a lost timer."""
        started_at, started = time.time(), time.perf_counter()
        try:
            return await self.deliverer.send(timer, attempt_no)
        except Exception as exc:  # the guard: log it, and let the retry rule take the timer
            log.exception("delivery of %s failed unexpectedly", timer.id)
            duration_ms = (time.perf_counter() - started) * 1000
            error = f"internal error: {type(exc).__name__}: {exc}"[:500]
            return DeliveryResult(False, None, error, started_at, duration_ms)

    def _observe_lateness(self, timer: Timer, started_at: float) -> None:
        """Count a first attempt's lateness, apart for timers that were due before we knew."""
        late_s = max(0.0, started_at - timer.fire_at)
        known_at = max(timer.updated_at, self._boot_at)  # asked for in the past, or down
        if timer.fire_at < known_at - _OVERDUE_AFTER_S:
            self.metrics.overdue_seconds.observe(late_s)
        else:
            self.metrics.lateness_seconds.observe(late_s)

    async def _record(self, batch: list[OutcomeEntry]) -> None:
        """Commit outcomes, retrying while the disk refuses, until they land or we stop."""
        delay_s = 0.1
        while True:
            try:
                await self.store.record_attempts(batch)
                return
            except TimerdError as exc:
                if self._stopping:
                    raise
                log.warning(
                    "cannot record %d delivery outcomes yet (%s); retrying", len(batch), exc
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)

    def _settle(self, batch: list[OutcomeEntry], recorded: bool) -> None:
        """After a batch of outcomes: reschedule retries, count finished timers, unclaim."""
        for after, _ in batch:
            if recorded:
                if after.status not in LIVE_STATUSES:
                    self.live.add(-1)
                if after.next_at is not None:
                    self.schedule(after.id, after.next_at)
            self.claims.release(after.id)
        self._dispatcher.slot_free.set()  # the due loop counts these against its capacity


def _log_attempt(timer: Timer, attempt_no: int, result: DeliveryResult, outcome: Outcome) -> None:
    """Log one attempt at INFO; a timer out of attempts at WARNING, the line that matters."""
    level = logging.WARNING if outcome is Outcome.FAILED else logging.INFO
    if not log.isEnabledFor(level):  # its arguments cost more than a skipped line
        return
    log.log(
        level,
        "delivery id=%s url=%s attempt=%d status=%s outcome=%s lateness_ms=%.1f error=%s",
        timer.id,
        redact_url(timer.url),
        attempt_no,
        result.status_code,
        outcome.value,
        (result.started_at - timer.next_at) * 1000 if timer.next_at is not None else 0.0,
        result.error,
    )
