"""A persistent tmux control-mode client (``tmux -C``): the controllers' only transport.

One long-lived process per tmux server (``tmux -C ...`` locally, or the same behind
``docker exec -i``) carries every command, so a command costs a line written and a
``%begin``/``%end`` block read (about a millisecond), not a process spawn (50-75 ms
through ``docker exec``). tmux also pushes ``%output`` notifications here as panes print,
which is what lets the controllers wait on events instead of polling the screen.
"""

from __future__ import annotations

import collections
import contextlib
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controllers.errors import (
    CommandTimeout,
    ConnectionLost,
    InvalidInput,
    TmuxCommandError,
    TmuxNotFound,
)

DEFAULT_TIMEOUT = 10.0

_REAP_WAIT = 5.0
"""How long an ended stream's client gets to exit before it is killed."""
_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")
_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_./:%@=+,-]+")
_SAFE_BYTES = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:%@=+,- "
)


def quote(arg: str) -> str:
    """Quote one argument for tmux's command parser, so it arrives exactly as given.

    Anything outside a small safe set becomes an octal escape inside double quotes:
    that defeats every special meaning the parser has (``;``, ``$``, ``~``, ``#``,
    quotes, newlines) and carries arbitrary UTF-8 byte for byte.
    """
    if "\0" in arg:
        raise InvalidInput("tmux arguments cannot hold a NUL byte")
    if _SAFE_TOKEN.fullmatch(arg):
        return arg
    data = arg.encode("utf-8", "surrogateescape")  # raw bytes (e.g. a split UTF-8 char) pass as-is
    body = "".join(chr(b) if b in _SAFE_BYTES else f"\\{b:03o}" for b in data)
    return f'"{body}"'


def join_command(*args: str) -> str:
    """One tmux command line from its arguments, each quoted."""
    return " ".join(quote(a) for a in args)


def decode_output(data: bytes) -> bytes:
    """Undo tmux's ``%output`` escaping (control bytes and backslash as ``\\ooo``)."""
    return _OCTAL_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), data)


class PaneStream:
    """Everything one pane printed since we attached, as it arrived.

    Keeps the most recent ``keep`` bytes addressable by absolute position, the time of
    the last output, and a condition that is notified on every change, so waiters wake
    on events rather than on a timer.
    """

    def __init__(self, pane_id: str, keep: int = 1 << 20) -> None:
        self.pane_id = pane_id
        self.cond = threading.Condition()
        self.last_output_at = time.monotonic()
        self.closed = False
        self._keep = keep
        self._buf = bytearray()
        self._base = 0
        self._listeners: list[Callable[[bytes], None]] = []

    @property
    def position(self) -> int:
        """Absolute count of bytes received so far."""
        return self._base + len(self._buf)

    def feed(self, data: bytes) -> None:
        with self.cond:
            self._buf += data
            if len(self._buf) > self._keep:
                drop = len(self._buf) - self._keep
                del self._buf[:drop]
                self._base += drop
            self.last_output_at = time.monotonic()
            for listener in self._listeners:
                listener(data)
            self.cond.notify_all()

    def read(self, since: int = 0) -> bytes:
        """Bytes received after absolute position ``since`` (as far as still kept)."""
        with self.cond:
            return bytes(self._buf[max(0, since - self._base) :])

    def subscribe(
        self, listener: Callable[[bytes], None], *, replay: bool = False
    ) -> Callable[[], None]:
        """Call ``listener`` with each chunk (under the stream's lock); returns an unsubscribe.

        ``replay`` first hands it what is kept already, so nothing printed before the
        subscription is missed.
        """
        with self.cond:
            if replay and self._buf:
                listener(bytes(self._buf))
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self.cond, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


@dataclass
class PendingCommand:
    """A command sent and not yet answered."""

    command: str
    done: threading.Event = field(default_factory=threading.Event)
    lines: list[bytes] = field(default_factory=list)
    error: bool = False
    lost: bool = False


class ControlModeClient:
    """Speaks tmux control mode over one subprocess's stdin and stdout.

    Commands are answered in the order they were sent, so responses are matched to a
    FIFO of pending commands; blocks tmux sends for other reasons (flag 0) are skipped.
    ``%output`` goes to per-pane :class:`PaneStream` objects; ``%window-close`` and the
    client's own end are passed to ``on_event`` listeners.

    ``startup_commands`` is how many commands ``argv`` itself carries. tmux may run lines
    read from stdin *before* those (a client joining a running server often does), so a
    first command would find no session yet; lines sent before the startup commands'
    blocks have all ended are held and written once they have.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        startup_commands: int = 0,
    ) -> None:
        self.argv = list(argv)
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                bufsize=0,
            )
        except FileNotFoundError as exc:
            raise TmuxNotFound(
                f"cannot run {self.argv[0]!r}: not found on PATH (install it, e.g. apt-get install "
                f"{'docker.io' if self.argv[0] == 'docker' else 'tmux'})"
            ) from exc
        self._write_lock = threading.Lock()
        self._startup_left = startup_commands
        self._held: list[bytes] = []
        self._pending: collections.deque[PendingCommand] = collections.deque()
        self._current: PendingCommand | None = None
        self._current_id: list[bytes] | None = None
        self._streams: dict[str, PaneStream] = {}
        self._streams_lock = threading.Lock()
        self._event_listeners: list[Callable[[str, list[str]], None]] = []
        self.closed = threading.Event()
        self.exit_reason = ""
        self.exit_announced = False
        """tmux sent ``%exit`` (server gone, or it let us go); false if the client just died."""
        self._reader = threading.Thread(target=self._read_loop, name="tmux-control", daemon=True)
        self._reader.start()

    # -- commands --

    def send(self, line: str) -> PendingCommand:
        """Queue one command line without waiting for its answer (for pipelining)."""
        if "\n" in line or "\r" in line:
            raise InvalidInput("a control-mode command must be a single line")
        pending = PendingCommand(line)
        with self._write_lock:
            if self.closed.is_set():
                raise ConnectionLost(self._lost_message())
            self._pending.append(pending)
            if self._startup_left > 0:
                self._held.append(line.encode() + b"\n")
            else:
                self._write(line.encode() + b"\n")
        return pending

    def _write(self, data: bytes) -> None:
        """Write to tmux's stdin (under the write lock).

        A broken pipe is seen before the reader has reaped the client and read why it ended:
        wait for that first (``_finish`` takes no write lock), so that whoever hears of the loss
        finds the client gone and its reason known, as after any other loss."""
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(data)
        except (BrokenPipeError, OSError, ValueError) as exc:
            self.closed.wait(_REAP_WAIT + 1.0)
            raise ConnectionLost(self._lost_message()) from exc

    def wait(self, pending: PendingCommand, timeout: float | None = DEFAULT_TIMEOUT) -> list[str]:
        """The output lines of a sent command; raises on ``%error``, loss or timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not pending.done.wait(0.05):
            if self.closed.is_set() and not pending.done.is_set():
                raise ConnectionLost(self._lost_message())
            if deadline is not None and time.monotonic() > deadline:
                raise CommandTimeout(
                    f"tmux did not answer {pending.command.split(' ', 1)[0]!r} within {timeout:g} s"
                )
        if pending.lost:
            raise ConnectionLost(self._lost_message())
        text = [line.decode("utf-8", "replace") for line in pending.lines]
        if pending.error:
            raise TmuxCommandError(pending.command, " ".join(text).strip() or "unknown error")
        return text

    def command(self, *args: str, timeout: float | None = DEFAULT_TIMEOUT) -> list[str]:
        """Run one tmux command (arguments quoted for you) and return its output lines."""
        return self.wait(self.send(join_command(*args)), timeout)

    # -- streams and events --

    def stream(self, pane_id: str) -> PaneStream:
        """The output stream of a pane (created on first use, before any output arrives)."""
        with self._streams_lock:
            stream = self._streams.get(pane_id)
            if stream is None:
                stream = self._streams[pane_id] = PaneStream(pane_id)
                if self.closed.is_set():
                    stream.close()
            return stream

    def on_event(self, listener: Callable[[str, list[str]], None]) -> None:
        """Call ``listener(name, args)`` for notifications other than ``%output``.

        The end of the client itself is reported as the name ``"exit"``.
        """
        self._event_listeners.append(listener)

    # -- lifecycle --

    def close(self, timeout: float = 2.0) -> None:
        """Detach: end the control client only; the tmux server and its panes go on."""
        if self._proc.poll() is None:
            with self._write_lock, contextlib.suppress(OSError, ValueError):
                assert self._proc.stdin is not None
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._reader.join(timeout)

    def _lost_message(self) -> str:
        reason = self.exit_reason or "the control client ended"
        return f"lost the tmux server ({reason})"

    # -- reader thread --

    def _read_loop(self) -> None:
        assert self._proc.stdout is not None
        try:
            for raw in self._proc.stdout:
                self._handle_line(raw.rstrip(b"\n"))
        finally:
            self._finish()

    def _handle_line(self, line: bytes) -> None:
        if self._current is not None or self._current_id is not None:
            if (
                line.startswith((b"%end ", b"%error "))
                and line.split(b" ")[1:3] == self._current_id
            ):
                if self._current is not None:
                    self._current.error = line.startswith(b"%error")
                    self._current.done.set()
                else:
                    self._startup_block_ended()
                self._current = self._current_id = None
            elif self._current is not None:
                self._current.lines.append(line)
            return
        if line.startswith(b"%begin "):
            parts = line.split(b" ")
            self._current_id = parts[1:3]
            ours = len(parts) > 3 and int(parts[3]) & 1
            self._current = self._pending.popleft() if ours and self._pending else None
        elif line.startswith(b"%output "):
            _, pane_id, data = line.split(b" ", 2) if line.count(b" ") >= 2 else (b"", b"", b"")
            if pane_id:
                self.stream(pane_id.decode()).feed(decode_output(data))
        elif line.startswith(b"%exit"):
            self.exit_announced = True
            self.exit_reason = line[6:].decode("utf-8", "replace") or "tmux server exited"
        elif line.startswith(b"%"):
            name, *args = line[1:].decode("utf-8", "replace").split(" ")
            for listener in list(self._event_listeners):
                listener(name, args)

    def _startup_block_ended(self) -> None:
        """One of argv's own commands was answered; after the last, send what was held."""
        with self._write_lock:
            if self._startup_left <= 0:
                return
            self._startup_left -= 1
            if self._startup_left == 0 and self._held:
                data, self._held = b"".join(self._held), []
                with contextlib.suppress(ConnectionLost):  # the end of the stream reports it
                    self._write(data)

    def _finish(self) -> None:
        """The stream ended: fail what is pending, wake every waiter, reap the process."""
        try:
            self._proc.wait(_REAP_WAIT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if not self.exit_reason:
            assert self._proc.stderr is not None
            err = self._proc.stderr.read().decode("utf-8", "replace").strip()
            self.exit_reason = (
                err.splitlines()[-1] if err else f"exit status {self._proc.returncode}"
            )
        self.closed.set()
        for pending in [*self._pending, *([self._current] if self._current else [])]:
            pending.lost = True
            pending.done.set()
        with self._streams_lock:
            streams = list(self._streams.values())
        for stream in streams:
            stream.close()
        for listener in list(self._event_listeners):
            listener("exit", [self.exit_reason])
