"""Headless Chromium driven over the DevTools protocol (its own WebSocket, aiohttp's client): open
a page, read what a web terminal shows, take a screenshot.

textual-serve draws its terminal with xterm.js on a canvas, so the DOM holds no screen text. A
script installed before the page's own catches the xterm ``Terminal`` as textual-serve's page
stores it (``this.terminal = ...``) and the screen is read with xterm's public buffer API.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  get() { return undefined; },
  set(value) {
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true});
    if (value && value.buffer) { (window.__terminals = window.__terminals || []).push(value); }
  },
});
"""

SCREEN_TEXT = """
(() => {
  const term = (window.__terminals || [])[0];
  if (!term) return "";
  const buffer = term.buffer.active, lines = [];
  for (let i = 0; i < term.rows; i++) {
    const line = buffer.getLine(buffer.viewportY + i);
    lines.push(line ? line.translateToString(true) : "");
  }
  return lines.join("\\n");
})()
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab, over its DevTools WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        ident = self._id
        await self.ws.send_json({"id": ident, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json()
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def screen_text(self) -> str:
        return str(await self.evaluate(SCREEN_TEXT) or "")

    async def wait_for_text(self, pattern: str, timeout: float = 30.0) -> str:
        """The terminal's screen once ``pattern`` (a regex) is on it."""
        deadline = time.monotonic() + timeout
        while True:
            text = await self.screen_text()
            if re.search(pattern, text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} never showed in the browser; it shows:\n{text}")
            await asyncio.sleep(0.05)  # a look at another process's screen: no event to wait on

    async def screenshot(self, path: Path) -> None:
        result = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(result["data"]))


@contextlib.asynccontextmanager
async def open_page(
    url: str, *, width: int = 1280, height: int = 800, catch_terminal: bool = True
) -> AsyncIterator[tuple[Page, int]]:
    """Chromium, headless, on ``url``: the page, and the HTTP status of the main document."""
    binary = chromium()
    assert binary is not None, "chromium is not installed (apt-get install chromium)"
    profile = tempfile.mkdtemp(prefix="luzia-chromium-")
    process = subprocess.Popen(
        [
            binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        browser_ws = ""
        for line in process.stderr:
            if "DevTools listening on" in line:
                browser_ws = line.split("listening on", 1)[1].strip()
                break
        assert browser_ws, "chromium did not start its DevTools endpoint"
        port = int(browser_ws.split(":")[2].split("/")[0])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = json.loads(await response.text())
            target = next(t for t in targets if t.get("type") == "page")
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.call("Page.enable")
                await page.call("Network.enable")
                await page.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                if catch_terminal:
                    await page.call("Page.addScriptToEvaluateOnNewDocument", source=CATCH_TERMINAL)
                status = await _navigate(page, url)
                yield page, status
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


async def _navigate(page: Page, url: str) -> int:
    """Go to ``url``; the main document's HTTP status, once the page has loaded."""
    page._id += 1
    ident = page._id
    await page.ws.send_json({"id": ident, "method": "Page.navigate", "params": {"url": url}})
    status = 0
    while True:
        message = await page.ws.receive_json()
        if message.get("method") == "Network.responseReceived":
            params = message["params"]
            if params.get("type") == "Document":
                status = int(params["response"]["status"])
        if message.get("method") == "Page.loadEventFired":
            return status
