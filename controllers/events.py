"""Typed pane events: what a controller tells its listeners, decoded once, in one place.

The controller is the only code that parses the shell's marker protocol and tmux's
notifications; everything above it (the engine, the turn watcher, the log reader, the
cockpit) subscribes to these events instead of reading bytes.

A marker is text in the pane's output, and any program can print text: ``CommandEnded``
therefore says "the shell *reported* a status", a hint to go and look. Who needs the truth
(the engine deciding that a job ended) checks the process itself.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from time import monotonic

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PaneEvent:
    """Something happened in pane ``pane_id``; ``at`` is ``time.monotonic()`` on arrival."""

    pane_id: str
    at: float = field(default_factory=monotonic, compare=False)


@dataclass(frozen=True, slots=True)
class Output(PaneEvent):
    """The pane printed ``data`` (raw bytes, escapes and markers included)."""

    data: bytes = b""


@dataclass(frozen=True, slots=True)
class CommandStarted(PaneEvent):
    """The pane's shell says a command line started (its ``PS0`` marker)."""


@dataclass(frozen=True, slots=True)
class CommandEnded(PaneEvent):
    """The pane's shell drew its prompt after a command, reporting ``status`` (``$?``).

    ``status`` is what the output stream claims; verify it against the process before
    recording it anywhere.
    """

    status: int = 0


@dataclass(frozen=True, slots=True)
class CommandStopped(PaneEvent):
    """The foreground command was stopped (``signal``: ``SIGTSTP``, ...): paused, not ended."""

    signal: str = ""


@dataclass(frozen=True, slots=True)
class PromptRedrawn(PaneEvent):
    """The shell drew a prompt that ends no command (readline redraw, an empty line)."""


@dataclass(frozen=True, slots=True)
class TitleChanged(PaneEvent):
    """The program set the pane's title (OSC 0 or 2)."""

    title: str = ""


@dataclass(frozen=True, slots=True)
class PaneLost(PaneEvent):
    """The pane is gone or unreachable; ``cause`` says why, for a person.

    ``stream_only`` is true when only our control stream ended (its client process died);
    the pane and its programs may well go on, so a watcher reconnects and looks.
    """

    cause: str = ""
    stream_only: bool = False


Listener = Callable[[PaneEvent], None]
"""Called in the controller's reader thread, in order; it must be quick and never block.

Only a container's ``PaneLost`` comes from a thread of its own, after every other event:
naming the container's state takes Docker round trips.
"""


class EventLog:
    """A pane's events: handed to each listener in order, and kept for a late ``replay``.

    Every method takes ``lock`` (the pane stream's condition, so events and the stream
    move together). At most one :class:`PaneLost` is ever sent, and nothing after it. Of
    the past, the latest events are kept, as long as their output is within ``keep`` bytes.
    """

    def __init__(self, lock: threading.Condition, keep: int = 1 << 20) -> None:
        self._lock = lock
        self._keep = keep
        self._kept: collections.deque[PaneEvent] = collections.deque()
        self._kept_bytes = 0
        self._listeners: list[Listener] = []
        self.lost: PaneLost | None = None

    def subscribe(self, listener: Listener, *, replay: bool = False) -> Callable[[], None]:
        """Call ``listener`` with every event from now on (``replay``: the kept ones first)."""
        with self._lock:
            if replay:
                for event in self._kept:
                    _call(listener, event)
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def emit(self, events: Iterable[PaneEvent]) -> None:
        with self._lock:
            for event in events:
                if self.lost is not None:
                    return
                if isinstance(event, PaneLost):
                    self.lost = event
                self._keep_event(event)
                for listener in list(self._listeners):
                    _call(listener, event)

    def _keep_event(self, event: PaneEvent) -> None:
        self._kept.append(event)
        if isinstance(event, Output):
            self._kept_bytes += len(event.data)
        while self._kept_bytes > self._keep:
            old = self._kept.popleft()
            if isinstance(old, Output):
                self._kept_bytes -= len(old.data)


def _call(listener: Listener, event: PaneEvent) -> None:
    """A listener's failure is logged, never passed on: the reader thread must go on."""
    try:
        listener(event)
    except Exception:
        log.exception("pane event listener %r failed on %r", listener, type(event).__name__)
