"""Shared fixtures: both backends behind ``pane`` and ``backend``, workspaces, and a leak check.

The suite runs in parallel (pytest-xdist workers: separate processes; ``-n 0`` runs it in one).
Session fixtures are per worker: one that builds an image builds it once on this host under a
file lock and reuses it (``controllers.pytest_plugin.shared_image``, or as ``agents_image`` does),
names what it creates with ``TEST_RUN_ID`` (unique per worker), and host-wide steps that must not
overlap take ``host_lock``; tests that must not run at the same time share an ``xdist_group``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controllers import DockerTmuxController, LocalTmuxController, TmuxController
from controllers.pytest_plugin import TEST_RUN_ID
from luzia.config import Config
from luzia.dispatcher import ResponsiveDispatcher
from luzia.engine import Engine
from luzia.jobs import FINAL_STATES, Job, JobEvent, JobState
from luzia.network import NETWORK_VAR
from tests.support import git_repo


@dataclass
class Pane:
    """A controller plus the directory its shell starts in, seen from both sides."""

    controller: TmuxController
    host_dir: Path
    pane_dir: str
    backend: str


FAKE_AGENT = Path(__file__).resolve().parent.parent / "examples" / "agents" / "fake-agent"

BACKENDS = ["local", pytest.param("docker", marks=pytest.mark.docker)]


AGENT_CLI_GROUPS = {
    "test_agent_aider": "agent-cli-1",
    "test_agent_claude": "agent-cli-2",
    "test_agent_codex": "agent-cli-2",
    "test_image_agents": "agent-cli-1",
}
"""Modules that run the real agent CLIs, by xdist group: two groups, so at most two of these
CPU-heavy tests (Node, Python start-ups) run at once, one a core; six at once on two cores
pushed their 60 s waits over."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = AGENT_CLI_GROUPS.get(item.module.__name__.rpartition(".")[2] if item.module else "")
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each job backend in turn; for docker, the agent image is built first if missing."""
    if request.param == "docker":
        request.getfixturevalue("agent_image")
    return str(request.param)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def agent_repo(tmp_path: Path) -> Path:
    """A git repository on ``main`` holding the fake agent, committed."""
    return git_repo(tmp_path / "repo", {"fake-agent": FAKE_AGENT.read_bytes()})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository on ``main`` holding a README, committed (its real path)."""
    return git_repo(tmp_path.resolve() / "repo", {"README": b"a project\n"})


@pytest.fixture(params=BACKENDS)
def pane(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pane]:
    if request.param == "local":
        with LocalTmuxController(cwd=tmp_path) as controller:
            controller.wait_for_shell_prompt(10)
            yield Pane(controller, tmp_path, str(tmp_path), "local")
    else:
        container: DockerTmuxController = request.getfixturevalue("agent_container")
        yield Pane(container, tmp_path / "workspace", "/workspace", "docker")


def _agents_image_tag() -> str:
    """A tag named after what goes into the image: the agents' pins and the code that builds it.

    The same code and agents give the same tag, so the image (1.5 GB, about 25 s to build) is
    built once and reused by later sessions, xdist workers and other checkouts at the same code.
    """
    import hashlib

    import controllers.image
    from tests.agent_bins import PINS

    digest = hashlib.sha256(repr(sorted(PINS.items())).encode())
    for source in sorted(Path(controllers.image.__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return f"luzia-agent:test-agents-{digest.hexdigest()[:12]}"


@pytest.fixture(scope="session")
def agents_image(docker_engine: object) -> str:
    """An image with the real Claude Code, Codex and aider (pinned, from tests/agent_bins.py),
    built by ``luzia image build --agent ...``'s code once and then reused: its tag."""
    import fcntl

    from controllers.image import build_agent_image, image_agents
    from tests.agent_bins import VERSIONS, agent_program, cache_dir

    tag = os.environ.get("LUZIA_TEST_AGENTS_IMAGE") or _agents_image_tag()
    if image_agents(tag) == VERSIONS:
        return tag
    programs = {name: agent_program(name) for name in VERSIONS}
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".agents-image.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel workers: one builds, the others wait
        if image_agents(tag) != VERSIONS:
            build_agent_image(
                tag, method="offline", agents=[f"{n}={p}" for n, p in programs.items()]
            )
    return tag


@pytest.fixture(scope="session", autouse=True)
def jobs_network() -> Iterator[str]:
    """Luzia's own network, named for this run (``LUZIA_JOBS_NETWORK``, which processes the tests
    start inherit) and removed at the end: a run never creates or removes ``luzia-jobs``."""
    name = f"luzia-test-{TEST_RUN_ID}-jobs"
    os.environ[NETWORK_VAR] = name
    yield name
    del os.environ[NETWORK_VAR]
    try:
        from controllers.docker_engine import docker_client

        client = docker_client()
    except Exception:
        return
    for network in client.networks.list(names=[name]):
        if network.name == name:
            network.reload()
            users = [c["Name"] for c in (network.attrs.get("Containers") or {}).values()]
            assert not users, f"tests left containers on {name}: {users}"
            network.remove()


@pytest.fixture(scope="session", autouse=True)
def no_leaked_containers(jobs_network: str) -> Iterator[None]:
    """Fail the run if a test leaves one of this run's containers behind (and reap it)."""
    yield
    try:
        from controllers.docker_engine import docker_client

        client = docker_client()
    except Exception:
        return
    left = client.containers.list(all=True, filters={"label": f"luzia.test.run={TEST_RUN_ID}"})
    for container in left:
        container.remove(force=True)
    assert not left, f"tests leaked containers: {[c.name for c in left]}"


def start_foreground(c: TmuxController, command: str) -> None:
    """Type ``command`` and return once it, not our shell, is the pane's foreground program."""
    c.send_keys(command)
    deadline = time.monotonic() + 10
    while c.current_command() == "bash":  # our shell, until the program takes over
        assert time.monotonic() < deadline, f"{command!r} never started"
        time.sleep(0.01)


def sample_job(**fields: object) -> Job:
    """A job record with plain values, for code that only reads jobs (rules, renderers)."""
    base = Job(
        id="j0",
        project=None,
        task="true",
        state=JobState.QUEUED,
        backend="local",
        mode="command",
        agent=None,
        workdir=Path("/w"),
        image=None,
        container_id=None,
        tmux_target=None,
        exit_code=None,
        message=None,
        created_at=0.0,
        started_at=None,
        finished_at=None,
        updated_at=0.0,
        log_path=Path("/l"),
        job_dir=Path("/d"),
    )
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``LUZIA_HOME``; no engine starts by itself (the tests run their own)."""
    monkeypatch.setenv("LUZIA_NO_AUTOSTART", "1")
    return tmp_path / "home"


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    """An engine for ``home`` in this process, stopped after ``dispatcher`` cleaned up."""
    running = Engine(home, Config()).start()
    yield running
    running.stop()


@pytest.fixture
def dispatcher(home: Path, engine: Engine) -> Iterator[ResponsiveDispatcher]:
    """A dispatcher on ``home`` with its engine running; every job is removed afterwards."""
    d = ResponsiveDispatcher(home=home, config=Config())
    yield d
    d.clean(all=True)  # kills what still runs: through the engine, before it stops
    d.close()


class Events:
    """A job's events in order, one expectation at a time."""

    def __init__(self, d: ResponsiveDispatcher, job_id: str) -> None:
        self.stream = d.stream_status(job_id)

    def until(self, pred: Callable[[JobEvent], bool], what: str) -> JobEvent:
        """The first event from here on for which ``pred`` holds; fails if the job ends first."""
        for event in self.stream:
            if pred(event):
                return event
            assert event.state not in FINAL_STATES, f"ended before {what}: {event}"
        raise AssertionError(f"the job ended before {what}")


def idle(reason: str) -> Callable[[JobEvent], bool]:
    """An ``idle`` event whose reason holds ``reason``."""
    return lambda e: e.state is JobState.IDLE and reason in e.reason


def waiting(question: str = "") -> Callable[[JobEvent], bool]:
    """A ``waiting`` event (a person is asked) whose question holds ``question``."""
    return lambda e: e.state is JobState.WAITING and question in e.reason


def turn_usage(d: ResponsiveDispatcher, end: JobEvent) -> dict[str, float]:
    """The usage the turn ending at ``end`` was given (just after the event: Claude Code writes
    its transcript after its Stop hook)."""
    deadline = time.monotonic() + 10
    while True:
        usage = dict(d.store.events(end.job_id, end.seq - 1)[0].usage)
        if usage or time.monotonic() > deadline:
            return usage
        time.sleep(0.05)


def running(e: JobEvent) -> bool:
    return e.state is JobState.RUNNING


def wait_state(d: ResponsiveDispatcher, job_id: str, state: JobState) -> None:
    """Follow the job's events until it reaches ``state``; fail if it ends first."""
    for event in d.stream_status(job_id):
        if event.state is state:
            return
        assert not event.state.is_final, event
    raise AssertionError(f"{job_id} ended before reaching {state}")
