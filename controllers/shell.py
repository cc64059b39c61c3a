"""The controller's own shell: prompt markers that give exact exit codes without polling.

The pane runs bash with ``PS0`` and ``PS1`` set by us to private OSC sequences. tmux
draws nothing for an unknown OSC, so the screen looks normal, but the raw bytes in the
``%output`` stream carry them: ``PS0`` marks "a command starts", ``PS1`` marks "the prompt
is back" with ``$?`` inside. The output of a command is exactly what lies between the
two, and no program output can be mistaken for a prompt.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from controllers.events import (
    CommandEnded,
    CommandStarted,
    CommandStopped,
    PaneEvent,
    PromptRedrawn,
    TitleChanged,
)

_MARK = b"\x1b]7767;luzia;"
START_MARK = _MARK + b"S\x07"
"""What PS0 prints: a command starts."""
PROMPT_MARK = _MARK + b"P;"
"""How PS1 starts: the prompt is back (the exit status follows)."""

STOP_SIGNALS = {148: "SIGTSTP", 149: "SIGTTIN", 150: "SIGTTOU"}
"""Exit statuses the shell reports when its foreground job was stopped: paused, not ended."""
MAX_OSC = 4096
"""Longest OSC sequence (title, marker) held back while waiting for its end; longer is noise."""
_SEQUENCE_RE = re.compile(
    rb"\x1b\](?P<osc>[^\x07\x1b]*)(?:\x07|\x1b\\)"  # OSC, ended by BEL or ST
    rb"|\x1b\[\?2004(?P<paste>[hl])"  # bracketed paste on or off
)
_MARKER_RE = re.compile(re.escape(_MARK[2:]) + rb"(S|P;(\d+))")
_PASTE_MODES = (b"\x1b[?2004h", b"\x1b[?2004l")
_ANSI_RE = re.compile(rb"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")

SHELL_ENV = {
    "PS1": r"\[\e]7767;luzia;P;$?\a\]\w \$ ",
    "PS0": r"\e]7767;luzia;S\a",
    "PS2": "",
    "HISTFILE": "/dev/null",
}
"""Environment for the pane's shell. ``PS2`` is empty so continuation lines add no noise."""

SHELL_ARGV = ("bash", "--norc", "--noprofile", "+o", "histexpand", "-i")
"""No rc files (a user's prompt would replace ours) and no ``!`` history expansion."""


def strip_ansi(data: bytes) -> bytes:
    """Terminal escape sequences removed; CRLF folded to LF."""
    return _ANSI_RE.sub(b"", data).replace(b"\r\n", b"\n").replace(b"\r", b"")


@dataclass(frozen=True)
class CommandResult:
    """What ``run`` returns: the command's output (as the terminal showed it) and exit code."""

    output: str
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class ShellTracker:
    """Follows one pane's stream: our shell's markers, the title, bracketed-paste mode.

    The one place that decodes them. ``feed`` is called under the stream's lock with each
    chunk and returns the events it held, in stream order; a sequence split across chunks
    is held back (and kept out of the command's output) until its end arrives.

    ``commands`` counts finished commands (a start marker, then a prompt); a prompt
    without a start (readline redrawing its line) is not one. ``at_prompt`` is true
    while the shell waits for input; ``last`` holds the latest finished command's
    result and ``exit_code`` the status the latest prompt reported. ``bracketed_paste``
    is whether the program last asked for bracketed paste (bash does at each prompt).
    """

    def __init__(self, cond: threading.Condition, pane_id: str = "") -> None:
        self.cond = cond
        self.pane_id = pane_id
        self.prompts = 0
        self.commands = 0
        self.at_prompt = False
        self.last: CommandResult | None = None
        self.exit_code = 0
        self.title: str | None = None
        self.bracketed_paste = False
        self._pending = b""
        self._output: bytearray | None = None

    def feed(self, data: bytes) -> list[PaneEvent]:
        data = self._pending + data
        events: list[PaneEvent] = []
        pos = 0
        for match in _SEQUENCE_RE.finditer(data):
            self._collect(data[pos : match.start()])
            pos = match.end()
            if match.group("paste") is not None:
                self._collect(match.group(0))
                self.bracketed_paste = match.group("paste") == b"h"
                continue
            body = match.group("osc")
            marker = _MARKER_RE.fullmatch(body)
            if marker is None:
                self._collect(match.group(0))
                if body[:2] in (b"0;", b"2;"):
                    events += self._retitle(body[2:].decode("utf-8", "replace"))
            elif marker.group(1) == b"S":
                events.append(self._started())
            else:
                events.append(self._prompted(int(marker.group(2))))
        rest = data[pos:]
        cut = _incomplete_from(rest)
        self._pending = rest[cut:]
        self._collect(rest[:cut])
        return events

    def _started(self) -> PaneEvent:
        self.at_prompt = False
        if self._output is None:  # several commands on one line: one output
            self._output = bytearray()
        return CommandStarted(self.pane_id)

    def _prompted(self, code: int) -> PaneEvent:
        self.exit_code = code
        self.prompts += 1
        self.at_prompt = True
        if self._output is None:
            return PromptRedrawn(self.pane_id)
        text = strip_ansi(bytes(self._output)).decode("utf-8", "replace")
        self._output = None
        self.last = CommandResult(text, code)
        self.commands += 1
        if code in STOP_SIGNALS:
            return CommandStopped(self.pane_id, signal=STOP_SIGNALS[code])
        return CommandEnded(self.pane_id, status=code)

    def _retitle(self, title: str) -> list[PaneEvent]:
        if title == self.title:
            return []
        self.title = title
        return [TitleChanged(self.pane_id, title=title)]

    def _collect(self, data: bytes) -> None:
        if data and self._output is not None:
            self._output += data


def _incomplete_from(data: bytes) -> int:
    """Where a sequence that ``data`` ends in the middle of starts (``len(data)`` if none)."""
    osc = data.rfind(b"\x1b]")
    if osc != -1 and len(data) - osc <= MAX_OSC:
        body = data[osc + 2 :]
        esc = body.find(b"\x1b")
        if b"\x07" not in body and esc in (-1, len(body) - 1):
            return osc
    esc = data.rfind(b"\x1b")
    if esc != -1 and any(mode.startswith(data[esc:]) for mode in _PASTE_MODES):
        return esc
    return len(data)
