"""A job's processes are contained: its end and a kill leave nothing of it running.

Backends are driven as the engine drives them (``start``, then the run line typed into the
pane), against real tmux servers and real containers. "Gone" is checked by looking for the
job's processes (``/proc`` here, ``ps`` in the container), never by waiting a while.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controllers.controller import TmuxController
from controllers.docker_tmux import TMUX_SOCKET, DockerTmuxController
from controllers.local import LocalTmuxController
from controllers.pytest_plugin import in_ci
from luzia.backends import Backend, DockerBackend, LocalBackend, read_exit_code, read_pid
from luzia.errors import BackendError, LuziaError
from luzia.jobs import Job
from luzia.proctree import TAG_VAR, end_local
from luzia.store import JobStore
from tests.conftest import BACKENDS

LOOP = "while :; do date >> {out}; sleep 0.2; done"


@dataclass
class Started:
    backend: Backend
    job: Job
    controller: TmuxController
    workspace: Path

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"job {self.job.id}: {what} never happened"
            time.sleep(0.05)

    def wait_for_files(self, *names: str) -> None:
        self.wait_for(lambda: all((self.workspace / n).exists() for n in names), f"{names}")

    def wait_for_exit_code(self) -> int:
        self.wait_for(lambda: read_exit_code(self.job) is not None, "the exit code")
        code = read_exit_code(self.job)
        assert code is not None
        return code

    def running(self, marker: str) -> list[str]:
        """Command lines of the live processes that hold ``marker``."""
        if not isinstance(self.backend, DockerBackend):
            return host_processes(marker)
        container = self.backend.client.containers.get(self.job.container_id)
        if container.status != "running":
            return []
        return [" ".join(row) for row in container.top()["Processes"] if marker in " ".join(row)]


def host_processes(marker: str) -> list[str]:
    """Live (not zombie) processes on this host whose command line or environment holds
    ``marker``: read here, not with the reaper under test."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
        if state not in "ZX" and (marker in cmdline or marker.encode() in environ):
            found.append(cmdline)
    return found


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home: Path) -> Iterator[JobStore]:
    with JobStore(home) as store:
        yield store


@pytest.fixture
def launch(
    request: pytest.FixtureRequest, home: Path, store: JobStore, tmp_path: Path
) -> Iterator[Callable[[str, str], Started]]:
    """Start jobs as the engine does; remove what they leave at the end of the test."""
    started: list[Started] = []

    def launch(backend_name: str, task: str) -> Started:
        workspace = tmp_path / f"workspace-{len(started)}"
        workspace.mkdir()
        image = request.getfixturevalue("agent_image") if backend_name == "docker" else None
        backend: Backend = DockerBackend() if backend_name == "docker" else LocalBackend()
        job = store.create_job(
            task,
            project=None,
            workdir=workspace,
            backend=backend_name,  # type: ignore[arg-type]
            image=image,
        )
        controller = backend.start(job, home, task)
        job = store.update(job.id, **pane_fields(controller))
        run = Started(backend, job, controller, workspace)
        started.append(run)
        controller.wait_for_shell_prompt(30)
        controller.send_keys(backend.run_line(job))
        return run

    yield launch
    for run in started:
        run.controller.detach()
        run.backend.remove(run.job)


def pane_fields(controller: TmuxController) -> dict[str, object]:
    """What the engine records to find the pane again."""
    if isinstance(controller, DockerTmuxController):
        return {"container_id": controller.container.id, "tmux_target": TMUX_SOCKET}
    assert isinstance(controller, LocalTmuxController)
    return {"tmux_target": str(controller.socket_path)}


def daemons_task(backend: str, then: str) -> tuple[str, list[str]]:
    """A command that leaves daemons behind: nohup + disown, outside its process group, with
    a cleared environment inside the group, and (where ``setsid`` exists) in a new session.
    Each writes a file; the command waits for all of them, then does ``then``."""
    kinds = {
        "nohup": "nohup sh -c {loop} {marker} >/dev/null 2>&1 & disown",
        "group": "(set -m; sh -c {loop} {marker} >/dev/null 2>&1 &)",
        "noenv": "env -i sh -c {loop} {marker} >/dev/null 2>&1 &",
    }
    if backend == "local":
        kinds["session"] = "setsid sh -c {loop} {marker} >/dev/null 2>&1 &"
    lines, markers = [], []
    for kind, template in kinds.items():
        marker = f"luzia-daemon-{kind}-{uuid.uuid4().hex[:8]}"
        loop = shlex.quote(LOOP.format(out=f"{kind}.out"))
        lines.append(template.format(loop=loop, marker=marker))
        markers.append(marker)
    outs = " ".join(f"{kind}.out" for kind in kinds)
    lines.append(f"until ls {outs} >/dev/null 2>&1; do sleep 0.05; done; touch started")
    lines.append(then)
    return "\n".join(lines), markers


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_daemons_are_ended_before_the_job_records_its_end(
    launch: Callable[[str, str], Started], backend_name: str
) -> None:
    task, markers = daemons_task(backend_name, "exit 3")
    run = launch(backend_name, task)
    assert run.wait_for_exit_code() == 3
    if backend_name == "local":  # the engine reaps on this host, before it records the end
        run.backend.finished(run.job)
    assert [p for m in markers for p in run.running(m)] == []
    assert not run.backend.job_alive(run.job)
    run.backend.finished(run.job)  # nothing left: a no-op that must not fail
    if backend_name == "docker":  # the container and its tmux stay for inspection
        assert run.controller.is_alive()


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_finished_ends_the_daemons_of_a_job_whose_run_sh_was_killed(
    launch: Callable[[str, str], Started], backend_name: str
) -> None:
    task, markers = daemons_task(backend_name, "kill -KILL $PPID")  # run.sh: it cannot clean up
    run = launch(backend_name, task)
    run.wait_for_files("started")
    run.wait_for(
        lambda: (
            (pid := read_pid(run.job)) is not None and not run.backend.process_alive(run.job, pid)
        ),
        "run.sh's death",
    )
    assert read_exit_code(run.job) is None
    assert all(run.running(m) for m in markers)  # left behind, so far

    run.backend.finished(run.job)

    assert [p for m in markers for p in run.running(m)] == []
    assert not run.backend.job_alive(run.job)
    if backend_name == "docker":
        assert run.controller.is_alive()


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_kill_ends_a_job_that_ignores_term_and_its_daemons(
    launch: Callable[[str, str], Started], backend_name: str
) -> None:
    stubborn = "trap '' HUP INT TERM; while :; do echo x >> stubborn.out; sleep 0.2; done"
    task, markers = daemons_task(backend_name, stubborn)
    run = launch(backend_name, task)
    run.wait_for_files("started", "stubborn.out")
    assert run.backend.job_alive(run.job)

    run.backend.kill(run.job, grace=1)

    assert [p for m in markers for p in run.running(m)] == []
    assert not run.backend.job_alive(run.job)
    if not isinstance(run.backend, DockerBackend):
        assert host_processes(f"{TAG_VAR}={run.job.id}") == []
        assert not run.controller.is_alive()
    else:
        container = run.backend.client.containers.get(run.job.container_id)
        assert container.status != "running"  # killed, kept for inspection


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_kill_of_an_ended_job_is_a_no_op(
    launch: Callable[[str, str], Started], backend_name: str
) -> None:
    run = launch(backend_name, "echo done")
    assert run.wait_for_exit_code() == 0
    run.backend.kill(run.job)
    run.backend.kill(run.job)
    assert not run.backend.job_alive(run.job)
    if backend_name == "docker":
        assert run.controller.is_alive()


@pytest.mark.docker
def test_kill_with_docker_unreachable_says_so_and_the_job_runs_on(
    launch: Callable[[str, str], Started],
) -> None:
    import docker

    run = launch("docker", "touch started; sleep 600")
    run.wait_for_files("started")
    unreachable = DockerBackend(docker.DockerClient(base_url="unix:///nonexistent", version="1.41"))
    with pytest.raises(BackendError) as caught:
        unreachable.kill(run.job)
    assert isinstance(caught.value, LuziaError) and "\n" not in str(caught.value)
    assert run.backend.job_alive(run.job)
    assert run.running("sleep 600")


@pytest.mark.docker
def test_remove_finds_an_unrecorded_container_by_its_label(
    launch: Callable[[str, str], Started], store: JobStore
) -> None:
    run = launch("docker", "touch started; sleep 600")
    run.wait_for_files("started")
    backend = run.backend
    assert isinstance(backend, DockerBackend)
    unrecorded = store.update(run.job.id, container_id=None)
    backend.remove(unrecorded)
    label = f"luzia.job={run.job.id}"
    assert backend.client.containers.list(all=True, filters={"label": label}) == []


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_remove_orphans_removes_only_unknown_jobs(
    launch: Callable[[str, str], Started], backend_name: str, home: Path
) -> None:
    known = launch(backend_name, "touch started; sleep 600")
    orphan = launch(backend_name, "touch started; sleep 600")
    known.wait_for_files("started")
    orphan.wait_for_files("started")
    removed = orphan.backend.remove_orphans(home, {known.job.id})
    assert len(removed) == 1 and orphan.job.id in removed[0]
    assert not orphan.backend.job_alive(orphan.job)
    assert known.backend.job_alive(known.job)


def test_the_reaper_spares_what_is_not_the_jobs() -> None:
    """Only processes carrying the tag (or in a group led by one) are ended."""
    tag = f"test-{os.getpid()}-{time.monotonic_ns()}"
    tagged = subprocess.Popen(["sleep", "600"], env={**os.environ, TAG_VAR: tag})
    bystander = subprocess.Popen(["sleep", "600"], env={**os.environ, TAG_VAR: tag + "x"})
    try:
        end_local(tag, grace=1)
        assert tagged.wait(timeout=30) == -15
        assert bystander.poll() is None
    finally:
        tagged.kill()
        bystander.kill()
        bystander.wait()


@pytest.fixture
def tiny_home(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB filesystem for the job store, so a job can fill it."""
    if os.geteuid() != 0:
        if in_ci():
            pytest.fail("CI=true: the full-disk test must run as root (it mounts a tmpfs)")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_the_exit_status_survives_a_full_disk(tiny_home: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    fill = tiny_home / "fill"
    task = f"cat /dev/zero > {fill}; exit 7"
    with JobStore(tiny_home / "home") as store:
        job = store.create_job(task, project=None, workdir=workspace, backend="local")
        backend = LocalBackend()
        controller = backend.start(job, tiny_home / "home", task)
        try:
            job = store.update(job.id, **pane_fields(controller))
            controller.wait_for_shell_prompt(30)
            controller.send_keys(backend.run_line(job))
            run = Started(backend, job, controller, workspace)
            assert run.wait_for_exit_code() == 7
            assert os.statvfs(tiny_home).f_bavail == 0  # the disk was full when it was written
        finally:
            controller.detach()
            backend.remove(job)
