"""The engine as a daemon: one per ``LUZIA_HOME``, found, started, woken, stopped from anywhere.

- ``engine.lock`` is held (``flock``) by the running engine for its whole life: a lock, unlike
  a pid file, cannot go stale when the engine is killed.
- ``engine.json`` says which pid holds it and since when.
- A datagram socket wakes the engine the moment a job is dispatched, so it need not poll.

Kept free of heavy imports (``subprocess`` only to spawn): ``luzia dispatch`` calls
:func:`ensure_engine` on its hot path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luzia.errors import LuziaError, StoreError
from luzia.paths import home_tag, make_private_dir, private_opener, runtime_dir, write_private
from luzia.proctree import TAG_VAR

LOCK_FILE = "engine.lock"
INFO_FILE = "engine.json"
LOG_FILE = "engine.log"


class EngineRunning(LuziaError):
    """Another engine already serves this ``LUZIA_HOME``."""


@dataclass(frozen=True)
class EngineStatus:
    """Whether an engine serves ``home``, and which process it is."""

    running: bool
    pid: int | None
    started_at: float | None
    home: Path
    log_path: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "pid": self.pid,
            "started_at": self.started_at,
            "home": str(self.home),
            "log_path": str(self.log_path),
        }


class EngineLock:
    """The exclusive lock an engine holds while it runs."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ``EngineRunning``; a no-op when this object holds it."""
        if self._fd is not None:
            return
        make_private_dir(self.home, parents=True)
        fd = os.open(self.home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise EngineRunning(
                    f"an engine already runs for {self.home} "
                    f"(pid {_read_info(self.home).get('pid')})"
                ) from exc
            raise
        self._fd = fd
        info = {"pid": os.getpid(), "started_at": time.time()}
        _atomic_write(self.home / INFO_FILE, json.dumps(info))

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.home / INFO_FILE).unlink()
            os.close(self._fd)
            self._fd = None


def engine_status(home: Path) -> EngineStatus:
    """Ask the lock, not a pid file: it is held exactly while an engine lives."""
    log_path = home / LOG_FILE
    try:
        fd = os.open(home / LOCK_FILE, os.O_RDWR)
    except FileNotFoundError:
        return EngineStatus(False, None, None, home, log_path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        info = _read_info(home)
        return EngineStatus(True, info.get("pid"), info.get("started_at"), home, log_path)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return EngineStatus(False, None, None, home, log_path)
    finally:
        os.close(fd)


def start_engine(home: Path, *, wait: float = 5.0) -> EngineStatus:
    """Start a detached engine for ``home`` unless one runs; wait until it holds the lock."""
    status = _settled_status(home, wait)
    if status.running:
        return status
    spawn_engine(home)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        status = _settled_status(home, deadline - time.monotonic())
        if status.running and status.pid is not None:
            return status
        time.sleep(0.02)
    raise LuziaError(f"the engine did not start; see {home / LOG_FILE}")


def _settled_status(home: Path, wait: float) -> EngineStatus:
    """The engine's status once its pid is known: it takes the lock before writing
    ``engine.json``, so a look in between sees a running engine without a pid."""
    deadline = time.monotonic() + wait
    while True:
        status = engine_status(home)
        if not status.running or status.pid is not None or time.monotonic() > deadline:
            return status
        time.sleep(0.01)


def spawn_engine(home: Path) -> None:
    """Launch ``python -m luzia.engine`` in its own session, logging to ``engine.log``.

    Returns at once. If two processes race here, the loser's engine exits on the lock. Started
    from inside a job, it does not carry that job's tag: killing the job must not kill it.
    """
    try:
        make_private_dir(home, parents=True)
        log = open(home / LOG_FILE, "ab", opener=private_opener)  # noqa: SIM115 - to the child
    except OSError as exc:
        raise StoreError(f"cannot write {home / LOG_FILE}: {exc.strerror}") from exc
    import subprocess

    with log:
        subprocess.Popen(
            [sys.executable, "-m", "luzia.engine", "--home", str(home)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            env={k: v for k, v in os.environ.items() if k != TAG_VAR},
        )


def stop_engine(home: Path, timeout: float = 10.0) -> bool:
    """SIGTERM the engine and wait for its lock to free; False if none ran."""
    status = _settled_status(home, timeout)
    if not status.running or status.pid is None:
        return False
    if status.pid == os.getpid():
        raise LuziaError(
            f"the engine of {home} runs in this process (pid {status.pid}): stop it with its "
            "Engine.stop(), not a signal to this process"
        )
    with contextlib.suppress(ProcessLookupError):
        os.kill(status.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while engine_status(home).running:
        if time.monotonic() > deadline:
            raise LuziaError(f"the engine (pid {status.pid}) did not stop within {timeout:g} s")
        time.sleep(0.05)
    return True


def ensure_engine(home: Path) -> None:
    """Make sure an engine will see new jobs: wake the running one, or spawn one.

    ``LUZIA_NO_AUTOSTART=1`` never spawns one (tests that drive an engine themselves).
    """
    if engine_status(home).running:
        notify_engine(home)
    elif os.environ.get("LUZIA_NO_AUTOSTART") != "1":
        spawn_engine(home)


def wake_address(home: Path) -> str:
    """The engine's wake-up socket for ``home``, in the private runtime directory."""
    return str(runtime_dir() / f"{home_tag(home)}.wake")


def notify_engine(home: Path) -> None:
    """Wake the engine now; harmless when none listens (it also looks every second)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.sendto(b"wake", wake_address(home))


class WakeListener:
    """Receives wake-ups for ``home`` and calls ``on_wake`` for each (from its own thread)."""

    def __init__(self, home: Path, on_wake: Callable[[], None]) -> None:
        self.home = home
        self._on_wake = on_wake
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.settimeout(1.0)
        self.address = ""
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="luzia-wake", daemon=True)

    def start(self) -> None:
        """Listen; raises ``OSError`` (e.g. ``UnsafeRuntimeDir``) when it cannot."""
        self.address = wake_address(self.home)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.address)  # we hold the engine lock: a leftover is stale
        self._sock.bind(self.address)
        self._thread.start()

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                self._sock.recv(64)
            except TimeoutError:
                continue
            except OSError:
                return
            self._on_wake()

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        self._sock.close()
        if self.address:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)


def _read_info(home: Path) -> dict[str, Any]:
    try:
        value = json.loads((home / INFO_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    write_private(tmp, text.encode())
    os.replace(tmp, path)
