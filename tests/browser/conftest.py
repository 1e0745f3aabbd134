"""Browser fixtures: Debian's Chromium (installed on demand), a real `timerd serve`, a page."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.browser.cdp import Browser, Page, find_chromium
from tests.procs import Daemon

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ARTIFACTS = ROOT / "test-artifacts"
ENSURE = HERE / "ensure_chromium.sh"
INSTALL_TIMEOUT_S = 300.0


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


@pytest.fixture
async def browser(chromium: str, tmp_path: Path) -> AsyncIterator[Browser]:
    """A headless Chromium with a throwaway profile."""
    instance = await Browser.launch(chromium, tmp_path / "chromium-profile")
    try:
        yield instance
    finally:
        await instance.close()


@pytest.fixture
async def page(browser: Browser) -> Page:
    """A fresh tab."""
    return await browser.new_page()


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    """A real `timerd serve --port 0` on a fresh database, stopped at teardown."""
    flags = ("--backoff-base-s", "0.05", "--backoff-max-s", "0.1", "--max-attempts", "2")
    async with Daemon(tmp_path / "timerd.db", *flags, "--grace-s", "2", home=tmp_path) as served:
        yield served
