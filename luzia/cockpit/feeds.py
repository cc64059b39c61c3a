"""The cockpit's two live inputs, each in a thread of its own so the screen never waits on them.

``JobsFeed`` hands over the home's job list whenever any process commits a change to the store,
as ``luzia events -f`` notices it: a look at SQLite's change counter (a pragma, no query) every
``poll`` seconds, and a read of the jobs only when it moved. ``PaneFeed`` hands over what a job's
pane shows now: it subscribes to the pane's output events through a control-mode client of its
own and captures the screen (with colours) only after output arrived, at most every
``throttle`` seconds. A finished job has no pane: its log's tail is shown instead.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

from controllers import Output, TmuxController
from controllers.events import PaneLost
from luzia.jobs import Job
from luzia.store import JobStore

POLL = 0.05
"""Seconds between two looks at the store's change counter: a change is on the screen well
within 200 ms, and 20 looks a second cost little (measured: benchmarks/bench_cockpit.py)."""

THROTTLE = 0.3
"""Shortest time between two captures of a pane that keeps printing: three a second follow a
person's eye; each costs a capture and a redraw of the preview."""

LOG_TAIL = 200
"""Lines of a finished job's log shown in its preview."""


class JobsFeed:
    """Calls ``on_jobs(jobs)`` from its thread with every job of the home, at start and after
    each change any process commits; ``on_error(exc)`` when the store cannot be read."""

    def __init__(
        self,
        home: Path,
        on_jobs: Callable[[list[Job]], object],
        on_error: Callable[[Exception], object],
        poll: float = POLL,
    ) -> None:
        self.store = JobStore(home)
        self.on_jobs = on_jobs
        self.on_error = on_error
        self.poll = poll
        self._stop = threading.Event()
        self._again = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cockpit-jobs", daemon=True)

    def start(self) -> JobsFeed:
        self._thread.start()
        return self

    def refresh(self) -> None:
        """Read the jobs again now, changed or not (after an action of our own)."""
        self._again.set()

    def _run(self) -> None:
        seen: int | None = None
        while not self._stop.is_set():
            try:
                counter = self.store.change_counter()
                if counter != seen or self._again.is_set():
                    self._again.clear()
                    jobs = self.store.list()
                    seen = counter
                    self.on_jobs(jobs)
            except Exception as exc:  # a store gone bad is shown, never a crash of the screen
                self.on_error(exc)
            self._stop.wait(self.poll)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self.store.close()


class PaneFeed:
    """Calls ``on_screen(job_id, text)`` with what the job's pane shows (ANSI escapes kept), at
    start and after output, throttled; for a finished job, once, with its log's tail."""

    def __init__(
        self,
        job: Job,
        on_screen: Callable[[str, str], object],
        throttle: float = THROTTLE,
    ) -> None:
        self.job = job
        self.on_screen = on_screen
        self.throttle = throttle
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._controller: TmuxController | None = None
        self._thread = threading.Thread(target=self._run, name="cockpit-pane", daemon=True)

    def start(self) -> PaneFeed:
        self._thread.start()
        return self

    def _run(self) -> None:
        if self.job.state.is_final:
            self.on_screen(self.job.id, log_tail(self.job))
            return
        try:
            self._controller = _pane_of(self.job)
        except Exception as exc:
            self.on_screen(self.job.id, f"(no pane to show: {exc})")
            return
        if self._controller is None:
            self.on_screen(self.job.id, f"(job {self.job.id} has no pane yet)")
            return
        unsubscribe = self._controller.subscribe(self._on_event)
        last = None
        try:
            self._dirty.set()
            while not self._stop.is_set():
                self._dirty.wait()
                if self._stop.is_set():
                    break
                self._dirty.clear()
                try:
                    screen = self._controller.capture_pane(escapes=True)
                except Exception as exc:
                    self.on_screen(self.job.id, f"(the pane is gone: {exc})")
                    break
                if screen != last:  # a spinner's frame back where it was: nothing to redraw
                    self.on_screen(self.job.id, screen)
                    last = screen
                self._stop.wait(self.throttle)  # output in the meantime is one capture later
        finally:
            unsubscribe()
            with contextlib.suppress(Exception):
                self._controller.detach()

    def _on_event(self, event: object) -> None:
        """In the control client's reader thread: only note that something changed."""
        if isinstance(event, Output):
            self._dirty.set()
        elif isinstance(event, PaneLost):
            self._stop.set()
            self._dirty.set()

    def close(self) -> None:
        """Stop and detach from the pane (the job goes on); returns at once."""
        self._stop.set()
        self._dirty.set()


def _pane_of(job: Job) -> TmuxController | None:
    """A control-mode client of our own on the job's tmux server (local or in its container)."""
    if job.backend == "auto" or not (job.tmux_target or job.container_id):
        return None
    from luzia.backends import backend_for

    return backend_for(job.backend).reattach(job)


def log_tail(job: Job, lines: int = LOG_TAIL) -> str:
    """The end of what the job printed (plain text: a log holds cursor moves that only a
    terminal replays), or a note when there is none."""
    from luzia import joblog

    try:
        data = joblog.read_log(job.log_path, tail=lines, plain=True)
    except Exception as exc:
        return f"(no log: {exc})"
    text = data.decode("utf-8", "replace").rstrip()
    return text or "(the job printed nothing)"
