"""Browser fixtures: Debian's Chromium driven by Playwright, a real `timerd serve`, a tab.

Playwright for Python drives the system Chromium through `executable_path`; it never
downloads a browser of its own (`playwright install` is not needed and not run).
`ensure_chromium.sh` installs Debian's package when no Chromium is found.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.procs import Daemon

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
ENSURE = HERE / "ensure_chromium.sh"
AXE = HERE / "vendor" / "axe.min.js"
INSTALL_TIMEOUT_S = 300.0
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000

playwright_api = pytest.importorskip("playwright.async_api", reason="pip install '.[test]'")


def find_chromium() -> str | None:
    """Return the path of an installed Chromium, or None."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Return the Chromium binary, installing Debian's package first if it is missing.

    Skips (never passes) with the reason when no browser can be had.
    """
    found = find_chromium()
    if found is None and os.environ.get("TIMERD_SKIP_CHROMIUM_INSTALL") != "1":
        try:
            done = subprocess.run(
                ["sh", str(ENSURE)],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
            )
            why = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = [str(exc)]
        found = find_chromium()
        if found is None:
            pytest.skip(f"no Chromium for the browser tests: {why[0]} (see {ENSURE.name})")
    if found is None:
        pytest.skip("no Chromium for the browser tests and TIMERD_SKIP_CHROMIUM_INSTALL=1")
    return found


@dataclass
class Tab:
    """A Playwright page, with what went wrong in it (console errors, uncaught exceptions)."""

    page: Any  # playwright.async_api.Page
    errors: list[str] = field(default_factory=list)

    async def axe_violations(self, impacts: frozenset[str]) -> list[dict[str, Any]]:
        """Run axe-core on the page; return its violations of the given impacts."""
        result = await self.page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        return [v for v in result["violations"] if v["impact"] in impacts]

    async def screenshot(self, name: str) -> Path:
        """Save a full-page PNG under test-artifacts/screenshots/ and return its path."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / name
        await self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    """A headless Debian Chromium under Playwright, closed at teardown."""
    async with playwright_api.async_playwright() as driver:
        instance = await driver.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def tab(browser: Any) -> AsyncIterator[Tab]:
    """A fresh tab in its own context (no storage shared), with axe-core loaded on each page."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    await context.add_init_script(path=str(AXE))
    page = await context.new_page()
    tab = Tab(page)
    page.on("pageerror", lambda exc: tab.errors.append(f"uncaught: {exc}"))
    page.on(
        "console",
        lambda msg: tab.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    try:
        yield tab
    finally:
        await context.close()


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    """A real `timerd serve --port 0` on a fresh database, stopped at teardown."""
    flags = ("--backoff-base-s", "0.05", "--backoff-max-s", "0.1", "--max-attempts", "1")
    async with Daemon(tmp_path / "timerd.db", *flags, "--grace-s", "2", home=tmp_path) as served:
        yield served
