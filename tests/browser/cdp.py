"""A small Chrome DevTools Protocol client over aiohttp: launch headless Chromium, drive a page.

No browser download and no node: Debian's `chromium` binary, its DevTools websocket, and the
handful of commands the browser tests need (navigate, evaluate, click, screenshot).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LAUNCH_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 30.0
_WS_RE = re.compile(r"DevTools listening on (ws://\S+)")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
    "--window-size=1280,900",
    "--remote-debugging-port=0",
)


def find_chromium() -> str | None:
    """Return the path of a Chromium binary on PATH, or None."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(Exception):
    """A DevTools command failed, or the page threw."""


class Browser:
    """One headless Chromium process and its DevTools websocket."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
    ) -> None:
        self.proc = proc
        self._http = http
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._reader = asyncio.create_task(self._read())
        self.stderr: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    @classmethod
    async def launch(cls, executable: str, profile: Path) -> Browser:
        """Start Chromium with a fresh profile and connect to its DevTools endpoint."""
        proc = await asyncio.create_subprocess_exec(
            executable,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        seen: list[str] = []
        try:
            async with asyncio.timeout(LAUNCH_TIMEOUT_S):
                while True:
                    line = (await proc.stderr.readline()).decode(errors="replace")
                    if not line:
                        raise CdpError("chromium exited before it listened:\n" + "".join(seen))
                    seen.append(line)
                    if match := _WS_RE.search(line):
                        ws_url = match.group(1)
                        break
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(ws_url, max_msg_size=0, autoping=True)
        browser = cls(proc, http, ws)
        browser.stderr = seen
        browser._drain = asyncio.create_task(browser._drain_stderr())
        return browser

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr.append(line.decode(errors="replace"))

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                for listener in list(self._listeners):
                    listener(data)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CdpError("the DevTools connection closed"))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return its result; raise CdpError on a protocol error."""
        message: dict[str, Any] = {"id": next(self._ids), "method": method}
        message["params"] = params or {}
        if session_id is not None:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message["id"]] = future
        await self._ws.send_str(json.dumps(message))
        async with asyncio.timeout(COMMAND_TIMEOUT_S):
            answer = await future
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def listen(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call `listener` with every event the browser sends."""
        self._listeners.append(listener)

    async def new_page(self) -> Page:
        """Open a tab and attach to it (flattened session)."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        await page.start()
        return page

    async def close(self) -> None:
        """Close the browser, its websocket and its process."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.send("Browser.close")
        await self._ws.close()
        await self._http.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        try:
            async with asyncio.timeout(10):
                await self.proc.wait()
        except TimeoutError:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain


class Page:
    """One tab: navigate, evaluate JavaScript, click, take screenshots; dialogs are accepted."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self._loaded = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        browser.listen(self._on_event)

    async def start(self) -> None:
        """Enable the domains the page needs."""
        for domain in ("Page", "Runtime"):
            await self.send(f"{domain}.enable")

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a command to this tab."""
        return await self.browser.send(method, params, self.session_id)

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("sessionId") != self.session_id:
            return
        method, params = event.get("method"), event.get("params", {})
        if method == "Page.loadEventFired":
            self._loaded.set()
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append(params.get("message", ""))
            task = asyncio.create_task(self.send("Page.handleJavaScriptDialog", {"accept": True}))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(str(details.get("exception", {}).get("description") or details))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a)) for a in params.get("args", [])))

    async def goto(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self._loaded.clear()
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"cannot load {url}: {result['errorText']}")
        async with asyncio.timeout(COMMAND_TIMEOUT_S):
            await self._loaded.wait()

    async def evaluate(self, expression: str) -> Any:
        """Evaluate `expression` in the page (promises awaited); return its JSON value."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CdpError(str(details.get("exception", {}).get("description") or details))
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout_s: float = 10.0) -> Any:
        """Poll `expression` until it is truthy; return its value or fail after `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    value = await self.evaluate(expression)
                    if value:
                        return value
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(f"page never satisfied: {expression}") from None

    async def click(self, selector: str) -> None:
        """Click the centre of the element `selector` with real mouse events."""
        box = await self.evaluate(
            f"""(() => {{
                const node = document.querySelector({json.dumps(selector)});
                if (!node) return null;
                node.scrollIntoView({{block: "center"}});
                const r = node.getBoundingClientRect();
                return {{x: r.left + r.width / 2, y: r.top + r.height / 2}};
            }})()"""
        )
        if box is None:
            raise AssertionError(f"no element {selector} to click")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )

    async def screenshot(self, path: Path, width: int = 1280) -> None:
        """Save a PNG of the whole page to `path`."""
        height = int(await self.evaluate("document.documentElement.scrollHeight") or 900)
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": width,
                "height": min(max(height, 600), 4000),
                "deviceScaleFactor": 1,
                "mobile": False,
            },
        )
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        await asyncio.to_thread(_write, path, base64.b64decode(shot["data"]))
        await self.send("Emulation.clearDeviceMetricsOverride")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
