"""The pages in real headless Chromium (Playwright) against a real `timerd serve`, used as a
person would: search, open, confirm, page, fire again, give the token."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.browser.conftest import SCREENSHOTS, Tab
from tests.conftest import Hit, Receiver
from tests.procs import Daemon
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]  # the first run may install Chromium

TOKEN = "browser-test-token-0123456789"


async def create(http: aiohttp.ClientSession, base: str, **body: Any) -> str:
    async with http.post(f"{base}/timers", json=body) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["id"])


async def create_many(http: aiohttp.ClientSession, base: str, count: int, **body: Any) -> list[str]:
    async with http.post(f"{base}/timers/batch", json={"timers": [body] * count}) as resp:
        assert resp.status == 201, await resp.text()
        return [str(i) for i in (await resp.json())["ids"]]


async def timer_json(http: aiohttp.ClientSession, base: str, timer_id: str) -> dict[str, Any]:
    async with http.get(f"{base}/timers/{timer_id}") as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


async def wait_status(
    http: aiohttp.ClientSession, base: str, timer_id: str, want: str, timeout_s: float = 15.0
) -> None:
    async def reached() -> bool:
        return bool((await timer_json(http, base, timer_id))["status"] == want)

    await eventually(reached, f"timer {timer_id} to be {want}", timeout_s)


async def wait_count(
    http: aiohttp.ClientSession, base: str, status: str, count: int, timeout_s: float = 30.0
) -> None:
    """Wait until the API lists at least `count` timers of `status`."""
    async with asyncio.timeout(timeout_s):
        while True:
            params = {"status": status, "limit": str(count)}
            async with http.get(f"{base}/timers", params=params) as resp:
                if len((await resp.json())["timers"]) >= count:
                    return
            await asyncio.sleep(0.1)


async def only_local_resources(tab: Tab, base: str) -> None:
    urls = await tab.page.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name).concat([location.href])"
    )
    assert urls, "no resources recorded"
    assert all(u.startswith(base) for u in urls), urls


async def confirm(tab: Tab, expect: str, accept: bool = True) -> str:
    """Answer the page's confirmation dialog as a person would; return what it asked."""
    dialog = tab.page.locator("#confirm-dialog[open]")
    await dialog.wait_for()
    message = await tab.page.locator("#confirm-message").text_content() or ""
    assert expect in message, message
    await tab.page.locator("#confirm-yes" if accept else "#confirm-no").click()
    await tab.page.locator("#confirm-dialog[open]").wait_for(state="detached")
    return message


async def test_search_a_timer_open_its_view_and_cancel_it(daemon: Daemon, tab: Tab) -> None:
    base, page = daemon.url, tab.page
    async with aiohttp.ClientSession() as http:
        target = await create(http, base, hours=1, url="http://user:secret@127.0.0.1:9/hook")
        for _ in range(3):
            await create(http, base, minutes=5, url="http://127.0.0.1:9/other")

        await page.goto(base + "/")
        await page.get_by_label("Search").fill(target[:12])
        await page.get_by_role("button", name="Show").click()
        row = page.locator(f'#find-results tr[data-id="{target}"]')
        await row.wait_for()
        assert await page.locator("#find-results tbody tr").count() >= 1
        assert "***@" in (await row.text_content() or "")
        assert "secret" not in await page.content()
        await row.get_by_role("link", name=target).click()

        await page.wait_for_url(f"{base}/ui/timers/{target}")
        await page.locator("body[data-loaded=true]").wait_for()
        assert await page.locator("#timer-id").text_content() == target
        assert (await page.locator("#due-utc").text_content() or "").endswith("Z (UTC)")
        assert await page.locator("#url").text_content() == "http://***@127.0.0.1:9/hook"
        left = await page.locator("#time-left").text_content()
        assert left is not None
        assert left.startswith(("59m", "1h")), left
        await page.wait_for_function(
            "t => document.getElementById('time-left').textContent !== t", arg=left
        )
        headers = await page.locator("#webhook-headers").text_content() or ""
        assert "Timerd-Fire-At" in headers
        assert "User-Agent" in headers

        # a person who changes their mind keeps the timer
        await page.get_by_role("button", name="Cancel timer").click()
        await confirm(tab, target, accept=False)
        assert (await timer_json(http, base, target))["status"] == "pending"

        await page.get_by_role("button", name="Cancel timer").click()
        await confirm(tab, target)
        await page.locator("body[data-status=cancelled]").wait_for()
        assert (await timer_json(http, base, target))["status"] == "cancelled"
        assert await page.get_by_role("button", name="Cancel timer").is_hidden()
        await only_local_resources(tab, base)
    assert tab.errors == []


async def test_page_through_500_timers(daemon: Daemon, tab: Tab) -> None:
    base, page = daemon.url, tab.page
    async with aiohttp.ClientSession() as http:
        ids = await create_many(http, base, 500, hours=2, url="http://127.0.0.1:9/h")
    await page.goto(base + "/")
    find = page.locator("#find")
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        await page.locator(f'#find[data-loaded="{pages}"]').wait_for()
        seen += await find.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
        next_button = page.get_by_role("button", name="Next page")
        if await next_button.is_disabled():
            break
        await next_button.click()
    assert seen == sorted(ids)  # one batch: due together, so in id order; none lost or repeated
    assert pages == 10
    await page.get_by_role("button", name="Previous page").click()
    await page.locator('#find[data-loaded="9"]').wait_for()
    first = await find.locator("tbody tr").first.get_attribute("data-id")
    assert first == sorted(ids)[400]
    assert tab.errors == []


async def test_fire_again_a_group_of_failures(daemon: Daemon, tab: Tab, receiver: Receiver) -> None:
    async def fail(hit: Hit) -> web.StreamResponse:
        return web.Response(status=500)

    receiver.respond = fail
    base, page = daemon.url, tab.page
    host = receiver.url.removeprefix("http://").split("/")[0]
    async with aiohttp.ClientSession() as http:
        failing = await create_many(http, base, 5, seconds=0, url=receiver.url)
        other = await create(http, base, seconds=0, url="http://127.0.0.1:9/refused")
        for tid in [*failing, other]:
            await wait_status(http, base, tid, "failed")
        await receiver.wait_for(5)

        await page.goto(base + "/")
        group = page.locator(f'details.group[data-key="{host}"]')
        await group.wait_for()
        await group.get_by_role("button", name="Fire again all 5").click()
        asked = await confirm(tab, "5 failed timers")
        assert host in asked
        await page.locator("#toast").filter(has_text="Fired again 5 of 5").wait_for()
        await receiver.wait_for(10)
        assert sorted(receiver.ids()[5:]) == sorted(failing)

        # a selection: tick one timer of the other group
        refused = page.locator('details.group[data-key="127.0.0.1:9"]')
        if await refused.get_attribute("open") is None:
            await refused.locator("summary").click()
        await refused.get_by_label(f"Select {other}").check()
        await refused.get_by_role("button", name="Fire again 1 selected timer").click()
        await confirm(tab, "1 failed timer")
        await page.locator("#toast").filter(has_text="Fired again 1 of 1").wait_for()

        async def second_attempt() -> bool:  # fired again: a second attempt, failed again
            async with http.get(f"{base}/timers/{other}/attempts") as resp:
                return len((await resp.json())["attempts"]) == 2

        await eventually(second_attempt, "the timer fired again to fail again")
    assert tab.errors == []


async def test_the_page_asks_for_the_token_once_and_keeps_it_in_the_tab(
    tmp_path: Path, tab: Tab
) -> None:
    page = tab.page
    async with (
        Daemon(tmp_path / "t.db", home=tmp_path, env={"TIMERD_TOKEN": TOKEN}) as daemon,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
    ):
        base = daemon.url
        target = await create(http, base, hours=1, url="http://127.0.0.1:9/h")
        await page.goto(base + "/")
        prompt = page.locator("#token-panel")
        await prompt.wait_for()
        await page.get_by_role("textbox", name="API token").fill("wrong-token")
        await page.get_by_role("button", name="Use token").click()
        await page.locator("#token-message").filter(has_text="refused").wait_for()
        await page.get_by_role("textbox", name="API token").fill(TOKEN)
        await page.get_by_role("button", name="Use token").click()
        await page.locator('[data-count="pending"]').filter(has_text="1").wait_for()
        assert await prompt.is_hidden()

        # the same tab opens a timer's view without asking again
        await page.goto(f"{base}/ui/timers/{target}")
        await page.locator("body[data-loaded=true]").wait_for()
        assert await page.locator("#token-panel").count() == 0
        stored = await page.evaluate(
            "[sessionStorage.getItem('timerd.token'), localStorage.length, location.href]"
        )
        assert stored == [TOKEN, 0, f"{base}/ui/timers/{target}"]
        assert await page.context.cookies() == []
        assert TOKEN not in page.url
    unexpected = [e for e in tab.errors if "401" not in e]
    assert unexpected == []


async def test_a_daemon_that_goes_away_shows_a_stale_banner(daemon: Daemon, tab: Tab) -> None:
    page = tab.page
    await page.goto(daemon.url + "/")
    await page.locator("body[data-loaded=true]").wait_for()
    assert await page.locator("#stale-banner").is_hidden()
    await daemon.stop()
    banner = page.get_by_role("alert")
    await banner.filter(has_text="Cannot reach the daemon").wait_for()
    assert "not updating" in (await banner.text_content() or "")
    assert await page.locator("body.stale").count() == 1
    assert await page.locator("#conn").text_content() == "stale"


async def test_docs_page_renders_the_document_and_tries_a_request(daemon: Daemon, tab: Tab) -> None:
    base, page = daemon.url, tab.page
    await page.goto(base + "/docs")
    await page.locator("body[data-loaded=true]").wait_for()
    async with aiohttp.ClientSession() as http, http.get(base + "/openapi.json") as resp:
        doc = await resp.json()
    methods = {"get", "post", "put", "patch", "delete"}
    # one block per operation, and one for the webhook timerd sends
    sections = (doc["paths"], doc["webhooks"])
    expected = sum(1 for items in sections for item in items.values() for m in item if m in methods)
    await page.locator(".opblock").nth(expected - 1).wait_for()
    assert await page.locator(".opblock").count() == expected
    assert await page.locator("#operations-webhooks-posttimerFired").count() == 1

    health = page.locator("#operations-default-get_healthz")
    await health.locator(".opblock-summary-control").click()
    await health.get_by_role("button", name="Try it out").click()
    await health.get_by_role("button", name="Execute").click()
    status = health.locator(".live-responses-table .response .response-col_status")
    await status.first.wait_for()
    assert (await status.first.text_content() or "").strip() == "200"

    create_op = page.locator("#operations-default-post_timers")
    await create_op.locator(".opblock-summary-control").click()
    await create_op.get_by_role("button", name="Try it out").click()
    await create_op.get_by_label("Request body (JSON)").fill(
        '{"seconds": 3600, "url": "https://example.com/hook"}'
    )
    await create_op.get_by_role("button", name="Execute").click()
    status = create_op.locator(".live-responses-table .response .response-col_status")
    await status.first.wait_for()
    assert (await status.first.text_content() or "").strip() == "201"  # same-origin: allowed
    await only_local_resources(tab, base)
    assert tab.errors == []


async def populate(http: aiohttp.ClientSession, base: str, receiver: Receiver, each: int) -> None:
    """Leave `each` timers in every status (retrying ones wait out a Retry-After)."""

    async def respond(hit: Hit) -> web.StreamResponse:
        if "/bad" in hit.path:
            return web.Response(status=500)
        if "/later" in hit.path:
            return web.Response(status=503, headers={"Retry-After": "1800"})
        return web.Response(status=200)

    receiver.respond = respond
    await create_many(http, base, each, hours=3, url=f"{receiver.url}/ok")
    await create_many(http, base, each, seconds=0, url=f"{receiver.url}/ok")
    await create_many(http, base, each, seconds=0, url=f"{receiver.url}/bad")
    await create_many(http, base, each, seconds=0, url=f"{receiver.url}/later")
    doomed = await create_many(http, base, each, minutes=30, url="http://u:p@127.0.0.1:9/x")
    for tid in doomed:
        async with http.delete(f"{base}/timers/{tid}") as resp:
            assert resp.status == 200
    for status in ("fired", "failed", "retrying"):
        await wait_count(http, base, status, each)


SERIOUS = frozenset({"serious", "critical"})


def _describe(violations: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{v['impact']} {v['id']}: {[n['target'] for n in v['nodes'][:3]]}" for v in violations
    )


async def test_screenshots_and_accessibility_with_every_status(
    tmp_path: Path, tab: Tab, receiver: Receiver
) -> None:
    """Screenshots of the three pages over a few hundred timers in every status, and no
    serious or critical axe-core violation on any of them."""
    page = tab.page
    flags = ("--max-attempts", "2", "--backoff-base-s", "0.05", "--backoff-max-s", "0.1")
    env = {"TIMERD_LOG_LEVEL": "warning"}
    async with (
        Daemon(tmp_path / "t.db", *flags, home=tmp_path, env=env) as daemon,
        aiohttp.ClientSession() as http,
    ):
        base = daemon.url
        await populate(http, base, receiver, 200)

        await page.goto(base + "/")
        await page.locator("body[data-loaded=true]").wait_for()
        await page.locator("#failure-groups[data-loaded=true]").wait_for()
        await page.locator('[data-count="cancelled"]').filter(has_text="200").wait_for()
        shots = [await tab.screenshot("status-page.png")]
        assert (bad := await tab.axe_violations(SERIOUS)) == [], _describe(bad)

        failed = await page.locator("#recent-failed tbody tr").first.get_attribute("data-id")
        await page.goto(f"{base}/ui/timers/{failed}")
        await page.locator("body[data-loaded=true]").wait_for()
        await page.locator("#attempts tbody tr").nth(1).wait_for()
        shots.append(await tab.screenshot("timer-view.png"))
        assert (bad := await tab.axe_violations(SERIOUS)) == [], _describe(bad)

        await page.goto(base + "/docs")
        await page.locator("body[data-loaded=true]").wait_for()
        create_op = page.locator("#operations-default-post_timers")
        await create_op.locator(".opblock-summary-control").click()
        await create_op.get_by_role("button", name="Try it out").click()
        shots.append(await tab.screenshot("docs-page.png"))
        assert (bad := await tab.axe_violations(SERIOUS)) == [], _describe(bad)
    assert all(p.stat().st_size > 10_000 for p in shots)
    assert {p.parent for p in shots} == {SCREENSHOTS}
    assert not [e for e in tab.errors if not re.search(r"\b(500|503)\b", e)], tab.errors
