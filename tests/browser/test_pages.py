"""The status page and the docs page in real headless Chromium against a real `timerd serve`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.browser.cdp import Page
from tests.browser.conftest import ARTIFACTS
from tests.conftest import Hit, Receiver
from tests.procs import Daemon

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]  # the first run may install Chromium


async def _create(http: aiohttp.ClientSession, base: str, **body: Any) -> str:
    async with http.post(f"{base}/timers", json=body) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["id"])


async def _status(http: aiohttp.ClientSession, base: str, timer_id: str) -> str:
    async with http.get(f"{base}/timers/{timer_id}") as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["status"])


async def _wait_status(
    http: aiohttp.ClientSession, base: str, timer_id: str, want: str, timeout_s: float = 10.0
) -> None:
    async with asyncio.timeout(timeout_s):
        while await _status(http, base, timer_id) != want:
            await asyncio.sleep(0.05)


async def _only_local_resources(page: Page, base: str) -> None:
    urls = await page.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name).concat([location.href])"
    )
    assert urls, "no resources recorded"
    assert all(u.startswith(base) for u in urls), urls


async def test_status_page_shows_timers_and_cancels_one(
    daemon: Daemon, page: Page, receiver: Receiver
) -> None:
    async def respond(hit: Hit) -> web.StreamResponse:
        return web.Response(status=500 if "/bad/" in hit.path else 200)

    receiver.respond = respond
    base = daemon.url
    async with aiohttp.ClientSession() as http:
        target = await _create(http, base, hours=1, url=f"{receiver.url}/ok")
        await _create(http, base, seconds=45, url=f"{receiver.url}/ok")
        await _create(http, base, minutes=5, url=f"{receiver.url}/ok")
        delivered = await _create(http, base, seconds=0, url=f"{receiver.url}/ok")
        failing = await _create(http, base, seconds=0, url=f"{receiver.url}/bad")
        await _wait_status(http, base, delivered, "fired")
        await _wait_status(http, base, failing, "failed")

        await page.goto(base + "/")
        row = f'#next tr[data-id="{target}"]'
        await page.wait_for(f"document.querySelector('{row}') !== null")
        countdown = await page.evaluate(f"document.querySelector('{row} td.countdown').textContent")
        assert countdown.startswith(("59m", "1h")), countdown
        # the countdown is live: it changes without a reload
        await page.wait_for(
            f"document.querySelector('{row} td.countdown').textContent !== {json.dumps(countdown)}",
            timeout_s=5,
        )
        await page.wait_for(
            f"document.querySelector('#recent-fired tr[data-id=\"{delivered}\"]') !== null"
        )
        error = await page.wait_for(
            f"document.querySelector('#recent-failed tr[data-id=\"{failing}\"] td.error')"
            "?.textContent"
        )
        assert "500" in error
        await page.wait_for(
            "document.querySelector('[data-count=\"pending\"]').textContent === '3'"
        )
        bars = await page.wait_for("document.querySelectorAll('#lateness-chart svg rect').length")
        assert bars >= 2
        await _only_local_resources(page, base)

        await page.screenshot(ARTIFACTS / "status-page.png")

        await page.click(f"{row} button.cancel")
        await _wait_status(http, base, target, "cancelled")
        assert page.dialogs
        assert target in page.dialogs[0]
        await page.wait_for(f"document.querySelector('{row}') === null")
        await page.wait_for(
            "document.querySelector('[data-count=\"cancelled\"]').textContent === '1'"
        )
    assert page.errors == []


async def test_docs_page_renders_the_api_and_tries_it(daemon: Daemon, page: Page) -> None:
    base = daemon.url
    await page.goto(base + "/docs")
    await page.wait_for("document.body.dataset.loaded === 'true'")
    async with aiohttp.ClientSession() as http, http.get(base + "/openapi.json") as resp:
        doc = await resp.json()
    methods = {"get", "post", "put", "patch", "delete"}
    expected = sum(1 for item in doc["paths"].values() for m in item if m in methods)
    shown = await page.evaluate("document.querySelectorAll('details.op').length")
    assert shown == expected

    create = 'details.op[data-method="post"][data-path="/timers"]'
    await page.click(f"{create} > summary")
    body = await page.evaluate(f"document.querySelector('{create} textarea').value")
    assert json.loads(body)["url"].startswith("https://")
    await page.click(f"{create} button.send")
    status = await page.wait_for(
        f"(t => t !== '…' && t)(document.querySelector('{create} .status-line').textContent)"
    )
    assert status.startswith("201"), status
    answer = await page.evaluate(f"document.querySelector('{create} pre.response').textContent")
    assert "Location: /timers/" in answer

    health = 'details.op[data-method="get"][data-path="/healthz"]'
    await page.click(f"{health} > summary")
    await page.click(f"{health} button.send")
    status = await page.wait_for(
        f"(t => t !== '…' && t)(document.querySelector('{health} .status-line').textContent)"
    )
    assert status.startswith("200"), status
    await _only_local_resources(page, base)
    await page.screenshot(ARTIFACTS / "docs-page.png")
    assert page.errors == []
