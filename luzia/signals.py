"""An agent's own signals: its hooks drop one small file each into the job's ``signals/``
directory, which the engine watches with inotify (no polling) and reads in order.

Why files: a hook is a process of the agent's, often several at once (Claude Code runs the hooks
of one event in parallel); a file written aside and renamed into place is whole when it appears,
so no two records interleave, and records written while no engine runs wait for the next one.
The directory is in the job's own directory, which a container sees at its job mount, so it
works the same on the local and docker backends. Where the engine cannot see it (a swarm task's,
on another node), ``signal.sh`` hands each record to the job's tmux server and the engine hears
of it on its control stream (``BELL_FILE``). ``signal.sh`` writes them; ``run.sh`` tells the
job where it is in ``LUZIA_SIGNAL``: ``sh "$LUZIA_SIGNAL" NAME`` (no payload), ``NAME -`` (the
payload on standard input: a Claude Code hook's JSON) or ``NAME PAYLOAD`` (Codex's ``notify``
argument).

What a signal means is its agent kind's business (:meth:`luzia.agents.kind.AgentKind.signal`);
this module only moves them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inotify_simple import INotify, flags

log = logging.getLogger("luzia.signals")

SIGNALS_DIR = "signals"
"""In the job directory: where the hooks drop their records."""

SIGNAL_SCRIPT = "signal.sh"
"""In the job directory: the one command every hook runs."""

SIGNAL_VAR = "LUZIA_SIGNAL"
"""The job's environment variable naming ``signal.sh`` as its pane sees it."""

PAYLOAD_LIMIT = 1 << 20
"""Bytes of a record read at most; a tool's input can be a whole file, its state needs little."""

BELL_FILE = "signal.bell"
"""In a job directory the engine does not see (a swarm task's, on another node): the path of
the job's tmux socket, through which ``signal.sh`` hands its records over instead."""

BELL_SESSION = "luzia-signals"
"""The tmux session (one window, never attached) whose window ``signal.sh`` renames to ring."""

BELL_BUFFER = "luzia-signal."
"""The prefix of the paste buffers that carry records through a bell (then the record's name)."""

SCRIPT = """\
# Written by luzia: hands one signal of the job's agent to the engine. $1 names it; the payload
# is $2, or standard input when $2 is "-" (never read otherwise: a terminal's input is the agent's).
d="${0%/*}/signals"
t="$d/.$$.$1"
n="$(date +%s%N).$$.$1"
case "${2-}" in
  -) cat > "$t" ;;
  *) printf '%s' "${2-}" > "$t" ;;
esac && mv -f "$t" "$d/$n" || exit
# Where the engine cannot see this directory (a swarm task's node), through the job's tmux
# server: the record into a paste buffer (base64: no byte of it can pass for control-mode
# framing), then a window renamed, which the engine hears at once on its control stream.
b="${0%/*}/signal.bell"
if [ -s "$b" ]; then
  s=$(cat "$b")
  base64 -w0 "$d/$n" | tmux -S "$s" load-buffer -b "luzia-signal.$n" - && rm -f "$d/$n" &&
    tmux -S "$s" rename-window -t luzia-signals: "$n" 2>/dev/null
fi
exit 0
"""
"""Names sort by the time they were written (GNU date's nanoseconds); the pid keeps two
written in the same nanosecond apart. Files starting with a dot are not done yet."""

_RECORD_NAME = re.compile(r"[0-9]+\.[0-9]+\.[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Signal:
    """One record: the event's ``name``, its JSON ``payload`` (empty if none or not JSON),
    and when the engine saw it (monotonic seconds)."""

    name: str
    payload: dict[str, Any] = field(default_factory=dict)
    seen_at: float = 0.0


def write_signal_script(job_dir: Path) -> None:
    """``signal.sh`` and an empty ``signals/``, before the job starts."""
    (job_dir / SIGNALS_DIR).mkdir(mode=0o700, exist_ok=True)
    path = job_dir / SIGNAL_SCRIPT
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(SCRIPT)


def put_record(signals_dir: Path, name: str, data: bytes) -> bool:
    """Drop a record that came through a bell into ``signals_dir``, as ``signal.sh`` would
    have (written aside, renamed into place); ``False`` for a name it could not have made."""
    if not _RECORD_NAME.fullmatch(name):
        return False
    temporary = signals_dir / f".{name}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data[:PAYLOAD_LIMIT])
    os.replace(temporary, signals_dir / name)
    return True


def read_signal(path: Path, seen_at: float) -> Signal | None:
    """The record at ``path``, deleted once read; ``None`` if it went (another reader)."""
    name = path.name.rsplit(".", 1)[-1]
    try:
        with path.open("rb") as f:
            raw = f.read(PAYLOAD_LIMIT)
        path.unlink()
    except FileNotFoundError:
        return None
    payload: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        value = json.loads(raw) if raw.strip() else {}
        if isinstance(value, dict):
            payload = value
    return Signal(name, payload, seen_at)


def pending(signals_dir: Path) -> list[Path]:
    """Records already there, oldest first (written while no one watched)."""
    try:
        names = [n for n in os.listdir(signals_dir) if not n.startswith(".")]
    except FileNotFoundError:
        return []
    return [signals_dir / n for n in sorted(names)]


Deliver = Callable[[Signal], None]


class SignalWatcher:
    """One inotify instance and one thread for every watched job of an engine."""

    def __init__(self) -> None:
        self._inotify = INotify()
        self._lock = threading.Lock()
        self._by_wd: dict[int, tuple[Path, Deliver]] = {}
        self._wd_of: dict[Path, int] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="luzia-signals", daemon=True)
        self._thread.start()

    def watch(self, signals_dir: Path, deliver: Deliver) -> Callable[[], None]:
        """Hand every record that appears in ``signals_dir`` (and those already there) to
        ``deliver``, in order; return a function that stops it."""
        signals_dir.mkdir(mode=0o700, exist_ok=True)
        with self._lock:  # the watcher thread waits: the records already there come first
            wd = self._inotify.add_watch(signals_dir, flags.MOVED_TO)
            self._by_wd[wd] = (signals_dir, deliver)
            self._wd_of[signals_dir] = wd
            for path in pending(signals_dir):
                if (sig := read_signal(path, time.monotonic())) is not None:
                    deliver(sig)
        return lambda: self._unwatch(signals_dir)

    def _unwatch(self, signals_dir: Path) -> None:
        with self._lock:
            wd = self._wd_of.pop(signals_dir, None)
            if wd is None:
                return
            self._by_wd.pop(wd, None)
            with contextlib.suppress(OSError):
                self._inotify.rm_watch(wd)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._inotify.close()

    def _run(self) -> None:
        while not self._closed:
            try:
                events = self._inotify.read(timeout=1000)
            except (OSError, ValueError):
                if self._closed:
                    return
                raise
            now = time.monotonic()
            for event in events:
                if not event.name or event.name.startswith("."):
                    continue
                with self._lock:
                    target = self._by_wd.get(event.wd)
                if target is None:
                    continue
                directory, deliver = target
                sig = read_signal(directory / event.name, now)
                if sig is None:
                    continue
                try:
                    deliver(sig)
                except Exception:  # a consumer's bug must not stop every job's signals
                    log.exception("signal %s of %s not delivered", sig.name, directory)
