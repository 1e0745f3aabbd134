"""Files are private (0600 / 0700) and URLs with credentials are redacted in logs and tables."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner

from tests.conftest import Receiver, make_settings
from tests.waiting import eventually
from timerd.cli.group import cli
from timerd.daemon.app import build_app
from timerd.daemon.logs import configure_logging
from timerd.store.folders import make_private_dirs
from timerd.store.locking import DatabaseLock

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]
PASSWORD = "pa55w0rd-hunter2"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A permissive umask, so the modes below come from timerd, not from the umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
async def test_database_wal_shm_and_folder_are_private(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    db = tmp_path / "state" / "timerd.db"
    client = await aiohttp_client(build_app(make_settings(tmp_path, db=db)))
    resp = await client.post("/timers", json={"hours": 1, "url": "https://a.example/h"})
    assert resp.status == 201
    wal, shm = db.with_name("timerd.db-wal"), db.with_name("timerd.db-shm")
    assert wal.exists()
    assert shm.exists()
    assert _mode(db.parent) == 0o700
    for path in (db, wal, shm):
        assert _mode(path) == 0o600, path


@pytest.mark.usefixtures("open_umask")
async def test_every_folder_made_for_the_database_is_private(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    os.chmod(tmp_path, 0o755)
    db = tmp_path / "a" / "b" / "timerd.db"
    await aiohttp_client(build_app(make_settings(tmp_path, db=db)))
    for folder in (tmp_path / "a", db.parent):
        assert _mode(folder) == 0o700, folder
    assert _mode(tmp_path) == 0o755  # a folder that was there keeps its mode


@pytest.mark.usefixtures("open_umask")
def test_private_dirs_leave_existing_folders_alone_and_refuse_a_file(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    make_private_dirs(tmp_path / "x" / "y")
    assert (_mode(tmp_path), _mode(tmp_path / "x"), _mode(tmp_path / "x" / "y")) == (
        0o755,
        0o700,
        0o700,
    )
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        make_private_dirs(tmp_path / "file" / "z")


@pytest.mark.usefixtures("open_umask")
def test_lock_file_is_private(tmp_path: Path) -> None:
    lock = DatabaseLock(tmp_path / "timerd.db")
    lock.acquire()
    try:
        assert _mode(lock.path) == 0o600
    finally:
        lock.release()


async def test_credentials_are_redacted_in_delivery_logs(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="timerd")
    client = await aiohttp_client(build_app(make_settings(tmp_path, max_attempts=1)))
    url = receiver.url.replace("http://", f"http://alice:{PASSWORD}@")
    resp = await client.post("/timers", json={"seconds": 0, "url": url})
    assert resp.status == 201
    hit = (await receiver.wait_for(1))[0]
    assert hit.headers.get("Authorization", "").startswith("Basic ")  # the URL's credentials work
    await eventually(lambda: "outcome=delivered" in caplog.text, "the delivery's log line", 5)
    assert "***@127.0.0.1" in caplog.text
    assert PASSWORD not in caplog.text


async def test_credentials_are_redacted_in_cli_tables(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    db = tmp_path / "timerd.db"
    client = await aiohttp_client(build_app(make_settings(tmp_path, db=db)))
    url = f"https://bob:{PASSWORD}@hooks.example/h"
    resp = await client.post("/timers", json={"hours": 1, "url": url})
    tid = (await resp.json())["id"]
    runner = CliRunner()
    for args in (["list", "--db", str(db)], ["show", tid, "--db", str(db)]):
        result = await asyncio.to_thread(runner.invoke, cli, args)
        assert result.exit_code == 0, result.output
        assert "https://***@hooks.example/h" in result.output
        assert PASSWORD not in result.output


def test_debug_logging_keeps_query_parameters_out() -> None:
    """aiosqlite logs every query with its parameters at DEBUG; timerd never shows those."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("debug", "text")
        assert root.level == logging.DEBUG
        assert not logging.getLogger("aiosqlite").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name in ("aiosqlite", "aiohttp.access"):
            logging.getLogger(name).setLevel(logging.NOTSET)
