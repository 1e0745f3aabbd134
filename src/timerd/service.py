"""The timer service: the API's operations (create, read, list, cancel, fire, reschedule),
idempotency keys, and the figures the API shows.

It calls down into the firing path (timerd.firing) to schedule what it changed, and into
the store; the firing path never calls back up here. A change claims its timer through the
store's claims, so a change and a delivery never act on one timer at once: one of them
waits for the other or gets a 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass

from timerd import __version__
from timerd.clock import Clock
from timerd.config import Settings, node_id_of
from timerd.delivery.deliverer import Deliverer
from timerd.errors import Conflict, FieldError, NotFound, TimerdError, Unavailable, ValidationFailed
from timerd.firing.due_loop import DueLoop, FiringLimits
from timerd.firing.live_count import LiveCount
from timerd.metrics import Metrics
from timerd.models import LIVE_STATUSES, Attempt, Status, Timer, new_ids
from timerd.store import Cursor, IdempotencyRecord, Store
from timerd.store.nodes import LocalNodes, NodeInfo, NodeRegistry
from timerd.validation import CreateSpec, PatchSpec

log = logging.getLogger(__name__)

_IDEMPOTENCY_PURGE_EVERY_S = 300.0
_COUNTS_EVERY_S = 10.0


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """A create that carried an `Idempotency-Key`: where, which key, and its body's hash."""

    route: str
    key: str
    body_hash: str


@dataclass(frozen=True, slots=True)
class Replay:
    """The first answer to an idempotent create, to send again byte for byte."""

    status: int
    body: bytes


AnswerBody = Callable[[list[Timer]], bytes]
"""Makes a create's success body from its timers (kept for replays)."""


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    """The settings the service and its firing path act on."""

    window_s: float
    window_max: int
    dispatch_queue_max: int
    catchup_rate_per_s: float
    attempts_kept: int
    idempotency_retention_s: float
    max_pending: int = 0


class TimerService:
    """Creates, reads and changes timers; its firing path delivers them when due."""

    def __init__(
        self,
        store: Store,
        deliverer: Deliverer,
        clock: Clock,
        limits: ServiceLimits,
        metrics: Metrics | None = None,
        nodes: NodeRegistry | None = None,
    ) -> None:
        self.store = store
        self.deliverer = deliverer
        self.clock = clock
        self.limits = limits
        self.metrics = metrics or Metrics()
        self.nodes = nodes or LocalNodes(node_id_of(Settings()), __version__)
        self.pending = LiveCount(limits.max_pending)
        self.firing = DueLoop(
            store,
            deliverer,
            clock,
            FiringLimits(
                window_s=limits.window_s,
                window_max=limits.window_max,
                dispatch_queue_max=limits.dispatch_queue_max,
                catchup_rate_per_s=limits.catchup_rate_per_s,
            ),
            self.metrics,
            self.pending,
        )
        self._housekeeping_task: asyncio.Task[None] | None = None
        self._in_progress_keys: set[tuple[str, str]] = set()
        self._counts_at = float("-inf")
        self._counts: dict[Status, int] | None = None
        self._count_took_s = 0.0
        self._count_task: asyncio.Task[dict[Status, int]] | None = None

    # lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start firing (overdue timers first, rate-limited) and the housekeeping."""
        self.firing.start()
        self._housekeeping_task = asyncio.create_task(
            self._housekeeping(), name="timerd-housekeeping"
        )

    async def stop(self, grace_s: float) -> None:
        """Stop firing; let deliveries in flight finish within `grace_s` (see DueLoop.stop).

        The node leaves the set before that wait, so the others take its timers over at once.
        """
        if self._housekeeping_task is not None:
            self._housekeeping_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping_task
        await self.firing.stop(grace_s, handover=self.nodes.stop)

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
            self.firing.schedule(timer.id, timer.fire_at)
        self.metrics.created.inc(len(timers))
        return timers

    async def get(self, timer_id: str) -> Timer:
        """Return the timer or raise NotFound."""
        timer = await self.store.get_timer(timer_id)
        if timer is None:
            raise NotFound(f"no timer {timer_id}")
        return timer

    async def list_timers(
        self, statuses: Collection[Status] | None, limit: int, after: Cursor | None
    ) -> list[Timer]:
        """Return one page of timers in `statuses` (None: all) ordered by due time."""
        return await self.store.list_timers(statuses, limit, after)

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

        Whatever happens, the schedule ends up agreeing with the row: a change that fails
        puts back what it took, so no timer waits for a restart.
        """
        was_due_at = self.firing.take_for_change(timer_id)
        timer: Timer | None = None
        try:
            timer = await self.store.get_timer(timer_id)
            if timer is None:
                raise NotFound(f"no timer {timer_id}")
            yield timer
        except BaseException:
            due_at = timer.next_at if timer is not None else was_due_at
            self.firing.unchanged(timer_id, due_at, was_scheduled=was_due_at is not None)
            raise
        finally:
            self.firing.release(timer_id)

    async def _commit_change(self, before: Timer, after: Timer) -> Timer:
        applied = await self.store.change_timer(before, after)
        if not applied:
            raise Conflict(f"timer {before.id} changed meanwhile; try again")
        self.firing.changed(after.id, after.next_at)
        return after

    # idempotency keys -----------------------------------------------------------------------

    async def create_once(
        self, specs: Sequence[CreateSpec], once: IdempotentRequest, answer: AnswerBody
    ) -> list[Timer] | Replay:
        """Create timers once per `(route, key)`; a repeat gets the first answer to replay.

        A repeat within the retention window with the same body hash gets a Replay of the
        first answer's exact bytes (`answer(timers)` made them); with another body it is
        ValidationFailed (422); while the first request still runs, Conflict (409).
        """
        with self.idempotency_slot(once.route, once.key):
            record = await self.store.get_idempotency(once.route, once.key)
            retained_from = self.clock.now() - self.limits.idempotency_retention_s
            if record is not None and record.created_at >= retained_from:
                if record.body_hash != once.body_hash:
                    raise ValidationFailed(
                        [FieldError("Idempotency-Key", "was used before with a different body")]
                    )
                return Replay(record.status, record.response.encode())

            def make_record(timers: list[Timer]) -> IdempotencyRecord:
                body = answer(timers).decode()
                return IdempotencyRecord(
                    once.route, once.key, once.body_hash, 201, body, self.clock.now()
                )

            return await self.create(specs, make_record)

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

    # figures ------------------------------------------------------------------------------

    async def live_nodes(self) -> list[NodeInfo]:
        """Return the live nodes sharing the timer set (on SQLite: this daemon alone)."""
        return await self.nodes.live()

    @property
    def shares_timers(self) -> bool:
        """Tell whether other nodes share this timer set (PostgreSQL), or it is ours alone."""
        return self.store.shared

    async def refresh_gauges(self) -> None:
        """Bring the gauges up to date before a scrape (status counts at most every 10 s)."""
        m = self.metrics
        m.heap_size.set(len(self.firing.scheduler))
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
        while True:  # until stop() cancels it
            try:
                cutoff = self.clock.now() - self.limits.idempotency_retention_s
                removed = await self.store.purge_idempotency(cutoff)
                if removed:
                    log.info("forgot %d expired idempotency keys", removed)
            except Unavailable as exc:
                log.warning("idempotency purge skipped: %s", exc)
            await asyncio.sleep(_IDEMPOTENCY_PURGE_EVERY_S)
