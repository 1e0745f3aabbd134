"""E2E fixtures: real `timerd serve` subprocesses, the real CLI, and polling with deadlines.

Every daemon is a `tests.procs.Daemon` (the helper the reliability campaigns use too): a
child process started with `--port 0` on a database under `tmp_path`, ready once its
`listening on http://HOST:PORT` line was read within a deadline; the `daemon` fixture always
stops it at teardown (SIGTERM, then SIGKILL). The webhook receiver is `tests.conftest.receiver`, an
aiohttp server in the test's own event loop, so it stays up across daemon restarts as long
as the test awaits (which is why the CLI runs through asyncio subprocesses, never blocking).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Receiver
from tests.procs import FAST_FLAGS, START_TIMEOUT_S, TIMERD, Daemon, clean_env
from tests.waiting import eventually

CLI_TIMEOUT_S = 60.0

FIGURES: list[str] = []
"""Measurements the tests report; printed in the terminal summary."""


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures the e2e tests measured (lateness, boot time)."""
    if FIGURES:
        terminalreporter.section("timerd e2e figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture
def report() -> Callable[[str], None]:
    """Record one measured figure for the terminal summary (and print it)."""

    def add(line: str) -> None:
        print(line)
        FIGURES.append(line)

    return add


# the command line ---------------------------------------------------------------------------


@dataclass
class CliResult:
    """What one `timerd ...` invocation did."""

    args: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str

    def ok(self) -> CliResult:
        """Assert exit 0 and return self."""
        assert self.rc == 0, f"timerd {' '.join(self.args)} -> {self.rc}\n{self.stderr}"
        return self

    def json(self) -> Any:
        """Return stdout parsed as JSON."""
        return json.loads(self.stdout)

    def one_error_line(self, rc: int = 1) -> str:
        """Assert exit `rc` with exactly one line on stderr and no traceback; return it."""
        assert self.rc == rc, (
            f"timerd {' '.join(self.args)}: expected exit {rc}, got {self.rc}\n"
            f"stdout: {self.stdout}\nstderr: {self.stderr}"
        )
        assert "Traceback" not in self.stderr, self.stderr
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one stderr line, got:\n{self.stderr}"
        return lines[0]


CliRunner = Callable[..., Awaitable[CliResult]]


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    """Run `timerd ARGS...` as a subprocess without blocking the event loop.

    `env_extra` adds variables to its clean environment (a proxy, a token, a time zone).
    """
    env = clean_env(tmp_path)

    async def run(
        *args: str | Path,
        stdin: bytes | None = None,
        stdout_file: Path | None = None,
        timeout_s: float = CLI_TIMEOUT_S,
        env_extra: dict[str, str] | None = None,
    ) -> CliResult:
        str_args = tuple(str(a) for a in args)
        with contextlib.ExitStack() as stack:
            out: Any = asyncio.subprocess.PIPE
            if stdout_file is not None:
                out = stack.enter_context(stdout_file.open("wb"))
            proc = await asyncio.create_subprocess_exec(
                TIMERD,
                *str_args,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.PIPE,
                env={**env, **(env_extra or {})},
            )
            try:
                async with asyncio.timeout(timeout_s):
                    stdout, stderr = await proc.communicate(stdin)
            except TimeoutError:
                proc.kill()
                await proc.communicate()
                raise AssertionError(
                    f"timerd {' '.join(str_args)} ran over {timeout_s} s"
                ) from None
        return CliResult(
            str_args, proc.returncode or 0, (stdout or b"").decode(), (stderr or b"").decode()
        )

    return run


# the daemon ---------------------------------------------------------------------------------

DaemonStarter = Callable[..., Awaitable[Daemon]]


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[DaemonStarter]:
    """Start a `tests.procs.Daemon` with FAST_FLAGS; every daemon is stopped at teardown.

    `await daemon(db, "--grace-s", "2")` returns once the `listening on` line was read and
    `/healthz` answered (`ready=False`: as soon as the line was read). Teardown also fails the
    test if a daemon outstayed its SIGTERM or logged a traceback.
    """
    started: list[Daemon] = []
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def start(
        db: Path, *flags: str, env: dict[str, str] | None = None, ready: bool = True
    ) -> Daemon:
        d = await Daemon(db, *FAST_FLAGS, *flags, env=env, home=tmp_path).start()
        started.append(d)
        if ready:
            await wait_healthy(session, d.url, timeout_s=START_TIMEOUT_S)
        return d

    try:
        yield start
    finally:
        await session.close()

    problems: list[str] = []
    for d in started:
        try:
            if d.running:
                await d.stop()
            else:
                await d.wait()
        except (AssertionError, TimeoutError) as exc:
            problems.append(str(exc) or f"timerd on {d.db} did not exit")
        if "Traceback" in d.log():
            problems.append(f"daemon on {d.db} logged a traceback:\n{d.log()}")
    assert not problems, "\n".join(problems)


# HTTP helpers -------------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client session for talking to daemons."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def create_timer(
    http: aiohttp.ClientSession, base: str, headers: dict[str, str] | None = None, **body: Any
) -> str:
    """POST /timers and return the new id."""
    async with http.post(f"{base}/timers", json=body, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["id"])


async def create_batch(
    http: aiohttp.ClientSession, base: str, items: list[dict[str, Any]]
) -> list[str]:
    """POST /timers/batch and return the ids in request order."""
    async with http.post(f"{base}/timers/batch", json={"timers": items}) as resp:
        assert resp.status == 201, await resp.text()
        return [str(i) for i in (await resp.json())["ids"]]


async def get_timer(http: aiohttp.ClientSession, base: str, timer_id: str) -> dict[str, Any]:
    """GET /timers/<id> and return the body."""
    async with http.get(f"{base}/timers/{timer_id}") as resp:
        assert resp.status == 200, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


async def get_attempts(
    http: aiohttp.ClientSession, base: str, timer_id: str
) -> list[dict[str, Any]]:
    """GET /timers/<id>/attempts and return the list."""
    async with http.get(f"{base}/timers/{timer_id}/attempts") as resp:
        assert resp.status == 200, await resp.text()
        return list((await resp.json())["attempts"])


async def list_all(http: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    """Return every timer through the paginated GET /timers."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        async with http.get(f"{base}/timers", params=params) as resp:
            assert resp.status == 200, await resp.text()
            page = await resp.json()
        found.extend(page["timers"])
        cursor = page["next_cursor"]
        if not cursor:
            return found


wait_until = eventually  # the e2e tests' name for it


async def wait_status(
    http: aiohttp.ClientSession, base: str, timer_id: str, status: str, timeout_s: float = 10.0
) -> dict[str, Any]:
    """Poll GET /timers/<id> until it has `status`; return it."""
    seen: dict[str, Any] = {}

    async def check() -> bool:
        seen.update(await get_timer(http, base, timer_id))
        return bool(seen["status"] == status)

    await wait_until(check, f"timer {timer_id} to be {status} (last: {seen})", timeout_s)
    return seen


async def wait_healthy(http: aiohttp.ClientSession, base: str, timeout_s: float = 10.0) -> None:
    """Poll /healthz until it answers 200."""

    async def check() -> bool:
        try:
            async with http.get(f"{base}/healthz") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    await wait_until(check, f"{base}/healthz", timeout_s, interval_s=0.005)


async def wait_for_ids(receiver: Receiver, ids: set[str], timeout_s: float = 10.0) -> None:
    """Wait until the receiver got at least one hit for each of `ids`."""
    async with asyncio.timeout(timeout_s):
        while not ids <= set(receiver.ids()):
            await receiver.wait_for(len(receiver.hits) + 1, timeout_s)


def hits_by_id(receiver: Receiver) -> dict[str, list[Any]]:
    """Group the receiver's hits by timer id."""
    grouped: dict[str, list[Any]] = {}
    for hit, tid in zip(receiver.hits, receiver.ids(), strict=True):
        grouped.setdefault(tid, []).append(hit)
    return grouped


def db_files(db: Path) -> Iterator[Path]:
    """Yield the database file and whichever of its -wal/-shm companions exist."""
    for suffix in ("", "-wal", "-shm"):
        p = db.with_name(db.name + suffix)
        if p.exists():
            yield p


# bulk-loaded databases ----------------------------------------------------------------------

BULK_COUNT = 100_000
BULK_URL = "http://127.0.0.1:9/bulk"  # port 9 (discard): nothing here ever falls due


def _bulk_timers(count: int, mixed: bool) -> list[Any]:
    """Return `count` timers due 10 min to ~28 h from now; `mixed` spreads them over statuses."""
    from timerd.models import Status, Timer, new_id

    now = time.time()
    timers = []
    for i in range(count):
        fire_at = now + 600 + i  # one a second, in due-time order
        timer = Timer(
            id=new_id(),
            url=f"{BULK_URL}?n={i}",
            fire_at=fire_at,
            created_at=now,
            next_at=fire_at,
            updated_at=now,
        )
        kind = i % 10 if mixed else 0
        if kind == 1:
            timer = timer.evolve(
                status=Status.FIRED, next_at=None, attempts=1, fired_at=now, last_status_code=200
            )
        elif kind == 2:
            timer = timer.evolve(
                status=Status.FAILED,
                next_at=None,
                attempts=8,
                last_status_code=503,
                last_error="HTTP 503",
            )
        elif kind == 3:
            timer = timer.evolve(status=Status.CANCELLED, next_at=None)
        elif kind == 4:
            timer = timer.evolve(
                status=Status.RETRYING,
                next_at=fire_at + 30.5,
                attempts=2,
                last_error="cannot connect to 127.0.0.1:9: Connection refused",
            )
        timers.append(timer)
    return timers


def build_bulk_db(path: Path, count: int, *, mixed: bool) -> float:
    """Write `count` timers into a new database through SqliteStore; return seconds taken."""
    from timerd.store.sqlite import SqliteStore

    async def load() -> float:
        timers = _bulk_timers(count, mixed)
        started = time.perf_counter()
        store = SqliteStore(path)
        await store.open()
        try:
            for start in range(0, len(timers), 20_000):
                await store.insert_timers(timers[start : start + 20_000])
        finally:
            await store.close()
        return time.perf_counter() - started

    # a thread of its own, so this event loop never meets the tests' loops
    result: list[float] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(load()))
        except BaseException as exc:
            errors.append(exc)

    import threading

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


@pytest.fixture(scope="session")
def bulk_mixed_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with 100k timers in every status (pending, retrying, fired, failed, cancelled).

    Session-scoped and never handed to a daemon: tests copy it before changing anything.
    """
    path = tmp_path_factory.mktemp("bulk-mixed") / "a.db"
    build_bulk_db(path, BULK_COUNT, mixed=True)
    return path


@pytest.fixture(scope="session")
def bulk_pending_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with 100k pending timers; copy it before use."""
    path = tmp_path_factory.mktemp("bulk-pending") / "a.db"
    build_bulk_db(path, BULK_COUNT, mixed=False)
    return path
