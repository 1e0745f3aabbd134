"""What an operator reads: lateness that means scheduling, and the warning that matters.

Issue 16, items 6 and 7, against a real daemon and the real `timerd stats`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Hit, Receiver
from tests.e2e.conftest import CliRunner, DaemonStarter, create_timer, wait_status, wait_until

pytestmark = pytest.mark.e2e

SIX_DAYS_S = 6 * 86400


async def test_a_timer_asked_for_in_the_past_is_not_scheduling_lateness(
    tmp_path: Path,
    daemon: DaemonStarter,
    http: aiohttp.ClientSession,
    receiver: Receiver,
    cli: CliRunner,
) -> None:
    d = await daemon(tmp_path / "timers.db")
    past = await create_timer(http, d.url, url=receiver.url, fire_at=time.time() - SIX_DAYS_S)
    now = await create_timer(http, d.url, url=receiver.url, seconds=0)
    await wait_status(http, d.url, past, "fired")
    await wait_status(http, d.url, now, "fired")

    figures: dict[str, Any] = {}

    async def both_counted() -> bool:
        figures.update((await cli("stats", "--addr", d.url, "--json")).ok().json())
        return bool(figures["lateness_s"]["count"] + figures["overdue_s"]["count"] == 2)

    await wait_until(both_counted, "both first attempts in the figures")
    lateness, overdue = figures["lateness_s"], figures["overdue_s"]
    assert lateness["count"] == 1
    assert lateness["p99"] < 5
    assert overdue["count"] == 1
    assert overdue["p99"] > 86400  # a day, not a bucket bound

    text = (await cli("stats", "--addr", d.url)).ok().stdout
    (lateness_line,) = [line for line in text.splitlines() if line.startswith("lateness")]
    assert "30.00 s" not in lateness_line
    assert "(1 first attempts)" in lateness_line
    assert "overdue     1 first attempts" in text


async def test_a_timer_out_of_attempts_is_a_warning(
    tmp_path: Path, daemon: DaemonStarter, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    async def refuse(_: Hit) -> web.StreamResponse:
        return web.Response(status=500)

    receiver.respond = refuse
    d = await daemon(
        tmp_path / "timers.db", "--max-attempts", "2", env={"TIMERD_LOG_LEVEL": "warning"}
    )
    timer_id = await create_timer(http, d.url, url=receiver.url, seconds=0)
    await wait_status(http, d.url, timer_id, "failed")

    async def warned() -> bool:
        return timer_id in d.log()

    await wait_until(warned, "the failure to be logged")
    (line,) = [line for line in d.log().splitlines() if timer_id in line]
    assert "WARNING" in line
    assert "outcome=failed" in line
    assert "attempt=2" in line
