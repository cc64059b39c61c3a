"""Asking the engine to act: the only way a CLI or API process touches a live job.

The engine owns every live pane (pueue's split: the client asks, the daemon acts). A request
is one JSON line over a Unix stream socket in the user's private runtime directory, and the
answer is one JSON line back, sent when the act is done (or failed):

    {"op": "kill", "job": "k3vq9x2m"}       ->  {"ok": true, "job": "k3vq9x2m"}
                                            ->  {"ok": false, "error": "...", "exit_code": 1}

Each connection is served by a thread of its own, so a kill waiting out its grace period holds
up nobody else. Only processes of the same user (or root) are answered.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from luzia.errors import LuziaError
from luzia.paths import UnsafeRuntimeDir, home_tag, runtime_dir

log = logging.getLogger("luzia.control")

MAX_REQUEST = 4 * 1024 * 1024
"""The largest request line (a follow-up text of up to 1 MiB, JSON-escaped, fits)."""

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class EngineUnreachable(LuziaError):
    """No engine answered for this home."""


class EngineRefused(LuziaError):
    """The engine answered that it could not do what was asked; nothing was changed."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def control_address(home: Path) -> Path:
    """The engine's request socket for ``home`` (raises ``UnsafeRuntimeDir``)."""
    return runtime_dir() / f"{home_tag(home)}.ctl"


class ControlServer:
    """Serves requests for ``home`` with ``handler`` (called in a thread per connection)."""

    def __init__(self, home: Path, handler: Handler) -> None:
        self.home = home
        self.address: Path | None = None
        self._handler = handler
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="luzia-control", daemon=True)

    def start(self) -> None:
        """Listen; raises ``OSError`` (e.g. ``UnsafeRuntimeDir``) when it cannot."""
        self.address = control_address(self.home)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.address)  # the caller holds the engine lock: a leftover is stale
        self._sock.bind(str(self.address))
        os.chmod(self.address, 0o600)
        self._sock.listen(64)
        self._sock.settimeout(1.0)
        self._thread.start()

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(
                target=self._serve, args=(conn,), name="luzia-request", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                if not _same_user(conn):
                    _send(conn, {"ok": False, "error": "refused: not the engine's user"})
                    return
                request = json.loads(_read_line(conn))
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
            except (OSError, ValueError) as exc:
                with contextlib.suppress(OSError):
                    _send(conn, {"ok": False, "error": f"bad request: {exc}", "exit_code": 2})
                return
            try:
                answer = self._handler(request)
            except LuziaError as exc:
                answer = {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
            except Exception as exc:  # a bug: answer it, keep serving
                log.exception("request %r failed", request.get("op"))
                answer = {"ok": False, "error": f"internal error in the engine: {exc!r}"}
            with contextlib.suppress(OSError):
                _send(conn, answer)

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        self._sock.close()
        if self.address is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)


def ask_engine(home: Path, request: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    """Send ``request`` to the engine of ``home`` and return its answer.

    Starts an engine if none runs (unless ``LUZIA_NO_AUTOSTART=1``) and waits for it to listen.
    Raises ``EngineUnreachable`` when none answers, ``EngineRefused`` when it says no.
    """
    from luzia.daemon import engine_status, spawn_engine

    try:
        address = control_address(home)
    except UnsafeRuntimeDir as exc:
        raise EngineUnreachable(str(exc)) from exc
    deadline = time.monotonic() + max(timeout, 10.0)
    spawned = False
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(address))
                sock.settimeout(timeout)
                _send(sock, request)
                answer = json.loads(_read_line(sock))
            break
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if not engine_status(home).running and not spawned:
                if os.environ.get("LUZIA_NO_AUTOSTART") == "1":
                    raise EngineUnreachable(
                        f"no engine runs for {home}; start one with `luzia daemon start`"
                    ) from exc
                spawn_engine(home)
                spawned = True
            if time.monotonic() > deadline:
                raise EngineUnreachable(
                    f"the engine for {home} did not answer; see `luzia daemon status`"
                ) from exc
            time.sleep(0.02)
        except (OSError, ValueError) as exc:
            raise EngineUnreachable(f"the engine for {home} did not answer: {exc}") from exc
    if not answer.get("ok"):
        raise EngineRefused(str(answer.get("error")), int(answer.get("exit_code") or 1))
    return dict(answer)


def _same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid in (os.getuid(), 0)


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


def _read_line(sock: socket.socket) -> bytes:
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError("request too large")
    if not data:
        raise ValueError("no request")
    return bytes(data)
