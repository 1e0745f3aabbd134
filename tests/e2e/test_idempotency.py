"""Idempotency keys are kept in the database, so a replay after a restart creates nothing."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import DaemonStarter, list_all

pytestmark = pytest.mark.e2e

HOOK = "http://127.0.0.1:9/hook"


@pytest.mark.parametrize("stop", ["sigterm", "kill9"])
async def test_idempotent_create_is_replayed_across_a_restart(
    daemon: DaemonStarter, http: aiohttp.ClientSession, tmp_path: Path, stop: str
) -> None:
    db = tmp_path / "x.db"
    single = {"url": HOOK, "hours": 1, "seconds": 1.5}
    batch = {"timers": [{"url": HOOK, "minutes": 5}, {"url": HOOK, "minutes": 6}]}
    key = {"Idempotency-Key": "order-1234 reminder"}

    d1 = await daemon(db)
    async with http.post(f"{d1.url}/timers", json=single, headers=key) as resp:
        assert resp.status == 201
        assert "Idempotent-Replayed" not in resp.headers
        first = await resp.json()
    async with http.post(f"{d1.url}/timers/batch", json=batch, headers=key) as resp:
        assert resp.status == 201
        first_batch = await resp.json()
    before = await list_all(http, d1.url)
    assert len(before) == 3

    rc = await d1.stop() if stop == "sigterm" else await d1.kill9()
    assert rc == (0 if stop == "sigterm" else -9)
    d2 = await daemon(db)

    # the same key and body (re-ordered keys: equal JSON is the same body)
    replay_body = {"seconds": 1.5, "hours": 1, "url": HOOK}
    async with http.post(f"{d2.url}/timers", json=replay_body, headers=key) as resp:
        assert resp.status == 201
        assert resp.headers["Idempotent-Replayed"] == "true"
        assert resp.headers["Location"] == f"/timers/{first['id']}"
        assert await resp.json() == first
    async with http.post(f"{d2.url}/timers/batch", json=batch, headers=key) as resp:
        assert resp.status == 201
        assert resp.headers["Idempotent-Replayed"] == "true"
        assert await resp.json() == first_batch

    # the same key with another body is refused, and creates nothing either
    other = {**single, "hours": 2}
    async with http.post(f"{d2.url}/timers", json=other, headers=key) as resp:
        assert resp.status == 422
        assert resp.content_type == "application/problem+json"
        problem = await resp.json()
        assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]

    after = await list_all(http, d2.url)
    assert [t["id"] for t in after] == [t["id"] for t in before]
    assert [t["fire_at"] for t in after] == [t["fire_at"] for t in before]
