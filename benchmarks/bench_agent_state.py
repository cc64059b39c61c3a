"""An agent's state from its own signals: how soon luzia knows, against a screen-hash watcher.

    python benchmarks/bench_agent_state.py [--agents claude,codex,aider] [--backends local,docker]
                                           [--turns N] [--questions N] [--quick] [--json]

The real CLIs (pinned, ``tests/agent_bins.py``) against the scripted model servers
(``tests/model_servers``), set up as ``bench_agents.py`` (their conformance tests) set them up,
one interactive job per agent and backend, an in-process engine. Beside each job runs the
baseline, *the peers' way*: a thread captures the job's pane every 0.5 s (over the engine's own
controller: a ``tmux capture-pane`` on the host, in the container for Docker) and declares the
agent idle once the screen's hash has not changed for 2 s, or waiting if a question of the
profile is on that screen then; any change after that is a new turn. Same pane, same moment.

1. *Turn end -> idle*: ``N`` turns (``say hi``), each from the model's last byte (the scripted
   server notes when it wrote the last byte of every answer, ``Server.finished``, wall time) to
   the store's ``idle`` event ``at``; the baseline's declaration likewise.
2. *Question on screen -> waiting* (Claude Code ``--permission-mode default``, Codex
   ``approval_policy="untrusted"``; task ``run touch qN.txt``): "on screen" is the first 20 ms
   capture that shows the question; then the question stays unanswered 10 s and every state
   change in that window is counted; ``send_input(job, "")`` answers it.
3. *False idle*: ``N`` turns with a 3 s silent stretch mid-stream (``pause 3``): idle before the
   model's last byte; then the state changes in the 10 s after each turn's end.
4. *Event -> ``luzia events -f``*: a ``luzia events -f --json`` process (the CLI, this run's
   ``LUZIA_HOME``) runs throughout; each line's arrival against the event's ``at`` in the store.
   Baseline: the same feed read in this process (``stream_events``, no CLI, no JSON).

``--quick`` shortens the 10 s windows to 3 s (a smoke run). Every job, container and network the
script makes is removed at the end, also on Ctrl-C, SIGTERM or an error; the results also go to
``benchmarks/results/agent-state-<time>.json`` (not committed).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

from _stats import (
    add_agent_options,
    chosen,
    close_dispatcher,
    ctrl_c_ignored,
    format_table,
    interrupt_on_signals,
    load_average,
    log,
    machine_facts,
    percentile,
    print_document,
    remove_labelled,
    report_head,
    scratch_home,
)
from bench_agents import ROOT, Subjects, aider_on_host, caller_environ

from luzia.agents.claude import PROFILE as CLAUDE_PROFILE
from luzia.agents.codex import PROFILE as CODEX_PROFILE
from luzia.config import Config
from luzia.dispatcher import ResponsiveDispatcher
from luzia.engine import Engine
from luzia.jobs import FINAL_STATES, Backend, JobEvent, JobState
from luzia.network import NETWORK_VAR
from luzia.paths import job_dir as job_dir_of
from luzia.signals import SIGNALS_DIR
from tests.agent_bins import VERSIONS, agent_program
from tests.model_servers import anthropic, openai_chat, openai_responses
from tests.model_servers.harness import Server
from tests.support import git_repo

AGENTS = ("claude", "codex", "aider")
BACKENDS: tuple[Backend, ...] = ("local", "docker")
RESULTS = ROOT / "benchmarks" / "results"
TIMEOUT = 120.0
PEER_POLL = 0.5
PEER_STABLE = 2.0
WATCH_EVERY = 0.02
TARGET_IDLE = {"claude": 0.150, "codex": 0.150, "aider": 0.500}
TARGET_WAITING = 0.300
TARGET_FEED = 0.050

ASKING = {
    "claude": dataclasses.replace(
        CLAUDE_PROFILE, name="claude-ask", command="claude --permission-mode default"
    ),
    "codex": dataclasses.replace(
        CODEX_PROFILE, name="codex-ask", command="codex -c approval_policy='\"untrusted\"'"
    ),
}
"""The agents that ask before running a command (a job's seeded settings say they never ask)."""
QUESTION = {
    "claude": "Do you want to proceed?",
    "codex": "Would you like to run the following command?",
}
"""The question's exact words on screen (FINDINGS.md), for the 20 ms watcher."""


class BenchError(Exception):
    """A job did not do what the benchmark relies on."""


# --------------------------------------------------------------------------- watchers


class Screen(threading.Thread):
    """Captures a job's pane every ``every`` seconds over the engine's controller.

    As the baseline (``every`` 0.5 s) it keeps a timeline of declarations the peers' way:
    ``idle``/``waiting`` once the hash has held for 2 s, ``running`` at the next change. As the
    question watcher (20 ms) it notes the first capture that shows ``question`` once armed.
    """

    def __init__(self, engine: Engine, job_id: str, every: float, questions: Sequence[str]):
        super().__init__(daemon=True)
        self.engine, self.job_id, self.every = engine, job_id, every
        self.questions = [re.compile(q) for q in questions]
        self.timeline: list[tuple[float, str]] = []
        self.armed: float | None = None
        self.seen: float | None = None
        self.stop = threading.Event()

    def capture(self) -> str | None:
        live = self.engine._live.get(self.job_id)
        if live is None:
            return None
        try:
            return str(live.controller.capture_pane())
        except Exception:  # the pane going or not up yet
            return None

    def arm(self) -> None:
        self.seen, self.armed = None, time.time()

    def run(self) -> None:
        last, since, declared = "", 0.0, False
        while not self.stop.is_set():
            screen = self.capture()
            now = time.time()
            if screen is not None:
                asked = any(q.search(screen) for q in self.questions)
                if self.armed is not None and self.seen is None and asked:
                    self.seen = now
                digest = hashlib.sha1(screen.encode()).hexdigest()
                if digest != last:
                    if declared:
                        self.timeline.append((now, "running"))
                    last, since, declared = digest, now, False
                elif not declared and now - since >= PEER_STABLE:
                    declared = True
                    self.timeline.append((now, "waiting" if asked else "idle"))
            self.stop.wait(self.every)

    def first(self, state: str, after: float, before: float = float("inf")) -> float | None:
        return next((t for t, s in list(self.timeline) if s == state and after < t < before), None)

    def changes(self, after: float, before: float) -> int:
        return sum(1 for t, _ in list(self.timeline) if after < t <= before)


class Hooks(threading.Thread):
    """The agent's hook records as they land in the job's ``signals/`` (a second inotify watch
    beside the engine's): each file's name holds when the hook wrote it (``date +%s%N``), which
    splits luzia's time into the agent's (last byte -> hook) and luzia's (hook -> event)."""

    def __init__(self, signals: Path) -> None:
        super().__init__(daemon=True)
        self.signals = signals
        self.written: list[tuple[float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        from inotify_simple import INotify, flags

        while not self.signals.is_dir() and not self.stop.wait(0.02):
            pass
        with INotify() as inotify:
            inotify.add_watch(self.signals, flags.MOVED_TO)
            while not self.stop.is_set():
                for event in inotify.read(timeout=200):
                    stamp, _, name = event.name.partition(".")
                    with contextlib.suppress(ValueError):
                        self.written.append((int(stamp) / 1e9, name.rsplit(".", 1)[-1]))

    def last(self, after: float, before: float) -> tuple[float, str] | None:
        """The last record written between ``after`` and ``before``."""
        found = [w for w in list(self.written) if after <= w[0] <= before]
        return found[-1] if found else None


class Events:
    """A job's events from the store, read as they come (the figures use their own ``at``)."""

    def __init__(self, d: ResponsiveDispatcher, job_id: str) -> None:
        self.d, self.job_id = d, job_id
        self.seen: list[JobEvent] = []

    def read(self) -> list[JobEvent]:
        after = self.seen[-1].seq if self.seen else 0
        self.seen += self.d.store.events(self.job_id, after_seq=after)
        return self.seen

    def until(self, state: JobState, after: float, what: str) -> JobEvent:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for event in self.read():
                if event.at > after and event.state is state:
                    return event
                if event.state in FINAL_STATES:
                    raise BenchError(f"job {self.job_id} ended ({event.reason}) before {what}")
            time.sleep(0.01)  # not timed: the figures are the events' own times
        raise BenchError(f"job {self.job_id}: no {what} within {TIMEOUT:g} s")

    def between(self, after: float, before: float) -> list[JobEvent]:
        return [e for e in self.read() if after < e.at <= before]

    def changes(self, after: float, before: float) -> int:
        """State changes in the window: events whose state differs from the one before."""
        seen = self.read()
        count = 0
        for previous, event in pairwise(seen):
            if after < event.at <= before and event.state is not previous.state:
                count += 1
        return count


def wait_until(check: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)


class Follower(threading.Thread):
    """``luzia events -f --json`` in its own process: when each line arrives."""

    def __init__(self, home: Path) -> None:
        super().__init__(daemon=True)
        env = {**os.environ, "LUZIA_HOME": str(home), "LUZIA_NO_AUTOSTART": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "luzia", "events", "-f", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
            bufsize=1,
        )
        self.lines: dict[tuple[str, int], float] = {}

    def run(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            arrived = time.time()
            with contextlib.suppress(ValueError, KeyError):
                data = json.loads(line)
                self.lines[(data["job_id"], int(data["seq"]))] = arrived

    def close(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        if self.process.poll() is None:
            self.process.kill()


class InProcess(threading.Thread):
    """The feed's baseline: ``stream_events(follow=True)`` in this process."""

    def __init__(self, home: Path, config: Config) -> None:
        super().__init__(daemon=True)
        self.d = ResponsiveDispatcher(home=home, config=config)
        self.lines: dict[tuple[str, int], float] = {}
        self.stop = False

    def run(self) -> None:
        with contextlib.suppress(Exception):
            for event in self.d.stream_events(follow=True, since=time.time()):
                self.lines[(event.job_id, event.seq)] = time.time()
                if self.stop:
                    return


# --------------------------------------------------------------------------- one job


@dataclasses.dataclass
class Figures:
    """One agent on one backend: seconds per sample (``None``: the baseline never decided)."""

    idle: list[float] = dataclasses.field(default_factory=list)
    idle_peer: list[float | None] = dataclasses.field(default_factory=list)
    idle_by: list[str] = dataclasses.field(default_factory=list)
    idle_hook: list[float] = dataclasses.field(default_factory=list)
    idle_engine: list[float] = dataclasses.field(default_factory=list)
    waiting_hook: list[float] = dataclasses.field(default_factory=list)
    say_false_idle: list[int] = dataclasses.field(default_factory=list)
    asked_events: list[int] = dataclasses.field(default_factory=list)
    answer_waiting: list[int] = dataclasses.field(default_factory=list)
    after_events: list[int] = dataclasses.field(default_factory=list)
    failed: str = ""
    waiting: list[float] = dataclasses.field(default_factory=list)
    waiting_peer: list[float | None] = dataclasses.field(default_factory=list)
    asked_changes: list[int] = dataclasses.field(default_factory=list)
    asked_changes_peer: list[int] = dataclasses.field(default_factory=list)
    pause_idle: list[float] = dataclasses.field(default_factory=list)
    false_idle: list[int] = dataclasses.field(default_factory=list)
    false_idle_peer: list[int] = dataclasses.field(default_factory=list)
    after_changes: list[int] = dataclasses.field(default_factory=list)
    after_changes_peer: list[int] = dataclasses.field(default_factory=list)


class Bench:
    def __init__(
        self,
        d: ResponsiveDispatcher,
        engine: Engine,
        servers: dict[str, Server],
        scratch: Path,
        image: str,
        args: argparse.Namespace,
    ) -> None:
        self.d, self.engine, self.servers = d, engine, servers
        self.subjects = Subjects(servers)
        self.scratch, self.image, self.args = scratch, image, args
        self.window = 3.0 if args.quick else 10.0
        self.count = 0
        self.jobs: list[str] = []
        self.hooks: dict[str, Hooks] = {}

    def start(self, name: str, backend: Backend, task: str, ask: bool) -> str:
        self.count += 1
        job_dir = self.scratch / f"job-{self.count}-{name}-{backend}"
        repo = git_repo(job_dir / "repo", {"README": b"a project\n"}).resolve()
        spec = self.subjects.spec(name, backend, "interactive", job_dir, repo)
        agent = ASKING[name].name if ask else spec.agent
        with caller_environ(spec.environ):
            job_id = self.d.dispatch_task(
                task, workdir=repo, backend=backend, agent=agent, env=spec.env,
                image=self.image if backend == "docker" else None,
            )  # fmt: skip
        self.jobs.append(job_id)
        self.hooks[job_id] = Hooks(job_dir_of(self.d.home, job_id) / SIGNALS_DIR)
        self.hooks[job_id].start()
        return job_id

    def last_byte(self, server: Server, mark: int, settle: float) -> float:
        """The last byte of the turn's answers (those after ``mark``), once none came for
        ``settle`` seconds (a side call after the turn would be no part of it)."""
        wait_until(lambda: len(server.finished) > mark, TIMEOUT)
        while True:
            count = len(server.finished)
            time.sleep(settle)
            if len(server.finished) == count and server.finished[-1] < time.time() - settle:
                return max(server.finished[mark:])

    def turns(self, name: str, backend: Backend, figures: Figures) -> None:
        server = self.servers[name]
        job_id = self.start(name, backend, "say hello", ask=False)
        events = Events(self.d, job_id)
        try:
            events.until(JobState.IDLE, 0, "the first turn's end")
            peer = Screen(self.engine, job_id, PEER_POLL, ())
            peer.start()
            for kind, count in (("say", self.args.turns), ("pause", self.args.turns)):
                for turn in range(count):
                    self.turn(name, backend, kind, turn, server, events, peer, figures)
            peer.stop.set()
        except BenchError as exc:
            raise BenchError(f"{exc}\n{self.story(job_id)}") from None
        finally:
            self.remove(job_id)

    def turn(
        self,
        name: str,
        backend: Backend,
        kind: str,
        turn: int,
        server: Server,
        events: Events,
        peer: Screen,
        figures: Figures,
    ) -> None:
        # the baseline must have settled too, or it would carry the last turn into this one
        wait_until(lambda: peer.timeline and peer.timeline[-1][1] == "idle", 10)
        mark = len(server.finished)
        began = time.time()
        task = f"say hi {turn}" if kind == "say" else f"pause 3 now {turn}"
        self.d.send_input(events.job_id, task)
        idle = events.until(JobState.IDLE, began, "the turn's end")
        # an idle before the last byte is a false one: wait for the real end
        last = self.last_byte(server, mark, 0.3)
        if idle.at < last:
            idle = events.until(JobState.IDLE, last, "the turn's real end")
        wait_until(lambda: peer.first("idle", last) is not None, PEER_STABLE + 3)
        peer_idle = peer.first("idle", last)
        peer_late = None if peer_idle is None else peer_idle - last
        early = [e for e in events.between(began, last) if e.state is JobState.IDLE]
        if kind == "say":
            figures.say_false_idle.append(len(early))
            hook = self.hooks[events.job_id].last(last - 1.0, idle.at)
            if hook is not None and idle.reason.startswith("done"):
                figures.idle_hook.append(hook[0] - last)
                figures.idle_engine.append(idle.at - hook[0])
            figures.idle.append(idle.at - last)
            figures.idle_peer.append(peer_late)
            figures.idle_by.append(idle.reason)
            log(f"{name} {backend} turn {turn + 1}: idle +{(idle.at - last) * 1000:.0f} ms "
                f"({idle.reason}); baseline +{(peer_late or 0) * 1000:.0f} ms")  # fmt: skip
            return
        peer_early = [t for t, s in peer.timeline if s == "idle" and began < t < last]
        # every change in the window after each side's own turn end
        end_peer = peer_idle if peer_idle is not None else last
        time.sleep(max(0.0, max(idle.at, end_peer) + self.window - time.time()) + 0.1)
        figures.pause_idle.append(idle.at - last)
        figures.false_idle.append(len(early))
        figures.false_idle_peer.append(len(peer_early))
        figures.after_changes.append(events.changes(idle.at, idle.at + self.window))
        figures.after_events.append(len(events.between(idle.at, idle.at + self.window)))
        figures.after_changes_peer.append(peer.changes(end_peer, end_peer + self.window))
        log(f"{name} {backend} pause turn {turn + 1}: false idle {len(early)} "
            f"(baseline {len(peer_early)}), changes after {figures.after_changes[-1]} "
            f"(baseline {figures.after_changes_peer[-1]})")  # fmt: skip

    def questions(self, name: str, backend: Backend, figures: Figures) -> None:
        server = self.servers[name]
        question = [QUESTION[name]]
        job_id = self.start(name, backend, "say hello", ask=True)
        events = Events(self.d, job_id)
        try:
            events.until(JobState.IDLE, 0, "the first turn's end")
            watch = Screen(self.engine, job_id, WATCH_EVERY, question)
            peer = Screen(self.engine, job_id, PEER_POLL, question)
            watch.start()
            peer.start()
            for turn in range(self.args.questions):
                wait_until(lambda: peer.timeline and peer.timeline[-1][1] == "idle", 10)
                mark = len(server.finished)
                watch.arm()
                began = time.time()
                self.d.send_input(job_id, f"run touch q{turn}.txt")
                waiting = events.until(JobState.WAITING, began, "the question")
                wait_until(lambda: watch.seen is not None, 10)
                shown = watch.seen
                if shown is None:
                    raise BenchError("the question never showed on screen")
                # unanswered: every change in the window after luzia said waiting
                wait_until(partial(peer.first, "waiting", shown), PEER_STABLE + 3)
                peer_at = peer.first("waiting", shown)
                end = max(waiting.at, peer_at or 0.0) + self.window
                time.sleep(max(0.0, end - time.time()) + 0.1)
                changes = events.changes(waiting.at, waiting.at + self.window)
                figures.asked_events.append(
                    len(events.between(waiting.at, waiting.at + self.window))
                )
                figures.waiting.append(waiting.at - shown)
                hook = self.hooks[job_id].last(began, waiting.at)
                if hook is not None and hook[1] == "PermissionRequest":
                    figures.waiting_hook.append(waiting.at - hook[0])
                figures.waiting_peer.append(None if peer_at is None else peer_at - shown)
                figures.asked_changes.append(changes)
                start_peer = peer_at if peer_at is not None else shown
                figures.asked_changes_peer.append(
                    peer.changes(start_peer, start_peer + self.window)
                )
                answered = time.time()
                self.d.send_input(job_id, "")  # Enter: the first choice, yes
                done = events.until(JobState.IDLE, answered, "the answered turn's end")
                again = events.between(answered, done.at)
                figures.answer_waiting.append(sum(e.state is JobState.WAITING for e in again))
                self.last_byte(server, mark, 0.3)
                log(f"{name} {backend} question {turn + 1}: waiting +"
                    f"{(waiting.at - shown) * 1000:.0f} ms ({waiting.reason}); baseline "
                    f"{'-' if peer_at is None else f'+{(peer_at - shown) * 1000:.0f} ms'}; "
                    f"changes while asked {changes} (events {figures.asked_events[-1]}), "
                    f"waiting again after the answer {figures.answer_waiting[-1]}")  # fmt: skip
            watch.stop.set()
            peer.stop.set()
        except BenchError as exc:
            raise BenchError(f"{exc}\n{self.story(job_id)}") from None
        finally:
            self.remove(job_id)

    def story(self, job_id: str) -> str:
        """The job's events and the end of its screen, for a failure's message."""
        lines = [f"{e.at:.3f} {e.state} {e.reason}" for e in self.d.store.events(job_id)]
        screen = self.d.read_log(job_id, plain=True).decode(errors="replace")
        tail = "\n".join(ln.rstrip() for ln in screen.splitlines()[-40:] if ln.strip())
        return (
            "--- its events ---\n" + "\n".join(lines) + "\n--- its screen, last lines ---\n" + tail
        )

    def remove(self, job_id: str) -> None:
        """Kill the job, wait for its end, drop it with its container: untimed."""
        if job_id in self.hooks:
            self.hooks[job_id].stop.set()
        with contextlib.suppress(Exception):
            if not self.d.store.get(job_id).state.is_final:
                self.d.kill_job(job_id)
            self.d.wait_for_job(job_id, timeout=60)


# --------------------------------------------------------------------------- tables


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def spread(values: Sequence[float | None]) -> list[str]:
    """n, p50, p95, max (and how many never decided)."""
    got = [v for v in values if v is not None]
    if not got:
        return [f"0/{len(values)}", "-", "-", "-"]
    n = str(len(got)) if len(got) == len(values) else f"{len(got)}/{len(values)}"
    return [n, ms(percentile(got, 0.5)), ms(percentile(got, 0.95)), ms(max(got))]


def verdict(values: Sequence[float], target: float) -> str:
    if not values:
        return "-"
    p50 = percentile(values, 0.5)
    return f"{'MET' if p50 <= target else 'MISSED'} (p50 <= {ms(target)})"


def tables(
    results: dict[tuple[str, str], Figures], feed: dict[str, list[float]]
) -> dict[str, list[list[str]]]:
    head = ["agent", "backend", "who", "n", "p50", "p95", "max", "verdict"]
    idle = [[*head, "false idle"]]
    asked = [[*head, "changes (events) while asked", "waiting again after answer"]]
    pause = [["agent", "backend", "who", "turns", "false idle", "changes (events) after end",
              "verdict"]]  # fmt: skip
    for (name, backend), f in results.items():
        row = [name, backend]
        if f.failed:
            idle.append([*row, f"FAILED: {f.failed}", "", "", "", "", "", ""])
        if f.idle:
            said = verdict(f.idle, TARGET_IDLE[name])
            idle.append(
                [
                    *row,
                    "luzia",
                    *spread(f.idle),
                    said,
                    str(sum(f.say_false_idle)) if f.say_false_idle else "-",
                ]
            )
            idle.append([*row, "baseline", *spread(f.idle_peer), "", ""])
            if f.idle_hook:
                idle.append([*row, "  last byte -> hook file", *spread(f.idle_hook), "", ""])
                idle.append([*row, "  hook file -> idle", *spread(f.idle_engine), "", ""])
        if f.waiting:
            said = verdict(f.waiting, TARGET_WAITING)
            changes = f"{sum(f.asked_changes)} ({sum(f.asked_events)})"
            again = str(sum(f.answer_waiting))
            asked.append([*row, "luzia", *spread(f.waiting), said, changes, again])
            peer_asked = str(sum(f.asked_changes_peer))
            asked.append([*row, "baseline", *spread(f.waiting_peer), "", peer_asked, ""])
            if f.waiting_hook:
                asked.append([*row, "  hook file -> waiting", *spread(f.waiting_hook), "", "", ""])
        if f.false_idle:
            ok = sum(f.false_idle) == 0 and sum(f.after_changes) == 0
            said = "MET (0 and 0)" if ok else "MISSED"
            after = f"{sum(f.after_changes)} ({sum(f.after_events)})"
            turns = str(len(f.false_idle))
            pause.append([*row, "luzia", turns, str(sum(f.false_idle)), after, said])
            peer_after = str(sum(f.after_changes_peer))
            peer = [turns, str(sum(f.false_idle_peer)), peer_after, ""]
            pause.append([*row, "baseline", *peer])
    rows = [["reader", "n", "p50", "p95", "max", "<= 50 ms", "verdict"]]
    for who, values in feed.items():
        if values:
            within = sum(1 for v in values if v <= TARGET_FEED)
            met = "MET" if max(values) <= TARGET_FEED else "MISSED"
            said = f"{met} (every event <= 50 ms)" if who.startswith("luzia") else ""
            rows.append([who, *spread(values), f"{within}/{len(values)}", said])
    return {"idle": idle, "question": asked, "pause": pause, "feed": rows}


# --------------------------------------------------------------------------- main


def docker_image(client: Any, agents: Sequence[str], facts: dict[str, Any]) -> str:
    """The tests' agents image (built once per agents' pins and build code), built if missing."""
    from controllers.image import build_agent_image, image_agents
    from tests.conftest import _agents_image_tag

    facts["docker"] = client.version().get("Version", "?")
    tag = os.environ.get("LUZIA_TEST_AGENTS_IMAGE") or _agents_image_tag()
    if image_agents(tag) != VERSIONS:
        log(f"building {tag} (not timed)")
        programs = {name: agent_program(name) for name in VERSIONS}
        build_agent_image(tag, method="offline", client=client,
                          agents=[f"{n}={p}" for n, p in programs.items()])  # fmt: skip
    facts["image"] = tag
    return tag


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_agent_options(parser, AGENTS, BACKENDS)
    parser.add_argument("--turns", type=int, default=30, help="turns of each kind (30)")
    parser.add_argument("--questions", type=int, default=5, help="questions per job (5)")
    parser.add_argument("--quick", action="store_true", help="3 s windows instead of 10 s")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    args = parser.parse_args(argv)
    agents = chosen(parser, "agents", args.agents, AGENTS)
    backends = chosen(parser, "backends", args.backends, BACKENDS)
    if args.turns < 1 or args.questions < 0:
        parser.error("--turns must be positive, --questions not negative")

    interrupt_on_signals()
    facts = machine_facts()
    started = time.monotonic()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    scratch, home = scratch_home("luzia-bench-state-")
    network = f"luzia-bench-state-{stamp}"
    os.environ[NETWORK_VAR] = network
    servers: dict[str, Server] = {}
    client: Any = None
    dispatcher: ResponsiveDispatcher | None = None
    engine: Engine | None = None
    follower: Follower | None = None
    inproc: InProcess | None = None
    results: dict[tuple[str, str], Figures] = {}
    events: dict[str, list[dict[str, Any]]] = {}
    feed: dict[str, list[float]] = {}
    try:
        programs = {name: agent_program(name) for name in agents}
        facts["agents"] = {name: f"{VERSIONS[name]} ({programs[name]})" for name in agents}
        image = ""
        if "docker" in backends:
            from controllers.docker_engine import docker_client

            client = docker_client()
            image = docker_image(client, agents, facts)
        servers = {"claude": anthropic.start(), "codex": openai_responses.start(),
                   "aider": openai_chat.start()}  # fmt: skip
        profiles = {p.name: p for p in ASKING.values()}
        config = Config(agents={**profiles, "aider-host": aider_on_host()})
        dispatcher = ResponsiveDispatcher(home=home, config=config)
        engine = dispatcher.start_background_monitor()
        follower = Follower(home)
        follower.start()
        inproc = InProcess(home, config)
        inproc.start()
        ready = time.time() + 3.0  # the follower's start-up and backlog are not its latency
        bench = Bench(dispatcher, engine, servers, scratch, image, args)
        for backend in backends:
            for name in agents:
                figures = results.setdefault((name, backend), Figures())
                try:  # one agent failing on one backend: the others' figures still count
                    bench.turns(name, backend, figures)
                    if name in ASKING and args.questions:
                        bench.questions(name, backend, figures)
                except BenchError as exc:
                    log(f"bench_agent_state: {name} {backend}: {exc}")
                    figures.failed = str(exc).splitlines()[0]
        time.sleep(0.5)
        for job in bench.jobs:  # every job's events, for a reader of the results
            events[job] = [e.to_dict() | {"t": e.at} for e in dispatcher.store.events(job)]
        recorded = [e for job in bench.jobs for e in dispatcher.store.events(job) if e.at > ready]
        for who, reader in (("luzia events -f --json", follower), ("in-process feed", inproc)):
            feed[who] = [
                reader.lines[(e.job_id, e.seq)] - e.at
                for e in recorded
                if (e.job_id, e.seq) in reader.lines
            ]
            missing = len(recorded) - len(feed[who])
            if missing:
                log(f"{who}: {missing} of {len(recorded)} events never arrived")
    except BenchError as exc:
        log(f"bench_agent_state: {exc}")
        return 1
    except KeyboardInterrupt:
        log("bench_agent_state: interrupted; removing this run's jobs and containers")
        return 130
    finally:
        with ctrl_c_ignored():
            if follower is not None:
                follower.close()
            if inproc is not None:
                inproc.stop = True
            if dispatcher is not None:
                close_dispatcher(dispatcher, engine)
            for server in servers.values():
                server.close()
            if client is not None:
                left = remove_labelled({"luzia.home": str(home)}, client, quiet=True)
                if left:
                    log(f"removed {left} container(s) left behind")
                for net in client.networks.list(names=[network]):
                    with contextlib.suppress(Exception):
                        net.remove()
            os.environ.pop(NETWORK_VAR, None)
            shutil.rmtree(scratch, ignore_errors=True)
    facts["load_end"] = load_average()
    facts["seconds"] = time.monotonic() - started
    made = tables(results, feed)
    document = {
        "benchmark": "agent-state", "machine": facts, "args": vars(args),
        "samples": {f"{n} {b}": dataclasses.asdict(f) for (n, b), f in results.items()},
        "feed": feed, "tables": made, "events": events,
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"agent-state-{stamp}-{os.getpid()}.json").write_text(
        json.dumps(document, indent=2) + "\n"
    )
    if args.json:
        print_document("agent-state", facts, **{k: v for k, v in document.items()
                                                if k not in ("benchmark", "machine")})  # fmt: skip
        return 0
    window = "3 s (--quick)" if args.quick else "10 s"
    head = f"turns {args.turns} of each kind, questions {args.questions}, windows {window}"
    lines = report_head("luzia agent state benchmark", facts, head)
    lines += [
        "", "1. turn end -> idle (from the model's last byte to the store's idle event)",
        *format_table(made["idle"]),
        "", f"2. question on screen -> waiting (first 20 ms capture showing it), then unanswered"
        f" {window}", *format_table(made["question"]),
        "", f"3. turns with a 3 s silent stretch mid-stream: idle before the last byte; state"
        f" changes in the {window} after the turn's end", *format_table(made["pause"]),
        "", "4. a state change -> its line from `luzia events -f --json` (arrival - event at)",
        *format_table(made["feed"]),
        "Baseline: a capture every 0.5 s, idle (or waiting, a question on screen) once the",
        "screen's hash held 2 s. p50/p95 nearest rank; n a/b: the baseline decided a of b.",
        f"results: {RESULTS.relative_to(ROOT)}/agent-state-{stamp}-{os.getpid()}.json",
    ]  # fmt: skip
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
