"""``luzia events`` and ``ResponsiveDispatcher.stream_events``: every job's state changes in the
order the store recorded them, followed live across processes, with a real store and engine."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

import pytest

from luzia.dispatcher import ResponsiveDispatcher
from luzia.jobs import FeedEvent, JobEvent, JobState
from tests.conftest import wait_state

SCRIPT = str(Path(sys.executable).parent / "luzia")
EVENT_KEYS = set(JobEvent("x", 1, 0.0, JobState.QUEUED, "r").to_dict()) | {"project"}


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    """The environment of a ``luzia`` process on the test's home (no engine of its own)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LUZIA_")}
    return clean | {"LUZIA_HOME": str(home), "LUZIA_NO_AUTOSTART": "1"}


def luzia(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def run_local(d: ResponsiveDispatcher, task: str, project: str | None = None) -> str:
    job_id = d.dispatch_task(task, project, backend="local", workdir=".")
    wait_state(d, job_id, JobState.COMPLETED)
    return job_id


def test_all_jobs_events_in_recorded_order(dispatcher: ResponsiveDispatcher) -> None:
    first = run_local(dispatcher, "echo one", "web")
    second = run_local(dispatcher, "echo two")
    feed = list(dispatcher.stream_events())
    nums = [event.num for event in feed]
    assert nums == sorted(nums) and len(set(nums)) == len(nums)
    for job_id, project in ((first, "web"), (second, None)):
        mine = [e for e in feed if e.job_id == job_id]
        assert [JobEvent(e.job_id, e.seq, e.at, e.state, e.reason) for e in mine] == (
            dispatcher.store.events(job_id)
        )
        assert {e.project for e in mine} == {project}
    # the first job ended before the second was dispatched: all its events come first
    assert [e.job_id for e in feed] == [first] * sum(e.job_id == first for e in feed) + [
        second
    ] * sum(e.job_id == second for e in feed)
    assert feed[-1].state is JobState.COMPLETED


def test_filters(dispatcher: ResponsiveDispatcher) -> None:
    web = run_local(dispatcher, "echo one", "web")
    other = run_local(dispatcher, "echo two", "api")
    assert {e.job_id for e in dispatcher.stream_events(project="web")} == {web}
    assert {e.job_id for e in dispatcher.stream_events(job_ids=[other[:5]])} == {other}
    both = {e.job_id for e in dispatcher.stream_events(job_ids=[web, other, web])}
    assert both == {web, other}
    split = dispatcher.store.events(other)[0].at
    assert {e.job_id for e in dispatcher.stream_events(since=split)} == {other}
    assert list(dispatcher.stream_events(since=split + 3600)) == []


def test_follow_ends_when_the_named_jobs_have_ended(dispatcher: ResponsiveDispatcher) -> None:
    job_id = dispatcher.dispatch_task("echo hi", backend="local", workdir=".")
    states = [e.state for e in dispatcher.stream_events(follow=True, job_ids=[job_id])]
    assert states[0] is JobState.QUEUED and states[-1] is JobState.COMPLETED


def test_follow_sees_another_process_dispatch(
    dispatcher: ResponsiveDispatcher, env: dict[str, str]
) -> None:
    known = dispatcher.dispatch_task("true", backend="local", workdir=".")
    stream = dispatcher.stream_events(follow=True)
    seen: list[FeedEvent] = [next(stream)]
    assert seen[0].job_id == known
    done = luzia(env, "dispatch", "--backend", "local", "--workdir", ".", "echo elsewhere")
    assert done.returncode == 0, done.stderr
    other = done.stdout.strip()
    for event in stream:
        seen.append(event)
        if event.job_id == other and event.state.is_final:
            break
    stream.close()
    assert [e.state for e in seen if e.job_id == other][-1] is JobState.COMPLETED
    nums = [e.num for e in seen]
    assert nums == sorted(set(nums))  # each once, in order


@pytest.fixture
def follower(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``luzia events -f --json`` running; killed at the end if the test did not stop it."""
    proc = subprocess.Popen(
        [SCRIPT, "events", "-f", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    assert proc.stdout and proc.stderr
    proc.stdout.close()
    proc.stderr.close()


def read_until_ended(
    stdout: IO[str], jobs: list[str], delays: list[float]
) -> list[dict[str, object]]:
    """JSON lines until each of ``jobs`` has completed; each line's delay after its event."""
    ended: set[str] = set()
    lines = []
    while ended != set(jobs):
        line = stdout.readline()
        now = datetime.now().astimezone().timestamp()
        record = json.loads(line)
        lines.append(record)
        assert set(record) == EVENT_KEYS
        delays.append(now - datetime.fromisoformat(record["at"]).timestamp())
        if record["state"] == "completed":
            ended.add(record["job_id"])
    return lines


def test_cli_follow_json_lines_and_ctrl_c(
    dispatcher: ResponsiveDispatcher, follower: subprocess.Popen[str]
) -> None:
    assert follower.stdout is not None
    started: list[float] = []
    read_until_ended(follower.stdout, [run_local(dispatcher, "true")], started)
    jobs = [dispatcher.dispatch_task(f"echo {n}", backend="local", workdir=".") for n in range(3)]
    delays: list[float] = []
    lines = read_until_ended(follower.stdout, jobs, delays)
    follower.send_signal(signal.SIGINT)
    assert follower.wait(timeout=30) == 0
    assert follower.stderr is not None and follower.stderr.read() == ""
    for job_id in jobs:
        recorded = [e.to_dict() for e in dispatcher.store.events(job_id)]
        printed = [r for r in lines if r["job_id"] == job_id]
        assert [{k: v for k, v in r.items() if k != "project"} for r in printed] == recorded
    print(
        f"event -> line: p50 {statistics.median(delays) * 1000:.1f} ms, "
        f"max {max(delays) * 1000:.1f} ms over {len(delays)} events"
    )


def test_cli_text_lines(dispatcher: ResponsiveDispatcher, env: dict[str, str]) -> None:
    job_id = run_local(dispatcher, "echo hi", "web")
    done = luzia(env, "events", "--since", "1h", job_id[:4])
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert [row[2:5] for row in rows[:1]] == [[job_id, "web", "queued"]]
    assert rows[-1][4] == "completed"
    assert luzia(env, "events", "--since", "2999-01-01T00:00:00Z").stdout == ""


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(("zzzzzz",), "no job matches 'zzzzzz'"), (("--since", "soon"), "--since must be")],
)
def test_bad_input_is_one_line_exit_2(
    env: dict[str, str], args: tuple[str, ...], fragment: str
) -> None:
    done = luzia(env, "events", *args)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("luzia: error: ") and fragment in lines[0]


def test_closed_pipe_is_quiet(home: Path, env: dict[str, str], tmp_path: Path) -> None:
    """More lines than a pipe holds, so even the follower meets the closed pipe and ends."""
    d = ResponsiveDispatcher(home=home)
    for n in range(1500):
        d.store.create_job(f"echo {n}", project=None, workdir=tmp_path)
    done = subprocess.run(
        f"{SCRIPT} events | head -n 1", shell=True, env=env, capture_output=True, text=True
    )
    assert done.stdout.count("\n") == 1
    assert "Traceback" not in done.stderr and "Broken pipe" not in done.stderr
    follow = subprocess.Popen(
        f"{SCRIPT} events -f | head -n 1",
        shell=True,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = follow.communicate(timeout=60)
    d.close()
    assert out.count("\n") == 1
    assert "Traceback" not in err
