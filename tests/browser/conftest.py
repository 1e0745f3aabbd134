"""Browser fixtures: Debian's Chromium (installed on demand), a real `timerd serve`, a page."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.browser.cdp import Browser, Page, find_chromium

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ARTIFACTS = ROOT / "test-artifacts"
ENSURE = HERE / "ensure_chromium.sh"
TIMERD = Path(sys.executable).with_name("timerd")
INSTALL_TIMEOUT_S = 300.0
START_TIMEOUT_S = 20.0


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


@dataclass
class Served:
    """A running `timerd serve` child process."""

    url: str
    proc: asyncio.subprocess.Process
    stderr: list[str] = field(default_factory=list)


async def _drain(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode(errors="replace"))


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Served]:
    """Start `timerd serve --port 0` on a fresh database; stop it at teardown."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIMERD_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg-data")
    proc = await asyncio.create_subprocess_exec(
        TIMERD,
        "serve",
        "--port",
        "0",
        "--db",
        str(tmp_path / "timerd.db"),
        "--backoff-base-s",
        "0.05",
        "--backoff-max-s",
        "0.1",
        "--max-attempts",
        "2",
        "--grace-s",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    served = Served("", proc)
    drains = [asyncio.create_task(_drain(proc.stderr, served.stderr))]
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("listening on "), f"{line!r}\n{''.join(served.stderr)}"
        served.url = line.removeprefix("listening on ").strip()
        drains.append(asyncio.create_task(_drain(proc.stdout, [])))
        yield served
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
        for task in drains:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
