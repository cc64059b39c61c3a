"""Reading a job's output: whole, the last lines, or following it as it grows.

``output.log`` holds every byte the job's pane printed (tmux ``pipe-pane``): the shell that
typed the job's command line, then the job's output, then the shell's prompt again. The
shell's own markers (``controllers.shell``) bound the middle part exactly, so what a reader
gets by default is the job's output and nothing else; ``whole`` gives the pane as it was.
Escape sequences are kept (a terminal replays them faithfully) unless ``plain``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from controllers.shell import PROMPT_MARK, START_MARK, STOP_SIGNALS
from controllers.shell import strip_ansi as plain_text

_PROMPT_PREFIX = b"\x1b[?2004h"
"""readline turns bracketed paste on just before the prompt; it is the shell's, not the job's."""
_ENDING = _PROMPT_PREFIX + PROMPT_MARK


def _possible_marker_start(data: bytes) -> int:
    """Where the last bytes of ``data`` could begin the prompt's ending (else ``len(data)``).

    Only those are held back: anything else is the job's output and is passed on at once,
    so ``logs -f`` shows a job's last line while it waits.
    """
    start = data.find(b"\x1b", max(0, len(data) - len(_ENDING)))
    while start != -1:  # the earliest candidate wins: ESC[?2004h then ESC]... is one ending
        tail = data[start:]
        if _ENDING.startswith(tail):
            return start
        start = data.find(b"\x1b", start + 1)
    return len(data)


class OutputWindow:
    """Cuts the job's own output out of the pane's bytes, fed in chunks of any size.

    Everything before the first start marker (the command line being typed) and from the
    prompt that follows it (the shell back, and anything a person did later) is dropped. The
    prompt is readline's bracketed-paste switch followed by the prompt marker: a bare marker
    printed by the job itself is the job's output, never its end (it still could print both,
    and cut its own log short here; its recorded state is decided from the process). A
    prompt reporting a stopped job (Ctrl-Z) only pauses the window until the job
    is resumed (``fg``: the next start marker). Bytes that might begin a marker are held
    back until the next chunk or ``flush``.
    """

    def __init__(self) -> None:
        self._held = b""
        self._state = "before"

    def feed(self, data: bytes) -> bytes:
        data = self._held + data
        self._held = b""
        if self._state == "before":
            start = data.find(START_MARK)
            if start < 0:
                self._held = data[-(len(START_MARK) - 1) :]
                return b""
            data = data[start + len(START_MARK) :]
            self._state = "inside"
        if self._state != "inside":
            return b""
        end = data.find(_ENDING)
        if end >= 0:
            out = data[:end]
            close = data.find(b"\x07", end)
            if close < 0:  # the status is still to come
                self._held = data[end:]
                return out
            status = data[end + len(_ENDING) : close]
            if status.isdigit() and int(status) in STOP_SIGNALS:
                # Stopped (Ctrl-Z), not ended: skip the shell until the job is resumed.
                self._state = "before"
                return out + self.feed(data[close + 1 :])
            self._state = "after"
            return out
        cut = _possible_marker_start(data)
        self._held = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        """What was held back, once no more bytes will come."""
        held, self._held = self._held, b""
        return held if self._state == "inside" else b""


def read_log(
    path: Path, *, tail: int | None = None, plain: bool = False, whole: bool = False
) -> bytes:
    """The job's output so far (``whole``: all the pane printed); ``tail``: the last lines."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    if not whole:
        window = OutputWindow()
        data = window.feed(data) + window.flush()
    if plain:
        data = plain_text(data)
    if tail is not None:
        data = _last_lines(data, tail)
    return data


def follow_log(
    path: Path,
    is_final: Callable[[], bool],
    *,
    tail: int | None = None,
    plain: bool = False,
    whole: bool = False,
    poll: float = 0.1,
) -> Iterator[bytes]:
    """Yield the output so far (``tail``: its last lines), then each new chunk as it is written;
    end once the job is final and everything has been read."""
    window = None if whole else OutputWindow()
    offset = 0
    first = True
    while True:
        final = is_final()  # look before reading, so nothing written before the end is missed
        try:
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        offset += len(chunk)
        out = chunk if window is None else window.feed(chunk)
        if final and not chunk and window is not None:
            out += window.flush()
        if first and tail is not None:
            out = _last_lines(plain_text(out) if plain else out, tail)
        elif plain:
            out = plain_text(out)
        first = False
        if out:
            yield out
        if final and not chunk:
            return
        if not chunk:
            time.sleep(poll)


def _last_lines(data: bytes, count: int) -> bytes:
    if count <= 0:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-count:])
