"""``luzia cockpit --web`` in a real browser: headless Chromium opens the URL with its token and
the page shows the home's jobs and their states (and a screenshot is taken); without the token,
or with a wrong one, every request is refused (403). Every asset is served from this machine."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from luzia.dispatcher import ResponsiveDispatcher
from tests.browser import chromium, open_page
from tests.test_cockpit import printer

needs_chromium = pytest.mark.skipif(
    chromium() is None and os.environ.get("CI") != "true", reason="chromium is not installed"
)


@pytest.fixture
def d(dispatcher: ResponsiveDispatcher) -> ResponsiveDispatcher:
    """The suite's dispatcher and in-process engine on a fresh home."""
    return dispatcher


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(d: ResponsiveDispatcher) -> Iterator[str]:
    """``luzia cockpit --web`` for ``d``'s home, running: the URL it printed."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "luzia",
            "--home",
            str(d.home),
            "cockpit",
            "--web",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        match = re.search(r"http://\S+", first)
        assert match, f"no URL printed: {first!r}"
        yield match.group(0)
    finally:
        server.terminate()
        server.wait(timeout=10)


@needs_chromium
def test_browser_shows_jobs_and_states(
    d: ResponsiveDispatcher, served: str, tmp_path: Path
) -> None:
    running = d.dispatch_task(printer("in-the-browser"), backend="local", workdir=tmp_path)
    done = d.dispatch_task("echo done", backend="local", workdir=tmp_path)
    d.wait_for_job(done, timeout=30)
    assert served.startswith("http://127.0.0.1:") and "token=" in served

    async def look() -> str:
        async with open_page(served) as (page, status):
            assert status == 200
            text = await page.wait_for_text(rf"(?s)running\s+{running}.*completed\s+{done}")
            assert "in-the-browser" in await page.wait_for_text("in-the-browser")
            await page.screenshot(tmp_path / "cockpit.png")
            # the page loaded nothing from another host
            hosts = await page.evaluate(
                "[...performance.getEntriesByType('resource')].map(e => new URL(e.name).host)"
            )
            assert set(hosts) <= {served.split("/")[2]}, hosts
            return text

    text = asyncio.run(look())
    assert "luzia cockpit" in text
    assert (tmp_path / "cockpit.png").read_bytes().startswith(b"\x89PNG")


@needs_chromium
def test_browser_without_the_token_is_refused(served: str) -> None:
    bare = served.split("?")[0]

    async def look(url: str) -> tuple[int, str]:
        async with open_page(url, catch_terminal=False) as (page, status):
            return status, str(await page.evaluate("document.body.innerText"))

    for url in (bare, bare + "?token=wrong", bare.rstrip("/") + "/static/js/textual.js"):
        status, body = asyncio.run(look(url))
        assert status == 403, url
        assert "token is missing or wrong" in body

    async def websocket(query: str = "", origin: str | None = None) -> int:
        url = bare.replace("http", "ws", 1).rstrip("/") + "/ws" + query
        headers = {"Origin": origin} if origin else {}
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url, headers=headers):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(websocket()) == 403  # no cockpit process for a browser without it
    token = served.split("token=")[1]
    # the token, but from another site's page (a browser names it): refused too
    assert asyncio.run(websocket(f"?token={token}", "http://elsewhere.example")) == 403


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    no_terminal = subprocess.run(
        [sys.executable, "-m", "luzia", "--home", home, "cockpit"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert no_terminal.returncode == 1
    assert no_terminal.stderr == (
        "luzia: error: the cockpit needs a terminal; `luzia jobs` or `luzia events -f` print\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [
                sys.executable,
                "-m",
                "luzia",
                "--home",
                home,
                "cockpit",
                "--web",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
        )
    assert busy.returncode == 1 and busy.stdout == ""
    assert busy.stderr.startswith(f"luzia: error: cannot serve on 127.0.0.1:{port}: ")
    assert busy.stderr.count("\n") == 1
