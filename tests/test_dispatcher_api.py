"""The public API: dispatch validates and records; status reads fresh; waits see other processes."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from luzia.config import Config, ProjectConfig
from luzia.dispatcher import MAX_TASK_BYTES, ResponsiveDispatcher
from luzia.errors import (
    ConfigError,
    JobNotFound,
    LuziaError,
    ProjectNotFound,
    UsageError,
    WaitTimeout,
)
from luzia.jobs import JobState

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def dispatcher(tmp_path: Path) -> Any:
    opened = ResponsiveDispatcher(home=tmp_path / "home", config=Config())
    yield opened
    opened.close()


def with_projects(tmp_path: Path) -> ResponsiveDispatcher:
    web = tmp_path / "web"
    web.mkdir()
    project = ProjectConfig(
        name="web",
        path=web,
        agent="claude -p {task}",
        image="web-agent:1",
        env={"A": "project", "B": "project"},
    )
    config = Config(projects={"web": project}, path=tmp_path / "config.toml")
    return ResponsiveDispatcher(home=tmp_path / "home", config=config)


def test_dispatch_records_a_queued_job(
    dispatcher: ResponsiveDispatcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    job_id = dispatcher.dispatch_task("make test")
    job = dispatcher.get_status(job_id)
    assert (job.state, job.task, job.project, job.workdir) == (
        "queued",
        "make test",
        None,
        tmp_path,
    )
    assert (job.backend, job.mode, job.agent) == ("auto", "command", None)
    assert job.image == "luzia-agent:latest"
    assert job.message == "dispatched"
    local = dispatcher.get_status(dispatcher.dispatch_task("ls", backend="local", workdir="."))
    assert (local.backend, local.image) == ("local", None)


def test_exactly_one_mib_is_accepted(dispatcher: ResponsiveDispatcher) -> None:
    task = "x" * MAX_TASK_BYTES
    job = dispatcher.get_status(dispatcher.dispatch_task(task, workdir="/"))
    assert (job.job_dir / "task.txt").stat().st_size == MAX_TASK_BYTES


@pytest.mark.parametrize(
    ("task", "options", "fragment"),
    [
        ("", {}, "the task is empty"),
        ("  \n\t", {}, "the task is empty"),
        ("x" * (MAX_TASK_BYTES + 1), {}, "over the 1 MiB limit"),
        ("é" * (MAX_TASK_BYTES // 2 + 1), {}, "over the 1 MiB limit"),
        ("echo a\0b", {}, "NUL byte"),
        ("echo \udcff", {}, "not valid text"),
        ("ls", {"mode": "batch"}, "mode must be"),
        ("ls", {"backend": "podman"}, "backend must be"),
        ("ls", {"mode": "interactive"}, "needs an agent profile"),
        ("ls", {"agent": " "}, "agent command is empty"),
        ("ls", {"workdir": "/no/such/dir"}, "/no/such/dir is not a directory"),
        ("ls", {"env": {"A=B": "x"}}, "not a valid variable name"),
        ("ls", {"env": {"A": "x\0"}}, "holds a NUL byte"),
    ],
)
def test_bad_input_is_a_usage_error_and_records_nothing(
    dispatcher: ResponsiveDispatcher, task: str, options: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(UsageError) as caught:
        dispatcher.dispatch_task(task, **options)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 2 and isinstance(caught.value, ValueError)
    assert dispatcher.list_jobs() == []
    assert list(dispatcher.store.jobs_root.iterdir()) == []


def test_configured_project_supplies_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No engine answers, so the image (which does not exist) is not checked at dispatch.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    dispatcher = with_projects(tmp_path)
    job = dispatcher.get_status(dispatcher.dispatch_task("fix it", "web", env={"B": "call"}))
    assert (job.project, job.workdir, job.agent) == ("web", tmp_path / "web", "claude -p {task}")
    assert job.image == "web-agent:1"
    assert job.env == {"A": "project", "B": "call"}
    other_id = dispatcher.dispatch_task("ls", "web", workdir=tmp_path, agent="x")
    other = dispatcher.get_status(other_id)
    assert (other.workdir, other.agent) == (tmp_path, "x")


def test_unknown_project_is_refused_only_without_a_workdir(tmp_path: Path) -> None:
    dispatcher = with_projects(tmp_path)
    with pytest.raises(ProjectNotFound, match=r"unknown project 'wbe' \(configured: web\)"):
        dispatcher.dispatch_task("ls", "wbe")
    assert dispatcher.list_jobs() == []
    labelled = dispatcher.get_status(dispatcher.dispatch_task("ls", "scratch", workdir=tmp_path))
    assert (labelled.project, labelled.workdir, labelled.agent) == ("scratch", tmp_path, None)


def test_without_projects_a_name_is_a_label_in_the_current_directory(
    dispatcher: ResponsiveDispatcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    job = dispatcher.get_status(dispatcher.dispatch_task("ls", "anything"))
    assert (job.project, job.workdir) == ("anything", tmp_path)
    assert [j.id for j in dispatcher.list_jobs(project="anything")] == [job.id]


def test_project_path_that_is_gone_is_a_config_error(tmp_path: Path) -> None:
    dispatcher = with_projects(tmp_path)
    (tmp_path / "web").rmdir()
    with pytest.raises(ConfigError, match=r"projects\.web\.path .* is not a directory"):
        dispatcher.dispatch_task("ls", "web")


def test_status_by_prefix_and_updates(dispatcher: ResponsiveDispatcher) -> None:
    job_id = dispatcher.dispatch_task("ls", workdir="/")
    assert dispatcher.get_status(job_id[:5]).id == job_id
    running = dispatcher.update_status(job_id, "running", "pane up", tmux_target="sock:s")
    assert (running.state, running.tmux_target) == (JobState.RUNNING, "sock:s")
    assert dispatcher.get_status(job_id).state is JobState.RUNNING
    assert [j.id for j in dispatcher.list_jobs(state=["running", "idle"])] == [job_id]
    with pytest.raises(JobNotFound):
        dispatcher.get_status("zzzzzzzz")


def test_to_dict_is_json_with_iso_times(dispatcher: ResponsiveDispatcher) -> None:
    job_id = dispatcher.dispatch_task("ls", workdir="/", env={"K": "v"})
    job = dispatcher.update_status(job_id, JobState.COMPLETED, "exited 0", exit_code=0)
    data = json.loads(json.dumps(job.to_dict()))
    assert data["state"] == "completed" and data["exit_code"] == 0 and data["env"] == {"K": "v"}
    assert data["created_at"].endswith("Z") and data["finished_at"].endswith("Z")
    assert data["started_at"] is None and data["duration"] is None
    assert set(data) == {
        "id", "project", "state", "task", "backend", "mode", "agent", "workdir", "image",
        "container_id", "tmux_target", "exit_code", "message", "env", "usage", "created_at",
        "started_at", "finished_at", "updated_at", "duration", "log_path", "job_dir",
    }  # fmt: skip
    [event] = dispatcher.store.events(job_id, after_seq=1)
    assert event.to_dict()["state"] == "completed"


def run_job_elsewhere(home: str, job_id: str, go: Any) -> None:
    """Plays the engine in another process: starts, reports progress, finishes."""
    go.wait()
    dispatcher = ResponsiveDispatcher(home=home, config=Config())
    dispatcher.update_status(job_id, JobState.STARTING, "starting container")
    dispatcher.update_status(job_id, JobState.RUNNING, "pane up")
    dispatcher.update_status(job_id, JobState.RUNNING, "halfway")
    dispatcher.update_status(job_id, JobState.COMPLETED, "exited 0", exit_code=0)
    dispatcher.update_status(job_id, JobState.FAILED, "too late: already final")


def start_elsewhere(dispatcher: ResponsiveDispatcher, job_id: str) -> Any:
    go = SPAWN.Event()
    child = SPAWN.Process(target=run_job_elsewhere, args=(str(dispatcher.home), job_id, go))
    child.start()
    return child, go


def test_wait_for_job_returns_when_another_process_finishes_it(
    dispatcher: ResponsiveDispatcher,
) -> None:
    job_id = dispatcher.dispatch_task("ls", workdir="/")
    child, go = start_elsewhere(dispatcher, job_id)
    go.set()
    job = dispatcher.wait_for_job(job_id[:4], timeout=100)
    child.join()
    assert child.exitcode == 0
    assert (job.state, job.exit_code, job.message) == (JobState.COMPLETED, 0, "exited 0")
    assert dispatcher.wait_for_job(job_id).state is JobState.COMPLETED


def test_wait_for_job_times_out_with_the_job(dispatcher: ResponsiveDispatcher) -> None:
    job_id = dispatcher.dispatch_task("ls", workdir="/")
    with pytest.raises(WaitTimeout) as caught:
        dispatcher.wait_for_job(job_id, timeout=0.05)
    assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, LuziaError)
    assert caught.value.job.id == job_id
    assert str(caught.value) == f"job {job_id} is still queued after 0.05 s"


def test_stream_status_yields_every_event_in_order(dispatcher: ResponsiveDispatcher) -> None:
    job_id = dispatcher.dispatch_task("ls", workdir="/")
    child, go = start_elsewhere(dispatcher, job_id)
    events = []
    for event in dispatcher.stream_status(job_id):
        events.append(event)
        go.set()
    child.join()
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.state for e in events] == ["queued", "starting", "running", "running", "completed"]
    assert [e.reason for e in events][-2:] == ["halfway", "exited 0"]
    assert list(dispatcher.stream_status(job_id)) == events


def test_stream_status_ends_when_the_job_is_removed(dispatcher: ResponsiveDispatcher) -> None:
    job_id = dispatcher.dispatch_task("ls", workdir="/")
    stream = dispatcher.stream_status(job_id)
    assert next(stream).state is JobState.QUEUED
    dispatcher.store.delete(job_id)
    with pytest.raises(JobNotFound):
        next(stream)


def test_import_stays_light() -> None:
    code = (
        "import sys, luzia.dispatcher\n"
        "print(sorted(m for m in ('docker', 'rich', 'click', 'libtmux') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
