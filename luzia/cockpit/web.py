"""``luzia cockpit --web``: the cockpit in a browser, through textual-serve, behind a token.

Each browser session runs its own ``luzia cockpit`` process (textual-serve's way), so the web
cockpit is the terminal one. Every asset comes from the textual-serve wheel on this machine:
our own page replaces its template, which loads a font from a CDN. Every request must carry the
token, as ``?token=`` (the URL printed at start) or as the cookie the page sets from it; anything
else is refused with 403. The server listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import hmac
import secrets
import shlex
import sys
from collections.abc import Awaitable, Callable
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.server import Server

COOKIE = "luzia_cockpit"

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>luzia cockpit</title>
<link rel="stylesheet" href="/static/css/xterm.css">
<style>
@font-face {{ font-family: "Roboto Mono";
  src: url("/static/fonts/RobotoMono-VariableFont_wght.ttf"); }}
html, body {{ margin: 0; height: 100%; background: #0c181f; }}
.textual-terminal {{ width: 100vw; height: 100vh; }}
.closed {{ display: none; color: #eee; font-family: "Roboto Mono", monospace; padding: 2em; }}
body.-closed .closed {{ display: block; }}
</style>
<script src="/static/js/textual.js"></script>
</head>
<body>
<div class="closed">The cockpit session ended. <a href="/" style="color:#8cf">Reload</a></div>
<div id="terminal" class="textual-terminal" data-session-websocket-url="{ws}"
     data-font-size="{font_size}"></div>
</body>
</html>
"""


def new_token() -> str:
    return secrets.token_urlsafe(24)


def cockpit_command(home: Path, config_file: Path | None) -> str:
    """The shell command textual-serve runs per browser session: this Python, this home."""
    argv = [sys.executable, "-m", "luzia", "--home", str(home)]
    if config_file is not None:
        argv += ["--config", str(config_file)]
    return shlex.join([*argv, "cockpit"])


class CockpitServer(Server):
    """textual-serve's server with our page, no download route, and the token checked first."""

    def __init__(self, command: str, host: str, port: int, token: str) -> None:
        super().__init__(command, host=host, port=port, title="luzia cockpit")
        self.token = token

    def url(self, host: str | None = None) -> str:
        shown = host or ("127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host)
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}/?token={self.token}"

    async def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.add_routes(
            [
                web.get("/", self._page),
                web.get("/ws", self.handle_websocket),
                web.static("/static", self.statics_path),
            ]
        )
        return app

    def _allowed(self, request: web.Request) -> bool:
        given = request.query.get("token") or request.cookies.get(COOKIE) or ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return False
        # A page of another site must not drive the cockpit through a browser holding the
        # cookie: a browser always names the page's origin, and it must be this server.
        origin = request.headers.get("Origin")
        return origin is None or urlsplit(origin).netloc == request.host

    @web.middleware
    async def _guard(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if not self._allowed(request):
            return web.Response(
                status=403, text="luzia cockpit: the URL's token is missing or wrong\n"
            )
        return await handler(request)

    async def _page(self, request: web.Request) -> web.Response:
        scheme = "wss" if request.secure else "ws"
        try:
            font_size = max(6, min(40, int(request.query.get("fontsize", "16"))))
        except ValueError:
            font_size = 16
        ws = f"{scheme}://{request.host}/ws"
        response = web.Response(
            text=PAGE.format(ws=escape(ws, quote=True), font_size=font_size),
            content_type="text/html",
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )
        response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict")
        return response

    def initialize_logging(self) -> None:
        """Quiet: the URL printed at start is all a person needs."""
        import logging

        logging.basicConfig(level="WARNING")
