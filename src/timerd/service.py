"""The timer service: the operations of the API, the due loop and boot catch-up.

Ownership rule: a timer id is *claimed* while the due loop delivers it or an API call
changes it. Claims are taken and checked on the event loop without awaiting in between, so
a reschedule can never race a delivery: one of them waits for the other or gets a 409.
The database stays the source of truth; every entry popped from the heap is checked
against its row before it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass

from timerd.clock import Clock
from timerd.delivery import Deliverer, DeliveryResult, backoff_s
from timerd.dispatch import Dispatcher
from timerd.errors import Conflict, NotFound, TimerdError, Unavailable
from timerd.metrics import Metrics
from timerd.models import (
    LIVE_STATUSES,
    Attempt,
    Outcome,
    Status,
    Timer,
    new_ids,
    redact_url,
)
from timerd.outcomes import OutcomeEntry, OutcomeLog
from timerd.pacing import LoopLagGovernor
from timerd.pending import PendingCount
from timerd.scheduler import Scheduler
from timerd.store import Cursor, IdempotencyRecord, Store
from timerd.validation import CreateSpec, PatchSpec

log = logging.getLogger(__name__)

_DELIVERY = "delivery"
_CHANGE = "change"
_TOP: Cursor = (float("inf"), "")
_BOTTOM: Cursor = (float("-inf"), "")
_READ_CHUNK = 250
"""Due timers checked against their rows per step: each step holds the event loop, and
API requests wait for it (1,000 a step made catch-up creates wait 50 ms and more)."""
_REFILL_CHUNK = 1000
"""Keys paged into the heap per read, for the same reason: a 50,000-key read held the loop
0.1 s, and during a catch-up each 5,000-key read was followed by a 17-29 ms lag spike
(loop lag p99 16 ms; with 1,000 keys, 6-7 ms)."""
_IDEMPOTENCY_PURGE_EVERY_S = 300.0
_COUNTS_EVERY_S = 10.0
_OVERDUE_AFTER_S = 1.0
"""A timer due this long before timerd learnt of it (or booted) was overdue, not late: a
`{"seconds": 0}` create is due a moment before the service stamps it, and is not overdue."""
_SAME_INSTANT_S = 1e-6
"""Heap keys and stored times are the same instant within this (they pass through text)."""


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    """The settings the service itself acts on."""

    window_s: float
    window_max: int
    dispatch_queue_max: int
    catchup_rate_per_s: float
    attempts_kept: int
    idempotency_retention_s: float
    max_pending: int = 0


class TokenBucket:
    """A rate limit on a monotonic clock: `rate` tokens a second, at most `rate` banked."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self._last = time.monotonic()

    def available(self) -> int:
        """Refill, then return the whole tokens available."""
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self._last) * self.rate)
        self._last = now
        return int(self.tokens)

    def take(self, count: int) -> None:
        """Spend `count` tokens."""
        self.tokens -= count

    def wait_s(self) -> float:
        """Return how long until one whole token is available."""
        return max(0.0, (1 - self.tokens) / self.rate)


class TimerService:
    """Creates, reads and changes timers, and delivers them when they fall due."""

    def __init__(
        self,
        store: Store,
        deliverer: Deliverer,
        clock: Clock,
        limits: ServiceLimits,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.deliverer = deliverer
        self.clock = clock
        self.limits = limits
        self.metrics = metrics or Metrics()
        self.scheduler = Scheduler(clock)
        self._claims: dict[str, str] = {}
        self._horizon: Cursor = _BOTTOM
        self._horizon_complete = False
        self._refill_target = float("-inf")
        policy = deliverer.policy
        self._dispatcher = Dispatcher(self._deliver, policy.max_in_flight, policy.max_per_host)
        self._outcomes = OutcomeLog(self._record, self._settle)
        self._pacing = LoopLagGovernor(policy.max_in_flight, self._dispatcher.set_limit)
        self._loop_task: asyncio.Task[None] | None = None
        self._housekeeping_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._boot_at = 0.0
        self._catchup = TokenBucket(limits.catchup_rate_per_s)
        self._in_progress_keys: set[tuple[str, str]] = set()
        self.delivered_total = 0
        self._counts_at = float("-inf")
        self._counts: dict[Status, int] | None = None
        self._count_took_s = 0.0
        self._count_task: asyncio.Task[dict[Status, int]] | None = None
        self.pending = PendingCount(limits.max_pending)

    # lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the due loop; overdue timers fire right away, oldest first, rate-limited."""
        self._boot_at = self.clock.now()
        self._outcomes.start()
        self._pacing.start()
        self._loop_task = asyncio.create_task(self._due_loop(), name="timerd-due-loop")
        self._housekeeping_task = asyncio.create_task(
            self._housekeeping(), name="timerd-housekeeping"
        )

    async def stop(self, grace_s: float) -> None:
        """Stop firing; let deliveries in flight finish within `grace_s`, then cancel them.

        A cancelled delivery, or one whose outcome could not be committed in time, left its
        timer as it was in the database, so the next boot delivers it again (at-least-once).
        """
        deadline = time.monotonic() + grace_s
        self._stopping = True
        await self._pacing.stop()
        for task in (self._loop_task, self._housekeeping_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for waiting in self._dispatcher.drain():  # not started: they stay due for the next boot
            self._claims.pop(waiting.id, None)
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

    # API operations -------------------------------------------------------------------------

    async def create(
        self,
        specs: Sequence[CreateSpec],
        idempotency: Callable[[list[Timer]], IdempotencyRecord] | None = None,
    ) -> list[Timer]:
        """Create timers, committed before return; `idempotency` builds the key's record."""
        self.pending.check(len(specs))
        now = self.clock.now()
        make = Timer._make  # every field in order: a batch makes a thousand
        pending = Status.PENDING
        timers = [
            make((tid, url, fire_at, now, pending, fire_at, 0, now, None, None, None))
            for tid, (url, fire_at) in zip(new_ids(len(specs)), specs, strict=True)
        ]
        record = idempotency(timers) if idempotency is not None else None
        await self.store.insert_timers(timers, record)
        self.pending.add(len(timers))
        for timer in timers:
            self._schedule_if_near(timer.id, timer.fire_at)
        self.metrics.created.inc(len(timers))
        return timers

    async def get(self, timer_id: str) -> Timer:
        """Return the timer or raise NotFound."""
        timer = await self.store.get_timer(timer_id)
        if timer is None:
            raise NotFound(f"no timer {timer_id}")
        return timer

    async def list_timers(
        self, status: Status | None, limit: int, after: Cursor | None
    ) -> list[Timer]:
        """Return one page of timers ordered by due time."""
        return await self.store.list_timers(status, limit, after)

    async def attempts(self, timer_id: str) -> list[Attempt]:
        """Return a timer's kept delivery history, oldest first."""
        await self.get(timer_id)
        return await self.store.attempts(timer_id)

    async def cancel(self, timer_id: str) -> Timer:
        """Cancel a timer that has not fired; cancelling twice returns it unchanged."""
        async with self._changing(timer_id) as timer:
            if timer.status is Status.CANCELLED:
                return timer
            if timer.status is Status.FIRED:
                raise Conflict(f"timer {timer_id} already fired")
            changed = timer.evolve(
                status=Status.CANCELLED, next_at=None, updated_at=self.clock.now()
            )
            changed = await self._commit_change(timer, changed)
            self.pending.add(-1 if timer.status in LIVE_STATUSES else 0)
            return changed

    async def fire_now(self, timer_id: str) -> Timer:
        """Make a pending, retrying or failed timer due now, with a fresh attempt count."""
        async with self._changing(timer_id) as timer:
            if timer.status is Status.FIRED:
                raise Conflict(f"timer {timer_id} already fired")
            if timer.status is Status.CANCELLED:
                raise Conflict(f"timer {timer_id} is cancelled")
            now = self.clock.now()
            changed = timer.evolve(
                status=Status.PENDING, fire_at=now, next_at=now, attempts=0, updated_at=now
            )
            changed = await self._commit_change(timer, changed)
            self.pending.add(0 if timer.status in LIVE_STATUSES else 1)
            return changed

    async def reschedule(self, timer_id: str, patch: PatchSpec) -> Timer:
        """Move a pending or retrying timer and/or change its url; it becomes pending."""
        async with self._changing(timer_id) as timer:
            if timer.status not in LIVE_STATUSES:
                raise Conflict(f"timer {timer_id} is {timer.status.value}; only live timers move")
            now = self.clock.now()
            fire_at = timer.fire_at if patch.fire_at is None else patch.fire_at
            next_at = timer.next_at if patch.fire_at is None else patch.fire_at
            changed = timer.evolve(
                url=patch.url or timer.url,
                fire_at=fire_at,
                next_at=next_at,
                status=Status.PENDING,
                attempts=0,
                updated_at=now,
            )
            return await self._commit_change(timer, changed)

    @contextlib.asynccontextmanager
    async def _changing(self, timer_id: str) -> AsyncIterator[Timer]:
        """Claim `timer_id`, unschedule it and yield its fresh row; release afterwards.

        A timer queued for a delivery slot is taken out of the queue: only an attempt on the
        wire makes a change wait (409). Whatever happens, the schedule ends up agreeing with
        the row: a failed change puts back what it took, so no timer is stranded.
        """
        owner = self._claims.get(timer_id)
        if owner == _DELIVERY and not self._dispatcher.withdraw(timer_id):
            raise Conflict(f"timer {timer_id} is being delivered right now")
        if owner == _CHANGE:
            raise Conflict(f"timer {timer_id} is being changed by another request")
        self._claims[timer_id] = _CHANGE
        was_due_at = self.scheduler.remove(timer_id)
        if owner == _DELIVERY:
            was_due_at = self.clock.now()  # it was due and queued: due it stays
        timer: Timer | None = None
        try:
            timer = await self.store.get_timer(timer_id)
            if timer is None:
                raise NotFound(f"no timer {timer_id}")
            yield timer
        except BaseException:
            # the change did not happen: the row is as it was, and so must the schedule be
            due_at = timer.next_at if timer is not None else was_due_at
            if due_at is not None:
                self._schedule_if_near(timer_id, due_at, force=was_due_at is not None)
            raise
        finally:
            del self._claims[timer_id]

    async def _commit_change(self, before: Timer, after: Timer) -> Timer:
        applied = await self.store.update_timer(after, frozenset({before.status}))
        if not applied:
            raise Conflict(f"timer {before.id} changed meanwhile; try again")
        self.scheduler.remove(after.id)  # a refill may have paged in the old due time
        if after.next_at is not None:
            self._schedule_if_near(after.id, after.next_at)
        return after

    # idempotency keys -----------------------------------------------------------------------

    @contextlib.contextmanager
    def idempotency_slot(self, route: str, key: str) -> Iterator[None]:
        """Hold `(route, key)` while its first request runs; a repeat meanwhile gets 409."""
        slot = (route, key)
        if slot in self._in_progress_keys:
            raise Conflict("a request with this Idempotency-Key is still being processed")
        self._in_progress_keys.add(slot)
        try:
            yield
        finally:
            self._in_progress_keys.discard(slot)

    # the due loop -----------------------------------------------------------------------------

    def _schedule_if_near(self, timer_id: str, at: float, *, force: bool = False) -> None:
        """Put a timer in the heap if it falls inside the loaded window; else the store keeps it.

        `force` puts it back even beyond the window: it was in the heap, and a refill that
        ran meanwhile may have moved the horizon past it.
        """
        if force or (at, timer_id) <= self._horizon or at <= self._refill_target:
            self.scheduler.push(timer_id, at)

    async def _due_loop(self) -> None:
        while not self._stopping:
            try:
                await self._due_step()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop guard: log, pause a moment, carry on
                log.exception("due loop failed; retrying in 1 s")
                await asyncio.sleep(1.0)

    async def _due_step(self) -> None:
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

    async def _refill_if_needed(self) -> None:
        """Page the next due timers from the store into the heap as the window advances."""
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
        for at, timer_id in keys:
            # claimed ones too: a change that fails leaves its timer where the row says
            if timer_id not in self.scheduler and self._claims.get(timer_id) != _DELIVERY:
                self.scheduler.push(timer_id, at)
        if len(keys) == limit:
            self._horizon, self._horizon_complete = keys[-1], False
        else:
            self._horizon, self._horizon_complete = (until, "\U0010ffff"), True
        self.metrics.heap_size.set(len(self.scheduler))

    async def _dispatch(self, due: list[Cursor]) -> None:
        """Check popped entries against their rows and queue a delivery for each live one.

        A timer claimed meanwhile (a change in progress) is left to that change, which
        schedules it again whether or not it succeeds.
        """
        try:
            rows = {t.id: t for t in await self.store.get_timers([tid for _, tid in due])}
        except BaseException:
            for at, tid in due:  # back into the heap: the next step tries again
                self.scheduler.push(tid, at)
            raise
        for at, tid in due:
            timer = rows.get(tid)
            if tid in self._claims or timer is None or timer.status not in LIVE_STATUSES:
                continue
            if timer.next_at is None:
                continue
            if abs(timer.next_at - at) > _SAME_INSTANT_S:
                self._schedule_if_near(tid, timer.next_at)  # moved since: its row decides
                continue
            self._claims[tid] = _DELIVERY
            self._dispatcher.submit(timer)

    async def _deliver(self, timer: Timer) -> None:
        """Send one attempt; its outcome goes to the outcome log, which keeps the claim."""
        attempt_no = timer.attempts + 1
        queued = False
        try:
            result = await self.deliverer.send(timer, attempt_no)
            if attempt_no == 1:
                self._observe_lateness(timer, result.started_at)
            self.metrics.delivery_seconds.observe(result.duration_ms / 1000)
            after, attempt = self._outcome(timer, attempt_no, result)
            self._outcomes.add(after, attempt)
            queued = True
        finally:
            if not queued:
                self._claims.pop(timer.id, None)

    def _observe_lateness(self, timer: Timer, started_at: float) -> None:
        """Count a first attempt's lateness, apart for timers that were due before we knew."""
        late_s = max(0.0, started_at - timer.fire_at)
        known_at = max(timer.updated_at, self._boot_at)  # asked for in the past, or down
        if timer.fire_at < known_at - _OVERDUE_AFTER_S:
            self.metrics.overdue_seconds.observe(late_s)
        else:
            self.metrics.lateness_seconds.observe(late_s)

    def _outcome(
        self, timer: Timer, attempt_no: int, result: DeliveryResult
    ) -> tuple[Timer, Attempt]:
        """Turn one attempt's result into the timer's next state and its history entry."""
        now = self.clock.now()
        policy = self.deliverer.policy
        common = {"attempts": attempt_no, "updated_at": now, "last_status_code": result.status_code}
        if result.delivered:
            outcome = Outcome.DELIVERED
            after = timer.evolve(
                status=Status.FIRED, next_at=None, fired_at=now, last_error=None, **common
            )
        elif result.permanent or attempt_no >= policy.max_attempts:
            outcome = Outcome.FAILED
            after = timer.evolve(
                status=Status.FAILED, next_at=None, last_error=result.error, **common
            )
        else:
            outcome = Outcome.RETRY
            delay = backoff_s(attempt_no, policy.backoff_base_s, policy.backoff_max_s)
            if result.retry_after_s is not None:
                delay = max(delay, result.retry_after_s)
            after = timer.evolve(
                status=Status.RETRYING, next_at=now + delay, last_error=result.error, **common
            )
        self.metrics.deliveries_by_outcome[outcome].inc()
        level = logging.WARNING if outcome is Outcome.FAILED else logging.INFO
        if log.isEnabledFor(level):  # its arguments cost more than a skipped line
            self._log_attempt(level, timer, attempt_no, result, outcome)
        attempt = Attempt(
            timer_id=timer.id,
            attempt=attempt_no,
            started_at=result.started_at,
            duration_ms=result.duration_ms,
            status_code=result.status_code,
            error=result.error,
            outcome=outcome,
        )
        if outcome is Outcome.DELIVERED:
            self.delivered_total += 1
        return after, attempt

    @staticmethod
    def _log_attempt(
        level: int, timer: Timer, attempt_no: int, result: DeliveryResult, outcome: Outcome
    ) -> None:
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
                    self.pending.add(-1)
                if after.next_at is not None:
                    self._schedule_if_near(after.id, after.next_at)
            self._claims.pop(after.id, None)
        self._dispatcher.slot_free.set()  # the due loop counts these against its capacity

    async def refresh_gauges(self) -> None:
        """Bring the gauges up to date before a scrape (status counts at most every 10 s)."""
        m = self.metrics
        m.heap_size.set(len(self.scheduler))
        m.in_flight.set(self.deliverer.in_flight)
        m.write_queue.set(getattr(self.store, "queued_writes", 0))
        m.set_counts(await self.status_counts(_COUNTS_EVERY_S))

    async def status_counts(self, max_age_s: float) -> dict[Status, int]:
        """Return timers by status, counted at most `max_age_s` ago (or longer, see below).

        Counting walks an index: about a second at ten million timers. So callers share one
        count in progress, and a count is reused for at least five times what it took.
        """
        now = time.monotonic()
        age_limit = max(max_age_s, 5 * self._count_took_s)
        if self._counts is not None and now - self._counts_at < age_limit:
            return dict(self._counts)
        if self._count_task is None:
            self._count_task = asyncio.create_task(self._count_now())
        task = self._count_task
        return dict(await asyncio.shield(task))

    async def _count_now(self) -> dict[Status, int]:
        started = time.monotonic()
        try:
            counts = await self.store.count_by_status()
        finally:
            self._count_task = None
        self._count_took_s = time.monotonic() - started
        self._counts, self._counts_at = counts, time.monotonic()
        return counts

    # housekeeping ---------------------------------------------------------------------------

    async def _count_pending(self) -> None:
        """Set the base of the live-timer count from the store, once, after boot."""
        if not self.pending.limit:
            return
        try:
            start = self.pending.mark_count_start()
            counts = await self.store.count_by_status()
            self.pending.set_counted(sum(counts[s] for s in LIVE_STATUSES), start)
        except TimerdError as exc:
            log.warning("cannot count pending timers; max_pending counts new ones only: %s", exc)

    async def _housekeeping(self) -> None:
        await self._count_pending()
        while not self._stopping:
            try:
                cutoff = self.clock.now() - self.limits.idempotency_retention_s
                removed = await self.store.purge_idempotency(cutoff)
                if removed:
                    log.info("forgot %d expired idempotency keys", removed)
            except Unavailable as exc:
                log.warning("idempotency purge skipped: %s", exc)
            await asyncio.sleep(_IDEMPOTENCY_PURGE_EVERY_S)
