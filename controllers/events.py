"""Typed pane events: what a controller tells its listeners, decoded once, in one place.

The controller is the only code that parses the shell's marker protocol and tmux's
notifications; everything above it (the engine, the turn watcher, the log reader, the
cockpit) subscribes to these events instead of reading bytes.

A marker is text in the pane's output, and any program can print text: ``CommandEnded``
therefore says "the shell *reported* a status", a hint to go and look. Who needs the truth
(the engine deciding that a job ended) checks the process itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic


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
"""Called in the controller's reader thread, in order; it must be quick and never block."""
