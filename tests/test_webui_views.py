"""The JSON views behind the pages, over the in-process app with a real receiver and store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from tests.api_helpers import (
    FAR_S,
    Client,
    assert_invalid,
    assert_problem,
    closed_port_url,
    create,
    wait_status,
)
from tests.conftest import Hit, Receiver
from tests.waiting import eventually
from timerd import browse as queries

MakeApi = Callable[..., Awaitable[Client]]


async def _page(client: Client, **params: Any) -> dict[str, Any]:
    resp = await client.get("/ui/timers.json", params={k: str(v) for k, v in params.items()})
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _walk(client: Client, **params: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Follow `next_cursor` to the end; return every id and every page."""
    ids: list[str] = []
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await _page(client, **params, **({"cursor": cursor} if cursor else {}))
        pages.append(page)
        ids += [t["id"] for t in page["timers"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages
        assert len(pages) < 100, "the cursor does not move on"


async def test_lists_page_through_every_status_in_either_due_order(api: Client) -> None:
    ids = [await create(api, seconds=FAR_S + i, url="http://127.0.0.1:9/h") for i in range(13)]
    for tid in ids[::4]:
        assert (await api.delete(f"/timers/{tid}")).status == 200
    everything, pages = await _walk(api, status="all", limit=4)
    assert everything == ids
    assert all(len(p["timers"]) <= 4 for p in pages)
    assert all(p["order"] == "due" and p["scanned"] is None for p in pages)
    newest_first, _ = await _walk(api, status="all", limit=5, sort="due_desc")
    assert newest_first == ids[::-1]
    cancelled, _ = await _walk(api, status="cancelled", limit=2)
    assert cancelled == ids[::4]
    live, _ = await _walk(api, status="live", limit=3)
    assert live == [t for t in ids if t not in ids[::4]]


async def test_last_change_order_puts_the_latest_change_first(api: Client) -> None:
    ids = [await create(api, seconds=FAR_S + i, url="http://127.0.0.1:9/h") for i in range(6)]
    assert (await api.delete(f"/timers/{ids[2]}")).status == 200
    patched = await api.patch(f"/timers/{ids[4]}", json={"seconds": FAR_S * 2})
    assert patched.status == 200
    order, pages = await _walk(api, status="all", sort="changed", limit=2)
    assert order[:2] == [ids[4], ids[2]]
    assert sorted(order) == sorted(ids)
    assert pages[0]["scanned"] == 6
    assert pages[0]["complete"] is True


async def test_search_by_id_or_its_start_finds_every_status(api: Client) -> None:
    tid = await create(api, seconds=FAR_S, url="http://127.0.0.1:9/h")
    other = await create(api, seconds=FAR_S, url="http://127.0.0.1:9/h")
    assert (await api.delete(f"/timers/{tid}")).status == 200
    exact = await _page(api, id=tid, status="pending")
    assert [t["id"] for t in exact["timers"]] == [tid]  # cancelled, yet found
    assert exact["order"] == "id"
    both = await _page(api, id=tid[:3])
    assert {t["id"] for t in both["timers"]} >= {tid, other}
    assert (await _page(api, id=tid + "x"))["timers"] == []
    await assert_invalid(await api.get("/ui/timers.json", params={"id": "a/b"}), "id")


async def test_url_search_sees_only_redacted_urls(api: Client) -> None:
    secret = await create(api, seconds=FAR_S, url="http://alice:hunter2@127.0.0.1:9/pay")
    plain = await create(api, seconds=FAR_S, url="http://127.0.0.1:9/ship")
    assert (await _page(api, url="hunter2"))["timers"] == []  # no probing of credentials
    assert (await _page(api, url="alice"))["timers"] == []
    found = (await _page(api, url="/PAY"))["timers"]  # case-insensitive
    assert [t["id"] for t in found] == [secret]
    assert found[0]["url"] == "http://***@127.0.0.1:9/pay"
    assert [t["id"] for t in (await _page(api, url="ship"))["timers"]] == [plain]
    every = await _page(api)
    assert all("hunter2" not in t["url"] for t in every["timers"])


async def test_url_search_reads_a_bounded_number_of_rows_per_page(
    api: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "SCAN_ROWS", 10)
    ids = [await create(api, seconds=FAR_S + i, url="http://127.0.0.1:9/a") for i in range(25)]
    wanted = await create(api, seconds=FAR_S + 30, url="http://127.0.0.1:9/needle")
    found, pages = await _walk(api, url="needle", limit=5)
    assert found == [wanted]
    assert [p["scanned"] for p in pages] == [10, 10, 6]
    assert [p["complete"] for p in pages] == [False, False, True]
    assert len(ids) == 25


async def test_timer_view_shows_attempts_and_the_request_the_receiver_got(
    make_api: MakeApi, receiver: Receiver
) -> None:
    async def later(hit: Hit) -> web.StreamResponse:
        return web.Response(status=503, headers={"Retry-After": "600"})

    receiver.respond = later
    client = await make_api(max_attempts=3, signing_secret="whsec_" + "QUJD" * 8)
    host = receiver.url.removeprefix("http://")
    tid = await create(client, seconds=0, url=f"http://user:pw@{host}?k=v")
    await wait_status(client, tid, "retrying")
    resp = await client.get(f"/ui/timers/{tid}.json")
    assert resp.status == 200
    view = await resp.json()
    assert view["timer"]["url"] == f"http://***@{host}?k=v"
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in view["attempts"]] == [
        (1, 503, "retry")
    ]
    hook = view["webhook"]
    assert hook["method"] == "POST"
    assert hook["url"] == f"http://***@{host}/{tid}?k=v"
    assert hook["signed"] is True
    shown = {h["name"]: h["value"] for h in hook["headers"]}
    got = receiver.hits[0].headers
    for name in ("User-Agent", "Timerd-Fire-At", "Content-Length", "webhook-id"):
        assert shown[name] == got[name], name  # the retry sends these unchanged
    assert shown["webhook-id"] == tid
    assert shown["Timerd-Attempt"] == "2"
    assert {"webhook-timestamp", "webhook-signature"} <= set(shown) & set(got)
    assert view["actions"] == {"fire": True, "reschedule": True, "cancel": True}
    assert "pw" not in await resp.text()

    missing = await client.get("/ui/timers/nosuchtimer.json")
    await assert_problem(missing, 404)


async def test_a_failed_timers_view_shows_what_fire_again_sends(
    make_api: MakeApi, receiver: Receiver
) -> None:
    async def fail(hit: Hit) -> web.StreamResponse:
        return web.Response(status=500)

    receiver.respond = fail
    client = await make_api(max_attempts=2)
    tid = await create(client, seconds=0, url=receiver.url)
    await wait_status(client, tid, "failed")
    view = await (await client.get(f"/ui/timers/{tid}.json")).json()
    assert [a["outcome"] for a in view["attempts"]] == ["retry", "failed"]
    shown = {h["name"]: h["value"] for h in view["webhook"]["headers"]}
    assert shown["Timerd-Attempt"] == "1"  # fire again starts over
    assert shown["Timerd-Fire-At"].startswith("<when you fire it again")
    assert view["actions"] == {"fire": True, "reschedule": False, "cancel": True}


async def test_an_unsigned_daemon_lists_no_signature_headers(api: Client) -> None:
    tid = await create(api, seconds=FAR_S, url="http://127.0.0.1:9/h")
    view = await (await api.get(f"/ui/timers/{tid}.json")).json()
    names = {h["name"] for h in view["webhook"]["headers"]}
    assert names == {"User-Agent", "Content-Length", "Timerd-Fire-At", "Timerd-Attempt"}
    assert view["actions"] == {"fire": True, "reschedule": True, "cancel": True}


async def _failures(client: Client, by: str) -> dict[str, Any]:
    resp = await client.get("/ui/failures.json", params={"by": by})
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_failures_group_by_host_and_error_and_fire_again(
    make_api: MakeApi, receiver: Receiver
) -> None:
    async def fail(hit: Hit) -> web.StreamResponse:
        return web.Response(status=500)

    receiver.respond = fail
    client = await make_api(max_attempts=1)
    refused = closed_port_url()
    http500 = [await create(client, seconds=0, url=f"{receiver.url}/{i}") for i in range(3)]
    down = [await create(client, seconds=0, url=refused) for _ in range(2)]
    live = await create(client, seconds=FAR_S, url=refused)
    for tid in http500 + down:
        await wait_status(client, tid, "failed")

    by_error = await _failures(client, "error")
    counts = {g["key"]: g["count"] for g in by_error["groups"]}
    assert counts["HTTP 500"] == 3
    assert sum(counts.values()) == 5
    assert by_error["groups"][0]["key"] == "HTTP 500"  # largest first
    assert by_error["scanned"] == 5
    by_host = await _failures(client, "host")
    receiver_host = receiver.url.removeprefix("http://").split("/")[0]
    assert {g["key"]: g["count"] for g in by_host["groups"]} == {
        receiver_host: 3,
        refused.removeprefix("http://").split("/")[0]: 2,
    }

    hits_before = len(receiver.hits)
    resp = await client.post(
        "/ui/failures/fire", json={"group": {"by": "error", "key": "HTTP 500"}}
    )
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"asked": 3, "fired": 3, "skipped": []}
    await receiver.wait_for(hits_before + 3)

    resp = await client.post("/ui/failures/fire", json={"ids": [down[0], live, "nosuch"]})
    body = await resp.json()
    assert body["asked"] == 3
    assert body["fired"] == 1
    assert {s["id"]: s["reason"] for s in body["skipped"]} == {
        live: "is pending, not failed",
        "nosuch": "no such timer",
    }
    timer = await wait_status(client, down[0], "failed", "pending", "retrying")
    assert timer["attempts"] in (0, 1)


async def test_fire_again_refuses_what_is_not_a_json_request(api: Client) -> None:
    resp = await api.post("/ui/failures/fire", data='{"ids": ["a"]}')
    await assert_problem(resp, 415)  # a plain cross-site form post cannot fire anything
    resp = await api.post(
        "/ui/failures/fire", data="{", headers={"Content-Type": "application/json"}
    )
    await assert_problem(resp, 400)
    await assert_invalid(await api.post("/ui/failures/fire", json={"idz": ["a"]}), "idz", "ids")
    await assert_invalid(await api.post("/ui/failures/fire", json={"ids": []}), "ids")
    both = {"ids": ["a"], "group": {"by": "host", "key": "x"}}
    await assert_invalid(await api.post("/ui/failures/fire", json=both), "ids")
    bad_group = {"group": {"by": "colour", "key": "x"}}
    await assert_invalid(await api.post("/ui/failures/fire", json=bad_group), "by")


async def test_summary_redacts_urls_and_says_what_it_counts(api: Client) -> None:
    await create(api, seconds=FAR_S, url="http://bob:topsecret@127.0.0.1:9/h")
    resp = await api.get("/ui/summary.json")
    text = await resp.text()
    assert "topsecret" not in text
    body = await resp.json()
    assert body["next"][0]["url"] == "http://***@127.0.0.1:9/h"
    assert body["started_at"] <= body["now"]
    assert body["counts_every_s"] > 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=dead", "status"),
        ("sort=random", "sort"),
        ("limit=0", "limit"),
        ("cursor=x", "cursor"),
    ],
)
async def test_bad_listing_parameters_are_422(api: Client, query: str, field: str) -> None:
    await assert_invalid(await api.get("/ui/timers.json?" + query), field)


async def test_fire_again_of_a_group_fires_them_concurrently(
    make_api: MakeApi, receiver: Receiver
) -> None:
    """A group of a few hundred fires in one request without a request per timer."""

    async def fail(hit: Hit) -> web.StreamResponse:
        return web.Response(status=500)

    receiver.respond = fail
    client = await make_api(max_attempts=1)
    resp = await client.post(
        "/timers/batch", json={"timers": [{"seconds": 0, "url": receiver.url}] * 300}
    )
    assert resp.status == 201
    await receiver.wait_for(300)

    async def all_failed() -> bool:
        return bool((await _failures(client, "error"))["groups"][0]["count"] >= 300)

    await eventually(all_failed, "300 failures in one group")
    resp = await client.post("/ui/failures/fire", json={"group": {"by": "host", "key": "x"}})
    assert await resp.json() == {"asked": 0, "fired": 0, "skipped": []}
    host = receiver.url.removeprefix("http://").split("/")[0]
    resp = await client.post("/ui/failures/fire", json={"group": {"by": "host", "key": host}})
    assert (await resp.json())["fired"] == 300
    await receiver.wait_for(600)
