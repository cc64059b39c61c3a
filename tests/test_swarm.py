"""The swarm backend on a real 3-node Docker Swarm on this machine (``tests/cluster``).

Every test talks to the cluster's own engines (``DOCKER_HOST`` is the manager's); the host's
Docker Engine is never used. Tests that must see a job on a worker pin it there with the
config's placement constraints. The node-loss test stops the spare worker's dockerd, which
the other tests keep away from. The last process to use the cluster checks nothing is left.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from luzia.agents import BUILTIN_PROFILES
from luzia.agents.claude import PROFILE as CLAUDE
from luzia.config import Config
from luzia.daemon import engine_status, start_engine, stop_engine
from luzia.dispatcher import ResponsiveDispatcher
from luzia.engine import Engine
from luzia.jobs import FINAL_STATES, JobState
from luzia.swarm import SwarmBackend
from tests import cluster as test_cluster
from tests.conftest import FAKE_AGENT, Events, idle, waiting
from tests.support import git, git_repo, see_through_attach

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("swarm")]

HOOKED_AGENT = FAKE_AGENT.parent / "hooked-agent"
"""Claude Code's prompt and hooks, no model: the signals' way through a worker's tmux."""
FAKE = dataclasses.replace(
    BUILTIN_PROFILES["fake-agent"], name="fake", command="bash ./fake-agent", start_timeout=60
)
"""The fake agent, run from the job's workspace (its copy on the node)."""
FAKE_ENV = {"FAKE_AGENT_THINK": "0.2", "FAKE_AGENT_DROP_FAST_ENTER": "1"}
HOOKED = dataclasses.replace(CLAUDE, name="hooked", command="bash ./hooked-agent", delay_enter=0)
AGENTS = {"fake": FAKE, "hooked": HOOKED}

MAIN = ("node.labels.spare!=1",)
"""The manager and the two workers: never the spare node the node-loss test stops."""
WORKERS = ("node.role==worker", "node.labels.spare!=1")


def _need_cluster() -> None:
    missing = test_cluster.missing_tools()
    if os.getuid() != 0 or missing:
        why = f"needs root and {', '.join(missing) or 'nothing more'} (.ci/run installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the swarm test cluster {why}")
        pytest.skip(f"the swarm test cluster {why}")


@pytest.fixture(scope="session")
def swarm_cluster() -> Iterator[test_cluster.Cluster]:
    """The 3-node cluster with luzia's image in its registry, one for every process of this
    test run (xdist workers may each get some of these tests); the last one takes it down."""
    _need_cluster()
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
    with test_cluster.shared(run_id) as made:
        yield made


class Swarm:
    """A luzia home whose config points at the cluster, and its dispatcher."""

    def __init__(
        self, base: Path, cluster: test_cluster.Cluster, constraints: tuple[str, ...] = ()
    ) -> None:
        self.home = base / "home"
        self.workspace = base / "workspace"
        self.workspace.mkdir()
        (self.workspace / "hello.txt").write_text("hello from the manager\n")
        self.config_file = base / "config.toml"
        self.config_file.write_text(
            "[defaults]\nmax_concurrent = 16\n\n" + cluster.config_toml(constraints)
        )
        self.reload()
        self.backend = SwarmBackend(self.config.swarm)

    def reload(self) -> None:
        """The config file as it is now, with the test agents; a dispatcher for it."""
        self.config = dataclasses.replace(Config.load(self.config_file), agents=AGENTS)
        self.d = ResponsiveDispatcher(home=self.home, config=self.config)

    def dispatch(self, task: str, **options: Any) -> str:
        return self.d.dispatch_task(task, workdir=self.workspace, backend="swarm", **options)

    def wait_state(self, job_id: str, *states: JobState, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (job := self.d.get_status(job_id)).state not in states:
            assert time.monotonic() < deadline, (job.state, job.message)
            time.sleep(0.02)

    def log(self, job_id: str) -> str:
        return self.d.read_log(job_id, plain=True).decode()


def _swarm(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cluster: test_cluster.Cluster,
    constraints: tuple[str, ...] = (),
) -> Swarm:
    monkeypatch.setenv("LUZIA_NO_AUTOSTART", "1")
    monkeypatch.setenv("DOCKER_HOST", cluster.manager.endpoint)
    swarm = Swarm(tmp_path, cluster, constraints)
    monkeypatch.setenv("LUZIA_CONFIG", str(swarm.config_file))
    monkeypatch.setenv("LUZIA_HOME", str(swarm.home))
    return swarm


@pytest.fixture
def swarm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swarm_cluster: test_cluster.Cluster
) -> Iterator[Swarm]:
    """Jobs go wherever swarm places them on the main three nodes; an engine in this process."""
    made = _swarm(tmp_path, monkeypatch, swarm_cluster, MAIN)
    engine = Engine(made.home, made.config).start()
    yield made
    made.d.clean(all=True)
    engine.stop()
    _assert_no_services(swarm_cluster, made.home)


@pytest.fixture
def engine_on_workers(on_workers: Swarm) -> Iterator[Swarm]:
    """:func:`on_workers` with an engine in this process."""
    engine = Engine(on_workers.home, on_workers.config).start()
    yield on_workers
    on_workers.d.clean(all=True)
    engine.stop()


@pytest.fixture
def on_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swarm_cluster: test_cluster.Cluster
) -> Iterator[Swarm]:
    """Jobs only on the workers, never on the manager where this process runs."""
    made = _swarm(tmp_path, monkeypatch, swarm_cluster, WORKERS)
    yield made
    made.d.clean(all=True)
    _assert_no_services(swarm_cluster, made.home)


def _assert_no_services(cluster: test_cluster.Cluster, home: Path) -> None:
    left = cluster.manager.docker(
        "service", "ls", "-q", "--filter", f"label=luzia.home={home}"
    ).split()
    assert not left, f"services left behind: {left}"


@pytest.mark.timeout(300)
def test_twelve_jobs_spread_over_the_nodes_with_their_logs_and_exit_codes(swarm: Swarm) -> None:
    ids = {
        swarm.dispatch(f"cat hello.txt; echo job-{i} on $HOSTNAME; exit {i % 3}"): i
        for i in range(12)
    }
    nodes = set()
    for job_id, i in ids.items():
        job = swarm.d.wait_for_job(job_id, timeout=120)
        expected = JobState.COMPLETED if i % 3 == 0 else JobState.FAILED
        assert (job.state, job.exit_code) == (expected, i % 3), job.message
        log = swarm.log(job_id)
        assert "hello from the manager" in log
        assert f"job-{i} on" in log
        nodes.add(swarm.backend.node_of(job))
    assert nodes == {"manager", "worker1", "worker2"}


@pytest.mark.timeout(300)
def test_a_job_on_a_worker_takes_input_shows_its_screen_and_is_killed(
    engine_on_workers: Swarm,
) -> None:
    swarm = engine_on_workers
    job_id = swarm.dispatch("read -r line; echo got:$line; sleep 600", cpus=0.25, memory="256m")
    swarm.wait_state(job_id, JobState.RUNNING)
    job = swarm.d.get_status(job_id)
    assert swarm.backend.node_of(job) in ("worker1", "worker2")
    shown = subprocess.run(
        [sys.executable, "-m", "luzia", "status", "--json", job_id],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert json.loads(shown.stdout)["container"]["node"] == swarm.backend.node_of(job)
    spec = swarm.backend._service(job).attrs["Spec"]
    assert spec["Labels"]["luzia.job"] == job_id
    assert spec["Labels"]["luzia.home"] == str(swarm.home)
    template = spec["TaskTemplate"]
    assert template["RestartPolicy"]["Condition"] == "none"
    assert template["Placement"]["Constraints"] == list(WORKERS)
    assert template["Resources"]["Reservations"] == {
        "NanoCPUs": 250_000_000,
        "MemoryBytes": 256 * 1024**2,
    }
    assert template["Resources"]["Limits"]["Pids"] == 512
    (attached,) = template["Networks"]  # a network of its own, no other job on it
    network = swarm.backend.manager.networks.get(attached["Target"])
    assert (network.name, network.attrs["Driver"]) == (f"luzia-job-{job_id}", "overlay")
    swarm.d.send_input(job_id, "over the node's engine")
    deadline = time.monotonic() + 30
    while "got:over the node's engine" not in swarm.log(job_id):
        assert time.monotonic() < deadline, swarm.log(job_id)
        time.sleep(0.05)
    pane = swarm.backend.reattach(job)
    assert pane is not None
    try:
        assert "got:over the node's engine" in pane.capture_pane()
    finally:
        pane.detach()
    argv = swarm.d.attach_command(job_id, read_only=True)
    assert "-H" in argv  # through the worker's own engine, from here
    see_through_attach(argv, "got:over the node's engine")
    killed = swarm.d.kill_job(job_id)
    assert killed.state is JobState.KILLED
    assert swarm.backend.job_alive(killed) is False
    swarm.d.remove_job(job_id)
    deadline = time.monotonic() + 60
    while swarm.backend.manager.networks.list(filters={"label": f"luzia.job={job_id}"}):
        assert time.monotonic() < deadline, "the job's network outlived its task"
        swarm.backend.tidy(swarm.home, set())  # what the engine does every minute
        time.sleep(0.5)


@pytest.mark.timeout(300)
def test_a_job_on_a_worker_changes_its_copy_and_its_change_is_diffed_and_committed_here(
    engine_on_workers: Swarm,
) -> None:
    swarm = engine_on_workers
    repo = swarm.workspace
    git_repo(
        repo,
        {
            "gone.txt": b"deleted on the node\n",
            "tool.sh": b"echo tool\n",
            ".gitignore": b".cache\n",
        },
    )
    (repo / "notes.txt").write_text("the user's own, uncommitted\n")
    job_id = swarm.dispatch(
        "echo made on the node > made.txt && echo bye >> hello.txt && rm gone.txt && "
        "chmod +x tool.sh && ln -s hello.txt link && echo ignored > .cache && "
        "read -r line && echo later > later.txt",
        network="host",
    )
    swarm.wait_state(job_id, JobState.RUNNING)
    located = swarm.backend._locate(swarm.d.get_status(job_id))
    assert located is not None and located[1].attrs["HostConfig"]["NetworkMode"] == "host"
    deadline = time.monotonic() + 30
    while "made.txt" not in (so_far := swarm.d.diff_job(job_id, stat=True)):
        assert time.monotonic() < deadline, so_far
        time.sleep(0.1)
    swarm.d.send_input(job_id, "go")
    assert swarm.d.wait_for_job(job_id, timeout=60).state is JobState.COMPLETED
    assert not (repo / "made.txt").exists()  # the job changed its own copy
    patch = swarm.d.diff_job(job_id)
    for shown in ("b/made.txt", "+bye", "deleted file mode", "new mode 100755", "b/link"):
        assert shown in patch
    assert "later.txt" in patch and "notes.txt" not in patch and ".cache" not in patch
    assert swarm.d.apply_job(job_id) is True
    assert (repo / "later.txt").read_text() == "later\n"
    assert os.readlink(repo / "link") == "hello.txt"
    swarm.d.revert_job(job_id)
    assert not (repo / "made.txt").exists() and (repo / "gone.txt").exists()
    done = subprocess.run(
        [sys.executable, "-m", "luzia", "commit", "--json", job_id],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    sha = json.loads(done.stdout)["commit"]
    assert git(repo, "rev-parse", "HEAD").strip() == sha
    assert (repo / "made.txt").read_text() == "made on the node\n"
    assert git(repo, "status", "--porcelain").strip() == "?? notes.txt"


@pytest.mark.timeout(300)
def test_an_interactive_agent_on_a_worker_is_followed_turn_by_turn_and_asks_a_person(
    engine_on_workers: Swarm,
) -> None:
    swarm = engine_on_workers
    repo = swarm.workspace
    git_repo(repo, {"fake-agent": FAKE_AGENT.read_bytes()})
    d = swarm.d
    job_id = d.dispatch_task(
        "edit hello.txt: from the node",
        workdir=repo, backend="swarm", agent="fake", env=FAKE_ENV,
    )  # fmt: skip
    events = Events(d, job_id)
    events.until(idle("waiting at its prompt"), "the first turn ended")
    d.send_input(job_id, "ask: Allow edit to second.txt?\nedit second.txt: answered")
    assert "Allow edit to second.txt?" in events.until(waiting(), "the question").reason
    d.send_input(job_id, "y", enter=False)
    events.until(idle("waiting at its prompt"), "the answered turn ended")
    assert "+answered" in d.diff_job(job_id)  # so far, from the node's copy
    d.send_input(job_id, "exit 3")
    assert d.wait_for_job(job_id, timeout=60).exit_code == 3
    assert "+from the node" in d.diff_job(job_id)


@pytest.mark.timeout(300)
def test_an_agents_own_signals_reach_the_engine_from_a_worker(engine_on_workers: Swarm) -> None:
    swarm = engine_on_workers
    (swarm.workspace / "hooked-agent").write_bytes(HOOKED_AGENT.read_bytes())
    d = swarm.d
    job_id = swarm.dispatch("first", agent="hooked")
    events = Events(d, job_id)
    events.until(idle("done: first at "), "the first turn's Stop hook")
    d.send_input(job_id, "second")
    events.until(lambda e: e.state is JobState.RUNNING, "the prompt's hook")
    events.until(idle("done: second at "), "the second turn's Stop hook")
    assert list((d.get_status(job_id).job_dir / "signals").iterdir()) == []


@pytest.mark.timeout(300)
def test_a_docker_context_is_a_nodes_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swarm_cluster: test_cluster.Cluster
) -> None:
    """``context:NAME`` in ``[swarm.nodes]``: the SDK and the ``docker`` command line both
    reach the worker through the Docker CLI context (kept in this test's own DOCKER_CONFIG)."""
    swarm = _swarm(tmp_path, monkeypatch, swarm_cluster, ("node.hostname==lzc-worker1",))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    worker = swarm_cluster.node("worker1")
    made = subprocess.run(
        ["docker", "context", "create", "lz-worker1", "--docker", f"host={worker.endpoint}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    text = swarm.config_file.read_text()
    text = text.replace(f'worker1 = "{worker.endpoint}"', 'worker1 = "context:lz-worker1"')
    assert 'worker1 = "context:lz-worker1"' in text
    swarm.config_file.write_text(text)
    swarm.reload()
    d = swarm.d
    engine = Engine(swarm.home, swarm.config).start()
    try:
        job_id = d.dispatch_task(
            "read -r line; echo got:$line; sleep 600", workdir=swarm.workspace, backend="swarm"
        )
        swarm.wait_state(job_id, JobState.RUNNING)
        d.send_input(job_id, "through a context")
        deadline = time.monotonic() + 30
        while "got:through a context" not in swarm.log(job_id):
            assert time.monotonic() < deadline, swarm.log(job_id)
            time.sleep(0.05)
        argv = d.attach_command(job_id, read_only=True)
        assert argv[1:3] == ["--context", "lz-worker1"]
        see_through_attach(argv, "got:through a context")
        assert d.kill_job(job_id).state is JobState.KILLED
    finally:
        d.clean(all=True)
        engine.stop()
    _assert_no_services(swarm_cluster, swarm.home)


@pytest.mark.timeout(300)
def test_engine_sigkill_and_restart_reconciles_every_swarm_job(on_workers: Swarm) -> None:
    swarm = on_workers
    start_engine(swarm.home)
    try:
        # It goes on once told to, after the engine is gone: not after a second, which a slow
        # start of the other job (its node sets up its network) could outlast.
        ends_while_down = swarm.dispatch(
            "while [ ! -e go ]; do sleep 0.1; done; seq 1 2000; exit 5"
        )
        outlives_restart = swarm.dispatch("sleep 6; echo late; exit 6")
        for job_id in (ends_while_down, outlives_restart):
            swarm.wait_state(job_id, JobState.RUNNING)
        pid = engine_status(swarm.home).pid
        assert pid not in (None, os.getpid())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while engine_status(swarm.home).running:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        told = swarm.backend._container(swarm.d.get_status(ends_while_down))
        assert told is not None and told.exec_run(["touch", "/workspace/go"]).exit_code == 0
        deadline = time.monotonic() + 30  # the first ends while no engine runs
        while "2000" not in _container_log(swarm, ends_while_down):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert swarm.d.get_status(ends_while_down).state is JobState.RUNNING
        start_engine(swarm.home)
        first = swarm.d.wait_for_job(ends_while_down, timeout=60)
        second = swarm.d.wait_for_job(outlives_restart, timeout=60)
        assert (first.state, first.exit_code) == (JobState.FAILED, 5), first.message
        assert (second.state, second.exit_code) == (JobState.FAILED, 6), second.message
        numbers = [line for line in swarm.log(first.id).splitlines() if line.isdigit()]
        assert numbers == [str(i) for i in range(1, 2001)]
        assert "late" in swarm.log(second.id)
    finally:
        stop_engine(swarm.home)


def _container_log(swarm: Swarm, job_id: str) -> str:
    """The log as the job's container holds it (no engine copies it while none runs)."""
    job = swarm.d.get_status(job_id)
    container = swarm.backend._container(job)
    assert container is not None
    result = container.exec_run(["cat", "/luzia/job/output.log"])
    return bytes(result.output).decode(errors="replace")


@pytest.mark.timeout(300)
def test_a_lost_worker_fails_its_jobs_naming_it_and_runs_them_nowhere_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swarm_cluster: test_cluster.Cluster
) -> None:
    """Unless a job asked for retries: that one runs again on a node its constraints allow."""
    swarm = _swarm(tmp_path, monkeypatch, swarm_cluster)
    with swarm.config_file.open("a") as config:
        for project, constraint in (("pinned", "spare==1"), ("roaming", "lz-roam==1")):
            config.write(
                f'\n[projects.{project}]\npath = "{swarm.workspace}"\n'
                f'constraints = ["node.labels.{constraint}"]\n'
            )
    swarm.reload()
    manager = swarm_cluster.manager
    manager.docker("node", "update", "--label-add", "lz-roam=1", "lzc-spare")
    engine = Engine(swarm.home, swarm.config).start()
    try:
        ids = [swarm.dispatch(f"echo {i}; sleep 600", project="pinned") for i in range(2)]
        retried = swarm.dispatch("echo attempt; sleep 600", project="roaming", retries=1)
        for job_id in [*ids, retried]:
            swarm.wait_state(job_id, JobState.RUNNING)
        assert swarm.backend.node_of(swarm.d.get_status(retried)) == "spare"
        manager.docker("node", "update", "--label-add", "lz-roam=1", "lzc-worker1")
        stopped = time.monotonic()
        swarm_cluster.stop_node(test_cluster.SPARE)
        for job_id in ids:
            swarm.wait_state(job_id, *FINAL_STATES, timeout=30 - (time.monotonic() - stopped))
            job = swarm.d.get_status(job_id)
            assert job.state is JobState.FAILED
            assert "node spare lost" in (job.message or ""), job.message
        for node in ("manager", "worker1", "worker2"):  # swarm started them nowhere else
            for job_id in ids:
                running = swarm_cluster.node(node).docker(
                    "ps", "-q", "--filter", f"label=luzia.job={job_id}"
                )
                assert not running.split(), f"lost job {job_id} runs again on {node}"
        services = manager.docker("service", "ls", "-q", "--filter", "label=luzia.project=pinned")
        assert not services.split(), "a lost job's service is kept: its node could run it again"
        # the one with a retry: queued again, then running on worker1, its first log kept
        swarm.wait_state(retried, JobState.RUNNING, timeout=60)
        again = swarm.d.get_status(retried)
        assert swarm.backend.node_of(again) == "worker1"
        requeued = [e for e in swarm.d.store.events(retried, 0) if e.state is JobState.QUEUED]
        assert "node spare lost; running it again elsewhere (retry 1 of 1" in requeued[-1].reason
        assert "attempt" in (again.job_dir / "attempt-1.log").read_text()
        assert swarm.d.kill_job(retried).state is JobState.KILLED

        # Again while no engine runs: the restarted engine judges the job, never queues it again.
        test_cluster.restart_node(swarm_cluster, test_cluster.SPARE)
        engine.stop(timeout=120)  # its last looks at the lost jobs may take a while under load
        assert not engine_status(swarm.home).running, "the engine in this process still runs"
        start_engine(swarm.home)
        late = swarm.dispatch("echo late; sleep 600", project="pinned")
        swarm.wait_state(late, JobState.RUNNING)
        pid = engine_status(swarm.home).pid
        assert pid not in (None, os.getpid())
        os.kill(pid, signal.SIGKILL)
        while engine_status(swarm.home).running:
            time.sleep(0.05)
        swarm_cluster.stop_node(test_cluster.SPARE)
        start_engine(swarm.home)
        swarm.wait_state(late, *FINAL_STATES, timeout=60)
        job = swarm.d.get_status(late)
        assert job.state is JobState.FAILED
        assert "node spare lost" in (job.message or ""), job.message
    finally:
        try:
            swarm.d.clean(all=True)
        finally:
            engine.stop(timeout=120)  # first: the daemon's pid is then the only one recorded
            stop_engine(swarm.home)
            for node in ("lzc-spare", "lzc-worker1"):
                manager.docker("node", "update", "--label-rm", "lz-roam", node)
    _assert_no_services(swarm_cluster, swarm.home)


def test_image_push_names_the_registry_in_one_line(
    swarm_cluster: test_cluster.Cluster, tmp_path: Path
) -> None:
    env = {**os.environ, "DOCKER_HOST": swarm_cluster.manager.endpoint}
    ok = subprocess.run(
        [sys.executable, "-m", "luzia", "image", "push", swarm_cluster.registry],
        env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert f"{swarm_cluster.registry}/luzia-agent:latest" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "luzia", "image", "push", "192.168.213.99:5000"],
        env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 1
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_clean_all_removes_this_homes_services_the_store_does_not_know(swarm: Swarm) -> None:
    import docker.types

    labels = {"luzia.job": "zzzzzzzz", "luzia.home": str(swarm.home)}
    stranger = {"luzia.job": "yyyyyyyy", "luzia.home": "/another/home"}
    image = f"{swarm.config.swarm.registry}/luzia-agent:latest"
    for name, these in (("luzia-zzzzzzzz", labels), ("luzia-yyyyyyyy", stranger)):
        swarm.backend.manager.services.create(
            image,
            command=["sleep", "600"],
            name=name,
            labels=these,
            restart_policy=docker.types.RestartPolicy(condition="none"),
        )
    try:
        swarm.d.clean(all=True)
        names = [s.name for s in swarm.backend.manager.services.list()]
        assert "luzia-zzzzzzzz" not in names
        assert "luzia-yyyyyyyy" in names  # another home's: never ours to remove
    finally:
        for service in swarm.backend.manager.services.list(filters={"name": "luzia-yyyyyyyy"}):
            service.remove()


def test_doctor_says_which_swarm_nodes_luzia_can_drive(swarm: Swarm) -> None:
    from luzia.doctor import check_swarm

    checks = {check.name: check for check in check_swarm(swarm.config)}
    assert checks["swarm manager"].status == "ok", checks["swarm manager"]
    for node in ("lzc-manager", "lzc-worker1", "lzc-worker2"):
        assert checks[f"swarm node {node}"].status == "ok", checks[f"swarm node {node}"]
    assert checks["swarm image"].status == "ok", checks["swarm image"]
    text = swarm.config_file.read_text()
    worker2 = next(line for line in text.splitlines() if line.startswith("worker2 = "))
    swarm.config_file.write_text(text.replace(worker2 + "\n", ""))
    shown = subprocess.run(
        [sys.executable, "-m", "luzia", "doctor", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 1, shown.stderr
    told = {check["name"]: check for check in json.loads(shown.stdout)["checks"]}
    assert told["swarm node lzc-worker2"]["status"] == "fail"
    assert "to [swarm.nodes]" in told["swarm node lzc-worker2"]["fix"]
