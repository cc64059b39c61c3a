"""What every scripted model server shares: a threaded HTTP server on its own thread, the log of
request bodies, JSON and Server-Sent-Events replies, and the script that reads a task.

Each API module (Anthropic Messages, OpenAI Responses, OpenAI chat completions) only turns
:func:`plan` into its own wire format. Bound to 0.0.0.0, so a job container reaches the server
at ``http://host.docker.internal:PORT``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WRITE = re.compile(r"\bwrite (\S+) ([^\n]+)")
"""In the task: ``write <path> <content>`` asks for a tool call that writes the file."""

FAIL = re.compile(r"\bfail\b")
"""In the task: the server answers with an API error."""

RUN = re.compile(r"\brun ([^\n]+)")
"""In the task: ``run <shell command>`` asks the agent's shell tool to run the rest of the line,
then says ``ran it``."""

PAUSE = re.compile(r"\bpause (\d+(?:\.\d+)?)\b")
"""In the task: ``pause N`` makes the streamed answer fall silent for N seconds mid-text."""

BREAK = re.compile(r"\bbreak\b")
"""In the task: the stream starts, then an API error arrives mid-turn and the stream ends."""

OUTPUT_TOKENS = 7
"""Every answer's output token count."""


def input_tokens(user_text: str) -> int:
    """Every answer's input token count: 100 plus the length of the task it answers, so tests
    can predict per-turn usage."""
    return 100 + len(user_text)


@dataclass(frozen=True)
class Step:
    """What the model does next: ``write`` a file (``path``, ``content``), ``run`` a shell
    ``command``, ``say`` ``text`` (silent for ``pause`` seconds mid-stream), ``fail`` (an HTTP
    error) or ``break`` (an error event after some streamed ``text``)."""

    action: str
    text: str = ""
    path: str = ""
    content: str = ""
    command: str = ""
    pause: float = 0.0

    def halves(self) -> tuple[str, str]:
        """The text in two parts, streamed either side of the pause."""
        middle = len(self.text) // 2
        return self.text[:middle], self.text[middle:]


def plan(user_text: str, tool_result_seen: bool) -> Step:
    """The script: the next step for the latest user message, given whether a tool result for
    it has come back already."""
    if FAIL.search(user_text):
        return Step("fail", text="scripted failure: the task asked for it")
    if BREAK.search(user_text):
        return Step("break", text="partial answer before the break")
    pause = PAUSE.search(user_text)
    if pause:
        seconds = float(pause.group(1))
        return Step("say", text=f"pausing {pause.group(1)}s mid-answer, then done", pause=seconds)
    run = RUN.search(user_text)
    if run and not tool_result_seen:
        return Step("run", command=run.group(1).strip())
    if run:
        return Step("say", text="ran it")
    match = WRITE.search(user_text)
    if match and not tool_result_seen:
        return Step("write", path=match.group(1), content=match.group(2).strip())
    if match:
        return Step("say", text=f"wrote {match.group(1)}")
    return Step("say", text="ok")


Handler = Callable[["Exchange"], None]
"""An API module's answer to one POST: reads ``exchange.body``, writes a reply."""


class Exchange:
    """One request: its path and JSON body, and ways to answer it."""

    def __init__(self, request: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        self._request = request
        self.path = request.path
        self.body = body

    def json(self, payload: object, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self._request.send_response(status)
        self._request.send_header("Content-Type", "application/json")
        self._request.send_header("Content-Length", str(len(data)))
        self._request.end_headers()
        self._request.wfile.write(data)

    def sse(self, events: Iterable[tuple[str | None, object]]) -> None:
        """Stream ``(event name or None, data)`` pairs as Server-Sent Events, then close. Each
        frame is flushed before the next is asked for, so a generator that sleeps between two
        yields makes a silent stretch mid-stream."""
        self._request.send_response(200)
        self._request.send_header("Content-Type", "text/event-stream")
        self._request.send_header("Cache-Control", "no-cache")
        self._request.send_header("Connection", "close")
        self._request.end_headers()
        for name, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            frame = (f"event: {name}\n" if name else "") + f"data: {text}\n\n"
            self._request.wfile.write(frame.encode())
            self._request.wfile.flush()
        self._request.close_connection = True


class Server:
    """A scripted model server running on a daemon thread until :meth:`close`."""

    def __init__(self, handle: Handler, get: dict[str, object] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        """Every POSTed JSON body, in order."""
        self.paths: list[str] = []
        self.finished: list[float] = []
        """When each POST's answer was written to its last byte (``time.time()``, the clock of
        the store's event times), in order: a benchmark times a turn's end from the last one."""
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                server.requests.append(body)
                server.paths.append(self.path)
                try:
                    handle(Exchange(self, body))
                finally:
                    server.finished.append(time.time())

            def do_GET(self) -> None:
                server.paths.append(self.path)
                path = self.path.split("?", 1)[0]
                Exchange(self, {}).json(*_found(get or {}, path))

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("0.0.0.0", 0), _Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        """For an agent on this host."""
        self.container_url = f"http://host.docker.internal:{self.port}"
        """For an agent in a job container."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _found(routes: dict[str, object], path: str) -> tuple[object, int]:
    if path in routes:
        return routes[path], 200
    return {"error": {"message": f"no route {path}", "type": "not_found"}}, 404
