"""The engine end to end: real jobs in host tmux and in containers, no fakes."""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import pytest

from luzia.config import Config, Defaults
from luzia.daemon import engine_status, start_engine, stop_engine
from luzia.dispatcher import ResponsiveDispatcher
from luzia.engine import Engine
from luzia.errors import UsageError
from luzia.jobs import JobState
from tests.conftest import BACKENDS, wait_state
from tests.support import see_through_attach


def make_dispatcher(home: Path, **defaults: object) -> ResponsiveDispatcher:
    return ResponsiveDispatcher(home=home, config=Config(defaults=Defaults(**defaults)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("task", "state", "code"),
    [
        ("echo hello", JobState.COMPLETED, 0),
        ("echo partial; exit 3", JobState.FAILED, 3),
        ("kill -9 $$", JobState.FAILED, 137),
    ],
)
def test_command_job_records_exact_exit_code(
    dispatcher: ResponsiveDispatcher,
    workspace: Path,
    backend: str,
    task: str,
    state: JobState,
    code: int,
) -> None:
    job_id = dispatcher.dispatch_task(task, workdir=workspace, backend=backend)
    job = dispatcher.wait_for_job(job_id, timeout=60)
    assert (job.state, job.exit_code) == (state, code)
    assert job.backend == backend
    states = [e.state for e in dispatcher.store.events(job_id)]
    assert states == [JobState.QUEUED, JobState.STARTING, JobState.RUNNING, state]


def test_job_runs_in_its_workspace_and_logs_everything(
    dispatcher: ResponsiveDispatcher, workspace: Path, backend: str
) -> None:
    (workspace / "marker.txt").write_text("here")
    task = "cat marker.txt; echo; seq 1 20000; echo made > out.txt"
    job = dispatcher.wait_for_job(
        dispatcher.dispatch_task(task, workdir=workspace, backend=backend), timeout=60
    )
    assert job.state is JobState.COMPLETED
    assert (workspace / "out.txt").read_text() == "made\n"
    log = dispatcher.read_log(job.id, plain=True).decode()
    assert "here" in log
    numbers = [line for line in log.splitlines() if line.isdigit()]
    assert numbers == [str(i) for i in range(1, 20001)]
    assert dispatcher.read_log(job.id, tail=1, plain=True) == b"20000\n"
    assert "run.sh" not in log, "the shell typing the command is not the job's output"
    whole = dispatcher.read_log(job.id, plain=True, whole=True).decode()
    assert "run.sh" in whole and whole.rstrip().endswith(("$", "#")), "the log was not drained"


def test_task_text_reaches_the_agent_exactly(
    dispatcher: ResponsiveDispatcher, workspace: Path, backend: str
) -> None:
    task = 'fix the bug in `main.py`; don\'t touch $HOME or "quotes" \\ ok?'
    job_id = dispatcher.dispatch_task(
        task, workdir=workspace, backend=backend, agent="printf '%s' {task} > received.txt"
    )
    assert dispatcher.wait_for_job(job_id, timeout=60).state is JobState.COMPLETED
    assert (workspace / "received.txt").read_text() == task


def test_kill_stops_a_running_job(
    dispatcher: ResponsiveDispatcher, workspace: Path, backend: str
) -> None:
    job_id = dispatcher.dispatch_task("sleep 120", workdir=workspace, backend=backend)
    wait_state(dispatcher, job_id, JobState.RUNNING)
    assert dispatcher.kill_job(job_id).state is JobState.KILLED
    job = dispatcher.wait_for_job(job_id, timeout=10)
    assert job.state is JobState.KILLED
    with pytest.raises(UsageError, match="it is killed"):
        dispatcher.send_input(job_id, "too late")


def test_send_input_reaches_the_running_program(
    dispatcher: ResponsiveDispatcher, workspace: Path, backend: str
) -> None:
    job_id = dispatcher.dispatch_task(
        'read -r line; echo "got:$line"', workdir=workspace, backend=backend
    )
    wait_state(dispatcher, job_id, JobState.RUNNING)
    dispatcher.send_input(job_id, "semi; colon $HOME `tick`")
    job = dispatcher.wait_for_job(job_id, timeout=30)
    assert job.state is JobState.COMPLETED
    assert b"got:semi; colon $HOME `tick`" in dispatcher.read_log(job_id, plain=True)


def test_a_stopped_job_is_not_ended_and_finishes_when_resumed(
    dispatcher: ResponsiveDispatcher, workspace: Path
) -> None:
    job_id = dispatcher.dispatch_task(
        "echo start; kill -TSTP 0; echo resumed; exit 5", workdir=workspace, backend="local"
    )
    for event in dispatcher.stream_status(job_id):
        assert event.state not in (JobState.COMPLETED, JobState.FAILED), event
        if "stopped by SIGTSTP" in event.reason:
            break
    job = dispatcher.get_status(job_id)
    assert job.state is JobState.RUNNING and job.exit_code is None
    dispatcher.send_input(job_id, "fg")  # as a person would, in the pane
    job = dispatcher.wait_for_job(job_id, timeout=30)
    assert (job.state, job.exit_code) == (JobState.FAILED, 5)
    assert b"resumed" in dispatcher.read_log(job_id, plain=True)


def test_follow_log_streams_until_the_end(
    dispatcher: ResponsiveDispatcher, workspace: Path
) -> None:
    job_id = dispatcher.dispatch_task(
        "for i in 1 2 3; do echo line$i; sleep 0.2; done", workdir=workspace, backend="local"
    )
    text = b"".join(dispatcher.follow_log(job_id, plain=True))
    assert [line for line in text.splitlines() if line.startswith(b"line")] == [
        b"line1",
        b"line2",
        b"line3",
    ]


def test_killed_while_queued_never_starts(home: Path, workspace: Path) -> None:
    d = make_dispatcher(home, max_concurrent=1)
    first = d.dispatch_task("sleep 1", workdir=workspace, backend="local")
    second = d.dispatch_task("touch should-not-exist", workdir=workspace, backend="local")
    d.kill_job(second)
    engine = d.start_background_monitor()
    try:
        assert d.wait_for_job(first, timeout=30).state is JobState.COMPLETED
        assert d.get_status(second).state is JobState.KILLED
        assert not (workspace / "should-not-exist").exists()
    finally:
        d.clean(all=True)
        engine.stop()


def test_concurrency_limit_holds_jobs_in_queue(home: Path, workspace: Path) -> None:
    d = make_dispatcher(home, max_concurrent=1)
    engine = d.start_background_monitor()
    try:
        ids = [d.dispatch_task("sleep 0.3", workdir=workspace, backend="local") for _ in range(3)]
        jobs = [d.wait_for_job(i, timeout=30) for i in ids]
        assert all(j.state is JobState.COMPLETED for j in jobs)
        for before, after in itertools.pairwise(jobs):
            assert before.finished_at is not None and after.started_at is not None
            assert after.started_at >= before.finished_at
    finally:
        d.clean(all=True)
        engine.stop()


def test_one_engine_per_home(home: Path, dispatcher: ResponsiveDispatcher) -> None:
    with pytest.raises(Exception, match="already runs"):
        Engine(home).start()


def test_attach_through_a_real_terminal_and_detach(
    dispatcher: ResponsiveDispatcher, workspace: Path, backend: str
) -> None:
    job_id = dispatcher.dispatch_task(
        "while true; do echo tick-$((i++)); sleep 0.2; done", workdir=workspace, backend=backend
    )
    wait_state(dispatcher, job_id, JobState.RUNNING)
    argv = dispatcher.attach_command(job_id)
    see_through_attach(argv, r"tick-\d+", env={**os.environ, "TERM": "xterm"})
    assert dispatcher.get_status(job_id).state is JobState.RUNNING
    dispatcher.kill_job(job_id)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_engine_killed_with_sigkill_recovers_every_job(
    home: Path, workspace: Path, backend_name: str, request: pytest.FixtureRequest
) -> None:
    if backend_name == "docker":
        request.getfixturevalue("agent_image")
    d = make_dispatcher(home)
    status = start_engine(home)
    try:
        ends_while_down = d.dispatch_task(
            "sleep 1; seq 1 3000; exit 5", workdir=workspace, backend=backend_name
        )
        outlives_restart = d.dispatch_task(
            "sleep 4; exit 6", workdir=workspace, backend=backend_name
        )
        for job_id in (ends_while_down, outlives_restart):
            wait_state(d, job_id, JobState.RUNNING)
        assert status.pid is not None
        os.kill(status.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while engine_status(home).running:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(2)  # the first job ends while no engine runs
        assert d.get_status(ends_while_down).state is JobState.RUNNING
        start_engine(home)
        first = d.wait_for_job(ends_while_down, timeout=30)
        second = d.wait_for_job(outlives_restart, timeout=30)
        assert (first.state, first.exit_code) == (JobState.FAILED, 5)
        assert (second.state, second.exit_code) == (JobState.FAILED, 6)
        numbers = [
            line
            for line in d.read_log(first.id, plain=True).decode().splitlines()
            if line.isdigit()
        ]
        assert numbers == [str(i) for i in range(1, 3001)]
    finally:
        stop_engine(home)
        d.clean(all=True)


@pytest.mark.docker
def test_container_removed_while_engine_down_is_failed_with_reason(
    home: Path, workspace: Path, agent_image: str, docker_engine: object
) -> None:
    d = make_dispatcher(home)
    engine = d.start_background_monitor()
    job_id = d.dispatch_task("sleep 60", workdir=workspace, backend="docker")
    try:
        wait_state(d, job_id, JobState.RUNNING)
        engine.stop()
        container_id = d.get_status(job_id).container_id
        assert container_id
        docker_engine.containers.get(container_id).remove(force=True)  # type: ignore[attr-defined]
        engine = d.start_background_monitor()
        job = d.wait_for_job(job_id, timeout=30)
        assert job.state is JobState.FAILED
        assert "removed" in (job.message or "")
    finally:
        d.clean(all=True)
        engine.stop()
