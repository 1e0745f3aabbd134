"""The status page's nodes panel: shown when nodes share a PostgreSQL timer set, not on SQLite.

Issue 17, item 5, in Debian's Chromium against real `timerd serve` processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import Tab
from tests.procs import Daemon

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


async def test_nodes_panel_lists_the_nodes_sharing_the_set(
    pg_url: str, tab: Tab, tmp_path: Path
) -> None:
    async with (
        Daemon(pg_url, "--node-id", "node-a", home=tmp_path) as a,  # type: ignore[arg-type]
        Daemon(pg_url, "--node-id", "node-b", home=tmp_path) as b,  # type: ignore[arg-type]
    ):
        assert b.url
        await tab.page.goto(a.url + "/")
        await tab.page.wait_for_selector("#nodes-panel:not([hidden])")
        await tab.page.wait_for_function("document.querySelectorAll('#nodes tr').length === 2")
        rows = await tab.page.eval_on_selector_all(
            "#nodes tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
        assert [row[0] for row in rows] == ["node-a (this node)", "node-b"]
        assert all(row[3].endswith(" ago") for row in rows)
        assert not await tab.axe_violations(frozenset({"serious", "critical"}))
    assert tab.errors == []


async def test_no_nodes_panel_on_sqlite(daemon: Daemon, tab: Tab) -> None:
    await tab.page.goto(daemon.url + "/")
    await tab.page.wait_for_selector("body[data-loaded='true']")
    assert await tab.page.is_hidden("#nodes-panel")
    assert tab.errors == []
