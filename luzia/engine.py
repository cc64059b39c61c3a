"""The engine: the one process that acts on live jobs; it starts, watches, kills and records them.

One engine runs per ``LUZIA_HOME`` (a lock file guards it), as a detached daemon started by
the CLI (``python -m luzia.engine``) or as a thread of an API user's process. Other processes
ask it to act (``luzia.control``: kill, send) and read what it records in the store.

It never polls a screen: each job's pane pushes its output and the shell's markers over the
controller's control stream. A marker is only a reason to look: a job ends when its process
says so (``luzia.verdict``). Acts come first and records after: a kill is recorded once nothing
of the job is left, an end once its log is drained and its workspace snapshot taken.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import functools
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controllers.errors import ControllerError
from controllers.events import (
    CommandEnded,
    CommandStarted,
    CommandStopped,
    PaneEvent,
    PaneLost,
    PromptRedrawn,
)
from controllers.shell import PROMPT_MARK, START_MARK
from luzia import scheduler, workspace
from luzia.agents import AgentProfile, Outcome, agent_kind
from luzia.backends import (
    Backend,
    DockerBackend,
    backend_for,
    job_command,
    log_size,
    read_exit_code,
    read_pid,
)
from luzia.config import Config
from luzia.control import ControlServer
from luzia.daemon import EngineLock, WakeListener
from luzia.errors import LuziaError, StoreError, UsageError
from luzia.joblog import read_log
from luzia.jobs import ACTIVE_STATES, FINAL_STATES, Job, JobState
from luzia.launch import read_launch
from luzia.notify import run_on_state
from luzia.paths import write_private
from luzia.signals import SIGNALS_DIR, Signal, SignalWatcher
from luzia.store import JobStore
from luzia.turns import TurnWatcher, type_into
from luzia.verdict import Evidence, decide

if TYPE_CHECKING:
    from controllers.controller import TmuxController

log = logging.getLogger("luzia.engine")

IDLE_TICK = 1.0
"""Seconds between two looks at the queue when nothing happens (a missed wake-up, retention,
ends that could not be recorded yet, panes to reconnect)."""

LOG_DRAIN_TIMEOUT = 2.0
"""Longest wait for ``pipe-pane`` to write a finished job's last output to its log."""

PIPE_DRAIN_TIMEOUT = 60.0
"""Longest wait for a slow ``cat`` (a loaded machine) to write every byte a pane piped."""

START_WORKERS = 8
"""Jobs started at once: container starts are I/O bound, mostly waiting on the Docker Engine."""

START_TIMEOUT = 30.0
"""Longest wait for a new pane's shell to show its prompt."""

SEND_RECORD_TIMEOUT = 2.0
"""Longest a `send` waits for its ``running`` to be recorded before it answers."""


@dataclass
class _Live:
    """A job whose pane the engine is connected to."""

    job: Job
    controller: TmuxController
    profile: AgentProfile | None
    running_recorded: bool = False
    turns: TurnWatcher | None = None
    unsubscribe: Callable[[], None] | None = None
    unsignal: Callable[[], None] | None = None


@dataclass(frozen=True)
class _End:
    """An end decided but not yet recorded (the store could not be written: a full disk)."""

    job: Job
    state: JobState
    exit_code: int | None
    reason: str
    usage: Mapping[str, float] = dataclasses.field(default_factory=dict)


class Engine:
    """Runs the jobs of one ``LUZIA_HOME``; see the module docstring."""

    def __init__(self, home: Path, config: Config | None = None) -> None:
        self.home = Path(home)
        self.config = config if config is not None else Config.load()
        self.store = JobStore(self.home)
        self._events: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self._live: dict[str, _Live] = {}
        self._live_lock = threading.Lock()
        self._starting: dict[str, threading.Event] = {}
        self._killing: set[str] = set()
        self._early_inputs: dict[str, list[tuple[str, bool]]] = collections.defaultdict(list)
        self._unrecorded: dict[str, _End] = {}
        self._reconnect: set[str] = set()
        self._unreconciled: set[str] = set()
        self._pool = ThreadPoolExecutor(START_WORKERS, thread_name_prefix="luzia-start")
        self._git = ThreadPoolExecutor(2, thread_name_prefix="luzia-git")
        self._stop = threading.Event()
        self._backends: dict[str, Backend] = {}
        self._backends_lock = threading.Lock()
        self._docker_ok: bool | None = None
        self._last_sweep = 0.0
        self._lock = EngineLock(self.home)
        self._thread: threading.Thread | None = None
        self._signal_watcher: SignalWatcher | None = None
        self._signal_lock = threading.Lock()

    # -- running the engine --

    def run(self) -> None:
        """Hold the lock and handle events until :meth:`stop`."""
        self._lock.acquire()
        wake = WakeListener(self.home, lambda: self._events.put(("wake", "", None)))
        control = ControlServer(self.home, self.handle_request)
        try:
            for listener in (wake, control):
                try:
                    listener.start()
                except OSError as exc:  # e.g. a squatted socket directory: say so, run on
                    log.error("%s", exc)
            self.reconcile()
            self._schedule()
            while not self._stop.is_set():
                try:
                    kind, job_id, detail = self._events.get(timeout=IDLE_TICK)
                except queue.Empty:
                    self._tick()
                    continue
                try:
                    self._handle(kind, job_id, detail)
                except LuziaError as exc:  # e.g. the store cannot be written: log, go on
                    log.error("event %s for job %s: %s", kind, job_id or "-", exc)
        finally:
            control.close()
            wake.close()
            self._shutdown()
            self._lock.release()

    def start(self) -> Engine:
        """Run in a background thread of this process (the API's in-process engine)."""
        self._lock.acquire()  # here, in the caller: fails at once if another engine runs
        self._thread = threading.Thread(target=self.run, name="luzia-engine", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop handling events; jobs go on running in their panes."""
        self._stop.set()
        self._events.put(("stop", "", None))
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the engine is still finishing its work after %g s", timeout)

    def _shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._git.shutdown(wait=True)
        with self._live_lock:
            live = list(self._live.values())
            self._live.clear()
        for item in live:
            self._unwatch(item)
        if self._signal_watcher is not None:
            self._signal_watcher.close()
        self.store.close()

    def _tick(self) -> None:
        """What is done when nothing happened for a while."""
        for end in list(self._unrecorded.values()):
            self._pool.submit(self._record_end, end)
        for job_id in list(self._reconnect):
            self._pool.submit(self._examine, job_id, "lost", None)
        for job_id in list(self._unreconciled):
            self._pool.submit(self._retry_reconcile, job_id)
        try:
            self._schedule()
            self._sweep()
        except LuziaError as exc:
            log.error("scheduling: %s", exc)

    # -- requests from other processes (luzia.control) --

    def handle_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """Serve one request (in its connection's thread); raise ``LuziaError`` to refuse."""
        op = request.get("op")
        job_id = str(request.get("job") or "")
        if op == "kill":
            job = self.kill(job_id)
            return {"ok": True, "job": job.id, "state": str(job.state)}
        if op == "send":
            text, enter = request.get("text"), request.get("enter", True)
            if not isinstance(text, str) or not isinstance(enter, bool):
                raise UsageError("send needs text (a string) and enter (true or false)")
            self.send(job_id, text, enter)
            return {"ok": True, "job": job_id}
        raise UsageError(f"unknown request {op!r}")

    def kill(self, job_id: str) -> Job:
        """End every process of the job, then record ``killed``; on failure record nothing.

        A job that ended by itself meanwhile is recorded as it ended, and returned so.
        """
        job = self.store.resolve(job_id)
        if job.state in FINAL_STATES:
            return job
        job = self.store.kill_if_queued(job.id)
        if job.state in FINAL_STATES:
            return job
        with self._live_lock:
            self._killing.add(job.id)
            starting = self._starting.get(job.id)
        try:
            if starting is not None:  # let the start finish (it will not run the command)
                starting.wait(START_TIMEOUT + 30)
            job = self.store.get(job.id)
            if job.state in FINAL_STATES:
                return job
            code = read_exit_code(job)  # before acting: what run.sh records during it is ours
            self._backend(job).kill(job)  # act: raises, and nothing is recorded
            live = self._drop_live(job.id)
            if code is not None:  # it ended by itself just before
                verdict = decide(Evidence(alive=False, exit_code=code))
                self._end(live, job, verdict.exit_code, verdict.reason)
            else:
                self._end(live, job, None, "killed on request", state=JobState.KILLED)
            return self.store.get(job.id)
        finally:
            with self._live_lock:
                self._killing.discard(job.id)

    def send(self, job_id: str, text: str, enter: bool) -> None:
        """Type ``text`` into the job's pane (an agent gets it when its turn has ended)."""
        job = self.store.resolve(job_id)
        if job.state in FINAL_STATES:
            raise UsageError(f"cannot send input to job {job.id}: it is {job.state}")
        with self._live_lock:
            live = self._live.get(job.id)
            if live is None and job.mode == "interactive":
                self._early_inputs[job.id].append((text, enter))  # handed over at its start
                return
        if live is None:
            raise UsageError(f"cannot send input to job {job.id}: it is {job.state}, no pane yet")
        if live.turns is not None and live.turns.following:
            live.turns.submit(text, enter)
            # Recorded before the answer, behind every turn report already queued: a
            # `luzia send` then `luzia wait --for idle` never sees the turn before it as idle.
            self._events.put(("running", job.id, "input sent; the agent takes it next"))
            self._flush_events(SEND_RECORD_TIMEOUT)
            return
        try:  # a plain command, or an agent luzia no longer follows: type it into the pane
            type_into(live.controller, text, enter)
        except ControllerError as exc:
            raise LuziaError(f"cannot send input to job {job.id}: {exc}") from exc

    # -- events --

    def _flush_events(self, timeout: float) -> None:
        """Wait until the event thread has handled everything queued before this call."""
        done = threading.Event()
        self._events.put(("flush", "", done))
        done.wait(timeout)

    def _handle(self, kind: str, job_id: str, detail: Any) -> None:
        if kind == "flush":
            detail.set()
        elif kind == "wake":
            self._schedule()
        elif kind == "started":
            self._record_running(job_id)
        elif kind in ("ended", "stopped", "lost"):
            self._pool.submit(self._examine, job_id, kind, detail)
        elif kind == "usage":
            self.store.add_turn_usage(job_id, detail[1])
        elif kind in ("running", "idle", "waiting"):
            with self._live_lock:
                live = self._live.get(job_id)
            if live is not None and job_id not in self._killing:
                message, usage = detail if isinstance(detail, tuple) else (str(detail), {})
                self._record_turn(job_id, JobState(kind), message, usage)

    def _record_turn(
        self, job_id: str, state: JobState, message: str, usage: Mapping[str, float]
    ) -> None:
        """A turn state the watcher reported, with the turn's usage; the user's ``on_state`` is
        told of a new state, not of a better message for the same one."""
        before = self.store.get(job_id).state
        job = self.store.transition(job_id, state, message)
        if usage and job.state is state:
            job = self.store.add_turn_usage(job_id, usage)
        if job.state is state and before is not state:
            self._told(job)

    def _record_running(self, job_id: str) -> None:
        with self._live_lock:
            live = self._live.get(job_id)
        if live is None or live.running_recorded:
            return
        live.running_recorded = True
        if live.turns is not None:
            self.store.transition(job_id, JobState.RUNNING, "starting the agent")
            return
        where = (
            f"container {live.job.container_id[:12]}"
            if live.job.container_id
            else "tmux on this host"
        )
        self.store.transition(job_id, JobState.RUNNING, f"running in {where}")

    def _examine(self, job_id: str, hint: str, cause: str | None) -> None:
        """The pane said something happened (``hint``): look at the process and decide."""
        try:
            with self._live_lock:
                live = self._live.get(job_id)
                if live is None or job_id in self._killing:
                    return
            job = live.job
            backend = self._backend(job)
            evidence = self._evidence(job, backend, cause if hint == "lost" else None)
            verdict = decide(evidence)
            if not verdict.ended:
                if hint == "stopped" and verdict.paused:
                    signame = cause or "a signal"
                    reason = f"stopped by {signame}; `luzia attach {job.id}` and `fg` resume it"
                    self.store.transition(job.id, JobState.RUNNING, reason)
                elif hint == "lost":
                    self._reattach(live, backend)
                return
            if self._drop_live(job_id) is None:
                return  # another look decided first
            self._end(live, job, verdict.exit_code, verdict.reason, pane_gone=bool(evidence.gone))
        except (LuziaError, OSError) as exc:
            log.warning("job %s: could not look at it (%s); trying again", job_id, exc)
            self._reconnect.add(job_id)
        except Exception:
            log.exception("job %s: unexpected error while examining it", job_id)

    def _evidence(self, job: Job, backend: Backend, gone: str | None) -> Evidence:
        """A recorded status at once; else alive first, then the status again: a status written
        in between is not missed."""
        with contextlib.suppress(LuziaError):
            backend.sync(job)  # a swarm job records on its node
        code = read_exit_code(job)
        if code is not None:  # the common end: no need to look at the processes
            return Evidence(alive=None, exit_code=code)
        try:
            alive: bool | None = backend.job_alive(job)
        except LuziaError as exc:
            log.info("job %s: cannot tell whether it runs: %s", job.id, exc)
            alive = None
        stopped = bool(alive) and _process_stopped(backend, job)
        if alive is False and gone is None:
            gone = _gone(job, backend)
        if alive is False and gone is None and read_pid(job) is None:
            # The shell has said the command started, but run.sh has not recorded its pid (nor
            # tagged itself): it is only starting, which no process shows yet. Look again.
            alive = None
        return Evidence(alive=alive, exit_code=read_exit_code(job), stopped=stopped, gone=gone)

    def _reattach(self, live: _Live, backend: Backend) -> None:
        """The control stream dropped while the job runs on: connect again and watch it."""
        job = live.job
        controller = backend.reattach(job)
        if controller is None:
            self._reconnect.add(job.id)  # look again on the next tick
            return
        self._reconnect.discard(job.id)
        with self._live_lock:
            if self._live.get(job.id) is not live:
                controller.detach()
                return
        self._unwatch(live)
        log.info("job %s: control stream reconnected", job.id)
        fresh = self._watch(job, controller, live.profile, resume=True)
        fresh.running_recorded = True
        if fresh.turns is not None:
            fresh.turns.start()
        self._events.put(("ended", job.id, None))  # it may have ended while we were away

    def _drop_live(self, job_id: str) -> _Live | None:
        """Stop watching the job (still connected: its end drains the log through it); the one
        caller that gets it back records the end."""
        with self._live_lock:
            live = self._live.pop(job_id, None)
            self._reconnect.discard(job_id)
        if live is not None:
            self._release(live)
        return live

    def _release(self, live: _Live) -> None:
        if live.turns is not None:
            live.turns.stop()
        if live.unsubscribe is not None:
            live.unsubscribe()
        if live.unsignal is not None:
            live.unsignal()

    def _unwatch(self, live: _Live) -> None:
        self._release(live)
        with contextlib.suppress(ControllerError):
            live.controller.detach()

    # -- the end of a job: act, then record --

    def _end(
        self,
        live: _Live | None,
        job: Job,
        code: int | None,
        reason: str,
        *,
        state: JobState | None = None,
        pane_gone: bool = False,
    ) -> None:
        """Drain the log, end what the job left behind, snapshot its workspace, record the end.

        The job is final in the store only once all of that is done: whoever waits for it can
        read the whole log and act on the workspace at once. ``pane_gone``: its container or
        tmux server is gone, and with it the ``cat`` that writes the log.
        """
        if state is None and code is None and self._run_again(job, reason):
            return  # a recorded exit status is the job's own end, wherever its node is now
        notes = []
        killed = state is JobState.KILLED
        if not self._drain_log(live, job, code, pane_gone, killed) and _disk_full(job.log_path):
            notes.append("log truncated: no space left on the device")
        backend = self._backend(job)
        with contextlib.suppress(LuziaError, OSError):
            backend.finished(job)
        try:
            workspace.ensure_post_task(job.workdir, job.id, backend.workspace_copy(job))
        except LuziaError as exc:
            log.warning("job %s: no workspace snapshot after the job: %s", job.id, exc)
            notes.append(f"no workspace snapshot after the job: {exc}")
        outcome = self._outcome(job) if state is None else None
        if state is None:
            state = JobState.COMPLETED if code == 0 else JobState.FAILED
        if outcome is not None and outcome.failed:
            state = JobState.FAILED
            reason = f"{reason}; the agent reported a failure: {outcome.message}"
        full_reason = "; ".join([reason, *notes])
        usage = outcome.usage if outcome is not None else {}
        self._record_end(_End(job, state, code, full_reason, usage))
        if live is not None:  # after the record: waiting for a docker exec client costs ~16 ms
            with contextlib.suppress(ControllerError):
                live.controller.detach()

    def _drain_log(
        self, live: _Live | None, job: Job, code: int | None, pane_gone: bool, killed: bool
    ) -> bool:
        """Wait until the log holds everything the pane printed; False if it never will.

        The controller that started the pipe counted every byte it handed over and waits for
        the log to hold them (tmux drops what is unwritten when a pipe closes); an adopted
        pane's log is read for the final prompt instead. The long wait is for a slow ``cat``;
        a dead one (the pane gone, or killed) or a full disk gets the short one.
        """
        if live is not None and live.controller.pipe_counted:
            short = pane_gone or killed or _disk_full(job.log_path)
            timeout = LOG_DRAIN_TIMEOUT if short else PIPE_DRAIN_TIMEOUT
            try:
                live.controller.stop_pipe(timeout, size_of=lambda: log_size(job))
                return True
            except ControllerError as exc:  # a kill ends the pane: expected then
                log.log(logging.INFO if killed else logging.WARNING, "job %s: %s", job.id, exc)
                return False
        return code is None or log_has_prompt(job.log_path, LOG_DRAIN_TIMEOUT)

    def _record_end(self, end: _End) -> None:
        """Record an end; if the store cannot be written, keep it and try again on each tick."""
        job = end.job
        try:
            recorded = self.store.transition(
                job.id, end.state, end.reason, exit_code=end.exit_code, usage=end.usage
            )
        except StoreError as exc:
            if job.id not in self._unrecorded:
                log.error(
                    "job %s ended (%s) but cannot be recorded yet: %s", job.id, end.reason, exc
                )
            self._unrecorded[job.id] = end
            return
        self._unrecorded.pop(job.id, None)
        self._events.put(("wake", "", None))
        if recorded.state is end.state:
            self._told(recorded)
            self._after_job(job, end.exit_code)

    def _run_again(self, job: Job, reason: str) -> bool:
        """A swarm job whose node was lost, dispatched with retries left, goes back to the
        queue to run elsewhere: act first (its service goes, so the lost node can never start
        it again), then record. Each attempt starts from the beginning; the lost one's log is
        kept beside the job's."""
        backend = self._backend(job)
        if backend.lost_node(job) is None:
            return False
        launch = read_launch(job.job_dir)
        allowed = launch.retries if launch else 0
        done = _retries_done(job)
        if done >= allowed:
            return False
        backend.remove(job)
        kept = job.job_dir / f"attempt-{done + 1}.log"
        with contextlib.suppress(FileNotFoundError):
            os.replace(job.log_path, kept)
        _forget_attempt(job)
        write_private(job.job_dir / RETRIES_FILE, f"{done + 1}\n".encode())
        self.store.transition(
            job.id,
            JobState.QUEUED,
            f"{reason}; running it again elsewhere (retry {done + 1} of {allowed}; the lost "
            f"attempt's log: {kept.name})",
            container_id=None,
            tmux_target=None,
        )
        self._events.put(("wake", "", None))
        return True

    def _told(self, job: Job) -> None:
        """Run the user's ``on_state`` command for the state ``job`` is now in, if it has one."""
        command = self.config.on_state_for(job.project)
        if command is not None:
            run_on_state(command, job)

    def _after_job(self, job: Job, code: int | None) -> None:
        """If the project asks for it, commit the job's change."""
        settings = self.config.projects.get(job.project or "")
        if code != 0 or settings is None or settings.commit is None:
            return
        try:
            branch = f"luzia/{job.id}" if settings.commit == "branch" else None
            copied = self._backend(job).workspace_copy(job) is not None
            sha = workspace.commit(job.workdir, job.id, branch=branch, task=job.task, copied=copied)
            where = branch or "the current branch"
            self._note_final(job, f"committed as {sha[:12]} on {where}")
        except workspace.NothingToCommit:
            self._note_final(job, "nothing to commit: the workspace is unchanged")
        except LuziaError as exc:
            log.warning("job %s: workspace after the job: %s", job.id, exc)
            self._note_final(job, f"workspace: {exc}")

    def _note_final(self, job: Job, note: str) -> None:
        current = self.store.get(job.id)
        self.store.update(job.id, message=f"{current.message}; {note}" if current.message else note)

    def _note_snapshot(self, job: Job, pre: Future[workspace.Snapshot | None]) -> None:
        """Say on the job when its workspace could not be recorded; the job runs anyway."""
        try:
            pre.result()
        except LuziaError as exc:
            log.warning("job %s: no snapshot before the job: %s", job.id, exc)
            self.store.transition(job.id, JobState.STARTING, f"no workspace snapshot: {exc}")

    # -- watching a pane --

    def _watch(
        self,
        job: Job,
        controller: TmuxController,
        profile: AgentProfile | None = None,
        *,
        resume: bool = False,
    ) -> _Live:
        """Turn the pane's events into queue events; no thread, no poll.

        An interactive agent also gets a :class:`TurnWatcher` reporting its turns.
        """
        live = _Live(job, controller, profile)
        if profile is not None and job.mode == "interactive":
            now = self.store.get(job.id) if resume else job
            turns = live.turns = TurnWatcher(
                controller,
                profile,
                job.task,
                lambda state, message, usage: self._events.put((state, job.id, (message, usage))),
                resume=resume,
                recorded=(str(now.state), now.message or ""),
            )
            kind = agent_kind(profile)
            if kind is not None:
                backend = self._backend(job)

                def heard(signal: Signal) -> None:
                    state = kind.read_signal(signal, lambda path: backend.host_path(job, path))
                    if state is not None:
                        turns.signal(state)

                live.unsignal = self._signals().watch(job.job_dir / SIGNALS_DIR, heard)
        with self._live_lock:
            self._live[job.id] = live
            for text, enter in self._early_inputs.pop(job.id, []):
                if live.turns is not None:
                    live.turns.submit(text, enter)
        live.unsubscribe = _pane_hints(
            controller, lambda kind, cause: self._events.put((kind, job.id, cause))
        )
        return live

    def _signals(self) -> SignalWatcher:
        """The one watcher of every job's signals, started with the first agent that has any."""
        with self._signal_lock:
            if self._signal_watcher is None:
                self._signal_watcher = SignalWatcher()
            return self._signal_watcher

    # -- scheduling and starting --

    def _schedule(self) -> None:
        queued = self.store.list(state=JobState.QUEUED)
        if not queued:
            return
        root_of = functools.cache(workspace.workspace_root)  # one git call per path per pass
        plan = scheduler.plan_starts(
            list(reversed(queued)),  # oldest first
            self.store.list(state=ACTIVE_STATES),
            max_concurrent=self.config.defaults.max_concurrent,
            project_limit=self.config.max_concurrent_for,
            busy_with=lambda workdir, busy: workspace.workspace_busy(workdir, busy, root=root_of),
        )
        for job in queued:
            note = plan.waiting.get(job.id)
            if note is not None and job.message != note:
                self.store.update(job.id, message=note)
        for job in plan.start:
            claimed = self.store.transition(job.id, JobState.STARTING, "starting")
            if claimed.state is not JobState.STARTING:
                continue  # killed or removed while queued
            with self._live_lock:
                self._starting[job.id] = threading.Event()
            self._pool.submit(self._start, claimed)

    def _start(self, job: Job) -> None:
        controller: TmuxController | None = None
        try:
            backend = self._backend(job)
            if backend.name != job.backend:
                job = self.store.update(job.id, backend=backend.name)
            profile = self._profile(job)
            pre = self._git.submit(workspace.pre_task, job.workdir, job.id)  # beside the start
            controller = backend.start(job, self.home, job_command(job, profile))
            job = self.store.update(job.id, **_pane_fields(controller))
            controller.wait_for_shell_prompt(START_TIMEOUT)
            if job.id in self._killing or self.store.get(job.id).state in FINAL_STATES:
                controller.detach()  # a kill is under way: it ends the pane; run nothing
                return
            self._note_snapshot(job, pre)
            live = self._watch(job, controller, profile)
            controller.send_keys(backend.run_line(job))
            if live.turns is not None:
                live.turns.start()
        except (LuziaError, OSError) as exc:
            log.warning("job %s failed to start: %s", job.id, exc)
            if controller is not None:
                self._drop_live(job.id)
                with contextlib.suppress(ControllerError):
                    controller.detach()
            with contextlib.suppress(LuziaError, OSError):
                self._backend(job).kill(job)  # nothing half-started is left running
            self.store.transition(job.id, JobState.FAILED, f"could not start: {exc}")
        except Exception as exc:  # a bug: say so in the job, keep the engine alive
            log.exception("job %s: unexpected error while starting", job.id)
            self.store.transition(
                job.id, JobState.FAILED, f"internal error while starting: {exc!r}"
            )
        finally:
            with self._live_lock:
                started = self._starting.pop(job.id, None)
            if started is not None:
                started.set()

    def _outcome(self, job: Job) -> Outcome | None:
        """What a command-mode agent reported of its run in its log (its kind knows the
        record), or ``None``; never raises: the exit status alone decides then."""
        kind = agent_kind(self._profile(job)) if job.mode == "command" else None
        if kind is None:
            return None
        try:
            return kind.outcome(read_log(job.log_path).decode("utf-8", "replace"))
        except (OSError, ValueError) as exc:
            log.warning("job %s: cannot read the agent's outcome: %s", job.id, exc)
            return None

    def _profile(self, job: Job) -> AgentProfile | None:
        """The job's agent profile as dispatched; this engine's config only for a job from
        before launch records."""
        launch = read_launch(job.job_dir)
        return launch.profile if launch else self.config.agent_profile(job.agent)

    def _backend(self, job: Job) -> Backend:
        name = job.backend
        if name == "auto":
            name = "docker" if self._docker_available() else "local"
        return self._backends_by_name(name)

    def _backends_by_name(self, name: str) -> Backend:
        with self._backends_lock:
            if name not in self._backends:
                self._backends[name] = backend_for(name, config=self.config)
            return self._backends[name]

    def _docker_available(self) -> bool:
        if self._docker_ok is None:
            from controllers.docker_engine import docker_client

            try:
                docker_client()
                self._docker_ok = True
            except ControllerError:
                self._docker_ok = False
        return self._docker_ok

    # -- after a restart --

    def reconcile(self) -> None:
        """Find every job the store calls active; adopt its pane or record how it ended.

        A job is never run twice: one caught while starting whose command provably never ran
        goes back to the queue (its pane removed first); one that ran is adopted or judged.
        """
        known = {job.id for job in self.store.list()}
        names = ["local", "docker"] if self._docker_available() else ["local"]
        if self.config.swarm.nodes:
            names.append("swarm")
        for name in names:
            try:
                removed = self._backends_by_name(name).remove_orphans(self.home, known)
            except LuziaError as exc:
                log.warning("cannot look for orphaned %s panes: %s", name, exc)
                continue
            for what in removed:
                log.info("removed %s: its job is not in the store", what)
        for job in self.store.list(state=ACTIVE_STATES):
            try:
                self._reconcile(job)
            except (LuziaError, OSError) as exc:
                log.warning("job %s: cannot reconcile yet: %s", job.id, exc)
                self._unreconciled.add(job.id)

    def _reconcile(self, job: Job) -> None:
        backend = self._backend(job)
        backend.sync(job)  # a swarm job's records are on its node: fetched before judging
        if read_pid(job) is None and read_exit_code(job) is None:
            backend.remove(job)  # act first: after this, its command can no longer start
            if read_pid(job) is None:
                _forget_attempt(job)
                self.store.transition(
                    job.id,
                    JobState.QUEUED,
                    "queued again: the engine stopped while starting it, before it ran",
                    container_id=None,
                    tmux_target=None,
                )
                return
        controller = backend.reattach(job)
        if controller is None:
            verdict = decide(self._evidence(job, backend, _gone(job, backend)))
            if verdict.ended:
                self._end(None, job, verdict.exit_code, verdict.reason)
            else:
                self._reconnect_later(job)
            return
        live = self._watch(job, controller, self._profile(job), resume=True)
        live.running_recorded = True
        if live.turns is not None:
            live.turns.start()
        if job.state is JobState.STARTING:
            self.store.transition(job.id, JobState.RUNNING, "running (adopted after a restart)")
        self._events.put(("ended", job.id, None))  # it may have ended while we were away

    def _reconnect_later(self, job: Job) -> None:
        """A job that may run on but whose pane cannot be reached now (Docker down): retry."""
        log.warning("job %s: its pane cannot be reached now; trying again", job.id)
        self._unreconciled.add(job.id)

    def _retry_reconcile(self, job_id: str) -> None:
        self._unreconciled.discard(job_id)
        try:
            job = self.store.get(job_id)
            if job.state in ACTIVE_STATES:
                self._reconcile(job)
        except (LuziaError, OSError) as exc:
            log.info("job %s: cannot reconcile yet: %s", job_id, exc)
            self._unreconciled.add(job_id)

    # -- retention --

    def _sweep(self) -> None:
        """Remove the containers of jobs finished longer ago than ``retention``."""
        now = time.time()
        if now - self._last_sweep < 60:
            return
        self._last_sweep = now
        finished = self.store.list(state=FINAL_STATES)
        for job in scheduler.expired(finished, now=now, retention=self.config.defaults.retention):
            with contextlib.suppress(LuziaError):
                self._backend(job).remove(job)
                self.store.update(job.id, container_id=None, tmux_target=None)
        busy = {job.id for job in self.store.list(state=(JobState.QUEUED, *ACTIVE_STATES))}
        with self._backends_lock:
            backends = list(self._backends.values())
        for backend in backends:
            backend.tidy(self.home, busy)


def _pane_hints(
    controller: TmuxController, hint: Callable[[str, str | None], None]
) -> Callable[[], None]:
    """Subscribe to the pane's typed events as hints: ``started``, ``ended``, ``stopped``,
    ``lost`` (with its cause). None of them is taken as the truth; see :meth:`Engine._examine`."""
    started = [False]

    def on_event(event: PaneEvent) -> None:
        if isinstance(event, CommandStarted) and not started[0]:
            started[0] = True
            hint("started", None)
        elif isinstance(event, CommandEnded | PromptRedrawn):  # a job may fake a prompt earlier
            hint("ended", None)
        elif isinstance(event, CommandStopped):
            hint("stopped", event.signal)
        elif isinstance(event, PaneLost):
            hint("lost", None if event.stream_only else event.cause)

    return controller.subscribe(on_event)


def _process_stopped(backend: Backend, job: Job) -> bool:
    """Whether the job's wrapper is stopped by a signal (state ``T`` in ``/proc/PID/stat``)."""
    pid = read_pid(job)
    if pid is None:
        return False
    try:
        if isinstance(backend, DockerBackend):
            stat = backend.read_in_container(job, f"/proc/{pid}/stat")
        else:
            stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, LuziaError):
        return False
    return stat.rpartition(")")[2].split()[:1] == ["T"]


def _gone(job: Job, backend: Backend) -> str | None:
    """Why the job's pane is gone, for a person (``container 1a2b3c removed``)."""
    if isinstance(backend, DockerBackend):
        return backend.describe_container(job)
    return None


RETRIES_FILE = "retries"
"""In the job directory: how many times the job was run again after losing its node."""


def _retries_done(job: Job) -> int:
    try:
        return int((job.job_dir / RETRIES_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return 0


def _forget_attempt(job: Job) -> None:
    """Clear what a start cut short left in the job directory, before the job runs again."""
    from luzia.backends import PID_FILE
    from luzia.paths import EXIT_CODE_FILE

    for name in (PID_FILE, EXIT_CODE_FILE, job.log_path.name):
        with contextlib.suppress(FileNotFoundError):
            (job.job_dir / name).unlink()


def _disk_full(path: Path) -> bool:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def log_has_prompt(path: Path, timeout: float) -> bool:
    """Wait until the log's last marker is a prompt: ``pipe-pane`` has written the whole run."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with path.open("rb") as f:
                f.seek(max(0, f.seek(0, 2) - 64 * 1024))
                tail = f.read()
        except FileNotFoundError:
            tail = b""
        if tail.rfind(PROMPT_MARK) > tail.rfind(START_MARK):
            return True
        if time.monotonic() > deadline:
            log.warning("%s: the final prompt did not reach the log within %g s", path, timeout)
            return False
        time.sleep(0.002)


def _pane_fields(controller: TmuxController) -> dict[str, object]:
    from controllers.docker_tmux import TMUX_SOCKET, DockerTmuxController
    from controllers.local import LocalTmuxController

    if isinstance(controller, DockerTmuxController):
        return {"container_id": controller.container.id, "tmux_target": TMUX_SOCKET}
    assert isinstance(controller, LocalTmuxController)
    return {"tmux_target": str(controller.socket_path)}


def main(argv: list[str] | None = None) -> int:
    """``python -m luzia.engine --home H``: the detached daemon the CLI starts."""
    parser = argparse.ArgumentParser(prog="python -m luzia.engine")
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        engine = Engine(args.home)
    except LuziaError as exc:
        print(f"luzia engine: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: engine.stop(0))
    signal.signal(signal.SIGINT, lambda *_: engine.stop(0))
    try:
        engine.run()
    except LuziaError as exc:
        print(f"luzia engine: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
