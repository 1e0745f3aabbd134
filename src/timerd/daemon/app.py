"""The daemon's lifecycle: build the app, serve, stop on a signal, exit with a code.

`run(settings)` is what `timerd serve` calls and what tests can call too: startup, wait for
a signal, shutdown. A signal handler only sets a flag; a second one forces the exit.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractResolver

from timerd import __version__
from timerd.api.app_keys import ApiLimits
from timerd.api.origin_guard import HostRule
from timerd.api.routes import build_api
from timerd.clock import Clock, SystemClock
from timerd.config import Settings, is_postgres_url, node_id_of, read_token
from timerd.daemon import sdnotify
from timerd.daemon.checks import check_serve_settings
from timerd.daemon.listening import LISTEN_BACKLOG, ListenError, listen_sockets
from timerd.daemon.logs import configure_logging
from timerd.delivery.deliverer import Deliverer, DeliveryPolicy
from timerd.delivery.outbound import OutboundPolicy
from timerd.delivery.signing import parse_secret
from timerd.errors import ConfigError, TimerdError
from timerd.metrics import Metrics
from timerd.service import ServiceLimits, TimerService
from timerd.store import display_db, make_nodes, make_store
from timerd.store.address_file import AddressRecord, connect_url
from timerd.store.folders import make_private_dirs
from timerd.store.locking import DatabaseLock
from timerd.validation import BodyLimits

log = logging.getLogger(__name__)

OUTCOME_COMMIT_S = 1.0
"""Added to `attempt_timeout_s` in a clean stop, for the last attempt's outcome to commit."""


def build_app(
    settings: Settings, *, clock: Clock | None = None, resolver: AbstractResolver | None = None
) -> web.Application:
    """Return the application; the store opens and the due loop starts with it.

    `resolver` replaces aiohttp's DNS resolver under the outbound policy (tests use it).
    """
    clock = clock or SystemClock()
    outbound = OutboundPolicy.from_settings(settings)
    metrics = Metrics()
    node_id = node_id_of(settings)
    nodes = make_nodes(
        settings.db,
        node_id=node_id,
        version=__version__,
        lease_s=settings.node_lease_s,
        max_clock_skew_s=settings.max_clock_skew_s,
        on_offset=metrics.clock_offset.set,
    )
    store = make_store(
        settings.db,
        synchronous=settings.synchronous,
        attempts_kept=settings.attempts_kept,
        write_queue_max=settings.write_queue_max,
        on_commit=metrics.on_commit,
        nodes=nodes,  # PostgreSQL: claims carry this node's id; it pages its own buckets
        node_lease_s=settings.node_lease_s,
        attempt_timeout_s=settings.attempt_timeout_s,
        idempotency_retention_s=settings.idempotency_retention_s,  # a fresh key is kept
    )
    deliverer = Deliverer(
        DeliveryPolicy(
            attempt_timeout_s=settings.attempt_timeout_s,
            max_in_flight=settings.max_in_flight,
            max_per_host=settings.max_per_host,
            max_attempts=settings.max_attempts,
            backoff_base_s=settings.backoff_base_s,
            backoff_max_s=settings.backoff_max_s,
            retry_after_max_s=settings.retry_after_max_s,
        ),
        resolver=resolver,
        outbound=outbound,
        signing_key=parse_secret(settings.signing_secret) if settings.signing_secret else None,
        node_id=node_id,
    )
    service = TimerService(
        store,
        deliverer,
        clock,
        ServiceLimits(
            window_s=settings.window_s,
            window_max=settings.window_max,
            dispatch_queue_max=settings.dispatch_queue_max,
            catchup_rate_per_s=settings.catchup_rate_per_s,
            attempts_kept=settings.attempts_kept,
            idempotency_retention_s=settings.idempotency_retention_s,
            max_pending=settings.max_pending,
        ),
        metrics,
        nodes,
    )
    limits = ApiLimits(
        body=BodyLimits(
            max_delay_s=settings.max_delay_s,
            max_url_length=settings.max_url_length,
            host_check=outbound.check_host,
        ),
        batch_max=settings.batch_max,
        list_limit_max=settings.list_limit_max,
    )
    app = build_api(
        service,
        limits,
        settings.max_body_bytes,
        read_token(settings),
        body_timeout_s=settings.request_body_timeout_s,
        host_rule=HostRule.from_settings(settings),
    )

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        try:
            await nodes.start()  # refuses a clock too far off the database's
            await deliverer.start()
            overdue = await store.count_due(clock.now())
            if overdue:
                log.info(
                    "catching up on %d timers that fell due while timerd was down "
                    "(at most %g a second)",
                    overdue,
                    settings.catchup_rate_per_s,
                )
            await service.start()
            yield
            await service.stop(stop_grace_s(settings))
        finally:
            await nodes.stop()  # a clean stop leaves the set at once
            await deliverer.close()
            await store.close()

    app.cleanup_ctx.append(lifecycle)
    return app


def stop_grace_s(settings: Settings) -> float:
    """Return how long a clean stop lets deliveries finish: `grace_s`, but never too short.

    An attempt cut short by the stop is sent again at the next boot, so a receiver that
    answered late would get it twice across a clean restart. An attempt ends by itself within
    `attempt_timeout_s`; the stop waits that long, plus a moment to commit its outcome.
    """
    return max(settings.grace_s, settings.attempt_timeout_s + OUTCOME_COMMIT_S)


def run(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT; return the process exit code."""
    configure_logging(settings.log_level, settings.log_format)
    try:
        check_serve_settings(settings)
    except ConfigError as exc:
        print(f"timerd: error: {exc}", file=sys.stderr, flush=True)
        return 2
    # the port first: a start that cannot listen leaves no folder, database nor lock behind
    try:
        sockets = listen_sockets(settings.host, settings.port)
    except ListenError as exc:
        return _fail(str(exc))
    try:
        return _run_on(settings, sockets)
    finally:
        for sock in sockets:
            sock.close()


def _run_on(settings: Settings, sockets: list[socket.socket]) -> int:
    if is_postgres_url(settings.db):  # shared by nodes: no lock, no folder, no address record
        try:
            return _event_loop_run(_serve(settings, sockets, None))
        except TimerdError as exc:
            return _fail(str(exc))
    assert isinstance(settings.db, Path)
    try:
        make_private_dirs(settings.db.parent)
    except OSError as exc:
        return _fail(f"cannot create {settings.db.parent}: {exc.strerror}")
    lock = DatabaseLock(settings.db)
    try:
        lock.acquire()
    except TimerdError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot lock {settings.db}: {exc.strerror}")
    try:
        return _event_loop_run(_serve(settings, sockets, lock))
    except TimerdError as exc:
        return _fail(str(exc))
    finally:
        lock.release()


def _event_loop_run(main: asyncio.Future[int] | object) -> int:
    try:
        import uvloop  # noqa: PLC0415  not on every platform
    except ImportError:  # platforms without uvloop run on the standard loop
        return asyncio.run(main)  # type: ignore[arg-type]
    return uvloop.run(main)  # type: ignore[arg-type]


def _fail(message: str) -> int:
    print(f"timerd: error: {message}", file=sys.stderr, flush=True)
    return 1


async def _serve(
    settings: Settings, sockets: list[socket.socket], lock: DatabaseLock | None
) -> int:
    stop = _stop_on_signals()  # before anything else, so an early SIGTERM is a clean stop too
    app = build_app(settings)

    async def hold_lock(app: web.Application) -> None:
        if lock is not None:
            lock.hold()  # after the store opened, whose first connection came and went

    app.on_startup.append(hold_lock)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=settings.grace_s
    )
    try:
        await runner.setup()  # inside: a failed start still stops what had started
        for sock in sockets:
            await web.SockSite(runner, sock, backlog=LISTEN_BACKLOG).start()
        settle_heap()
        host, port = runner.addresses[0][:2]
        url = f"http://{_url_host(str(host))}:{port}"
        print(f"listening on {url}", flush=True)  # the first line, whole: scripts read it
        log.info("timerd serving %s on %s (press Ctrl+C to stop)", display_db(settings.db), url)
        # beside the database, so `timerd add --db` finds this daemon whatever its port
        address = (
            AddressRecord.publish(settings.db, connect_url(str(host), int(port)))
            if isinstance(settings.db, Path)
            else None
        )
        try:
            sdnotify.ready()
            await stop.wait()
        finally:
            if address is not None:
                address.withdraw()
        sdnotify.stopping()
        log.info("stopping: draining deliveries for up to %.1f s", stop_grace_s(settings))
    finally:
        await runner.cleanup()
    log.info("stopped cleanly")
    return 0


def settle_heap() -> None:
    """Collect boot's garbage, then exempt everything alive from the cyclic GC for good.

    The modules, the app and the loaded window are most of the heap and live as long as the
    process, yet every full collection walked them: during a catch-up each one stopped the
    event loop for tens of milliseconds, and every create in flight waited. Frozen
    objects are still freed by reference counting when they go.
    """
    gc.collect()
    gc.freeze()


def _stop_on_signals() -> asyncio.Event:
    """Return an event that SIGTERM or SIGINT sets; a second signal exits at once."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():  # the second signal: the user means it
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(1)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    return stop


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
