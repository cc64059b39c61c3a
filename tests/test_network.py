"""The job network against a real Docker Engine: luzia's own bridge keeps a job from reaching
another job's container (while the same probe gets through where inter-container traffic is on),
``none`` leaves only loopback, an unknown network is refused, ``doctor`` reports it.

Every network here is named for this test run and removed by the test that made it; luzia's own
network is renamed per test through ``LUZIA_JOBS_NETWORK``.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from controllers.pytest_plugin import TEST_LABELS, TEST_RUN_ID
from luzia.config import Config, Defaults
from luzia.dispatcher import ResponsiveDispatcher
from luzia.errors import ConfigError, UsageError
from luzia.jobs import FINAL_STATES, Job, JobState
from luzia.launch import LAUNCH_FILE, Launch, read_launch
from luzia.network import ICC_OPTION, NETWORK_VAR, container_network

pytestmark = pytest.mark.docker

SCRIPT = shutil.which("luzia") or str(Path(sys.executable).parent / "luzia")

PROBE = 'probe() { timeout 15 bash -c "exec 3<>/dev/tcp/$1/9" 2>&1; echo "probe $1: $?"; }'
"""Connects to port 9 (closed): ``Connection refused`` means the address answered; exit 124 from
``timeout`` means nothing came back at all, which is what a dropped packet looks like."""

_numbers = itertools.count()


def remove_network(client: docker.DockerClient, name: str) -> None:
    for network in client.networks.list(names=[name]):
        if network.name == name:
            network.remove()


@pytest.fixture
def own_network(
    monkeypatch: pytest.MonkeyPatch, docker_engine: docker.DockerClient
) -> Iterator[str]:
    """The name luzia's own network has in this test; the first docker job creates it."""
    name = f"luzia-test-{TEST_RUN_ID}-{next(_numbers)}"
    monkeypatch.setenv(NETWORK_VAR, name)
    yield name
    remove_network(docker_engine, name)


@pytest.fixture(scope="module")
def open_network(docker_engine: docker.DockerClient) -> Iterator[str]:
    """A bridge with inter-container traffic on, like Docker's default one: the probe's control."""
    name = f"luzia-test-{TEST_RUN_ID}-open"
    docker_engine.networks.create(name, driver="bridge", labels=TEST_LABELS)
    yield name
    remove_network(docker_engine, name)


def make_dispatcher(home: Path, image: str) -> ResponsiveDispatcher:
    return ResponsiveDispatcher(
        home=home, config=Config(defaults=Defaults(backend="docker", image=image))
    )


@pytest.fixture
def dispatcher(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    agent_image: str,
    own_network: str,
    open_network: str,
) -> Iterator[ResponsiveDispatcher]:
    """An engine in this process; its containers are removed before the networks they are on."""
    monkeypatch.setenv("LUZIA_NO_AUTOSTART", "1")
    d = make_dispatcher(tmp_path / "home", agent_image)
    engine = d.start_background_monitor()
    yield d
    d.clean(all=True)
    engine.stop()
    d.close()


def wait_running(d: ResponsiveDispatcher, job_id: str) -> None:
    for event in d.stream_status(job_id):
        if event.state is JobState.RUNNING:
            return
        assert event.state not in FINAL_STATES, event
    raise AssertionError(f"{job_id} ended before it ran")


def run(
    d: ResponsiveDispatcher, workspace: Path, task: str, network: str | None = None
) -> tuple[Job, str]:
    job = d.wait_for_job(d.dispatch_task(task, workdir=workspace, network=network), timeout=120)
    return job, d.read_log(job.id, plain=True).decode()


def attachments(client: docker.DockerClient, job: Job) -> dict[str, tuple[str, str]]:
    """The job container's networks: name -> (its address, the gateway)."""
    assert job.container_id
    networks = client.containers.get(job.container_id).attrs["NetworkSettings"]["Networks"]
    return {name: (net["IPAddress"], net["Gateway"]) for name, net in networks.items()}


@pytest.mark.parametrize("isolated", [True, False], ids=["luzia's network", "ICC on"])
def test_a_job_in_the_default_network_cannot_reach_another_jobs_container(
    dispatcher: ResponsiveDispatcher,
    docker_engine: docker.DockerClient,
    workspace: Path,
    own_network: str,
    open_network: str,
    isolated: bool,
) -> None:
    network = None if isolated else open_network
    target_id = dispatcher.dispatch_task("sleep 600", workdir=workspace, network=network)
    wait_running(dispatcher, target_id)
    target = attachments(docker_engine, dispatcher.get_status(target_id))
    expected = own_network if isolated else open_network
    assert list(target) == [expected]
    address, gateway = target[expected]

    job, log = run(dispatcher, workspace, f"{PROBE}; probe {gateway}; probe {address}", network)

    assert job.state is JobState.COMPLETED, log
    assert list(attachments(docker_engine, job)) == [expected], "both jobs on one network"
    assert f"/dev/tcp/{gateway}/9: Connection refused" in log, "the host answers either way"
    if isolated:
        assert f"probe {address}: 124" in log, log
    else:
        assert f"/dev/tcp/{address}/9: Connection refused" in log, log
    dispatcher.kill_job(target_id)


def test_network_none_leaves_only_loopback(
    dispatcher: ResponsiveDispatcher, workspace: Path
) -> None:
    job, log = run(dispatcher, workspace, "ls /sys/class/net", network="none")
    assert job.state is JobState.COMPLETED
    assert log.split() == ["lo"]
    job, log = run(dispatcher, workspace, "ls /sys/class/net")
    assert log.split() == ["eth0", "lo"], "the control: the default network has an interface"


def test_the_job_carries_its_resolved_network(
    dispatcher: ResponsiveDispatcher, workspace: Path, own_network: str
) -> None:
    job_id = dispatcher.dispatch_task("true", workdir=workspace)
    launch = read_launch(dispatcher.get_status(job_id).job_dir)
    assert launch is not None and launch.network == own_network
    job_id = dispatcher.dispatch_task("true", workdir=workspace, network="host")
    launch = read_launch(dispatcher.get_status(job_id).job_dir)
    assert launch is not None and launch.network == "host"


def test_a_network_letting_containers_talk_is_refused_as_luzias_own(
    dispatcher: ResponsiveDispatcher,
    docker_engine: docker.DockerClient,
    workspace: Path,
    own_network: str,
) -> None:
    docker_engine.networks.create(own_network, driver="bridge", labels=TEST_LABELS)
    job, _ = run(dispatcher, workspace, "true")
    assert job.state is JobState.FAILED
    assert job.message == (
        f"could not start: network {own_network} lets containers reach each other "
        f"({ICC_OPTION} is not false); remove it (docker network rm {own_network}) "
        "and luzia creates it anew"
    )
    assert job.container_id is None


def test_an_unknown_network_fails_the_job_at_start_when_docker_was_away_at_dispatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, agent_image: str, workspace: Path
) -> None:
    monkeypatch.setenv("LUZIA_NO_AUTOSTART", "1")
    missing = f"luzia-test-{TEST_RUN_ID}-missing"
    d = make_dispatcher(tmp_path / "home", agent_image)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    job_id = d.dispatch_task("true", workdir=workspace, network=missing)
    monkeypatch.delenv("DOCKER_HOST")
    engine = d.start_background_monitor()
    try:
        job = d.wait_for_job(job_id, timeout=60)
        assert job.state is JobState.FAILED
        assert job.message == (
            f"could not start: no Docker network {missing!r}: create it (docker network create "
            f"{missing}) or choose bridge, none, host, or leave network out for luzia's own"
        )
    finally:
        d.clean(all=True)
        engine.stop()
        d.close()


def test_engines_creating_luzias_network_at_once_agree_on_one(
    docker_engine: docker.DockerClient, own_network: str
) -> None:
    """Each process waits on its stdin once ready, so all ask for the network at once."""
    code = (
        "import sys, docker; from luzia.network import container_network as c\n"
        "client = docker.from_env(); print('ready', flush=True); sys.stdin.readline()\n"
        "print(c(client, None))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * len(procs), [e for _, e in outputs]
    ids = {out.strip() for out, _ in outputs}
    left = [n for n in docker_engine.networks.list(names=[own_network]) if n.name == own_network]
    assert [n.id for n in left] == list(ids)
    assert left[0].attrs["Options"] == {ICC_OPTION: "false"}
    assert left[0].attrs["Labels"] == {"luzia.managed": "1"}


# -------------------------------------------------------------------------- the command line


@pytest.fixture
def env(tmp_path: Path, own_network: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LUZIA_")}
    return clean | {
        "LUZIA_HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "LUZIA_NO_AUTOSTART": "1",
        NETWORK_VAR: own_network,
    }


def luzia(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_an_unknown_network_is_one_line_exit_2_and_nothing_recorded(
    env: dict[str, str], tmp_path: Path, workspace: Path
) -> None:
    missing = f"luzia-test-{TEST_RUN_ID}-missing"
    config = tmp_path / "config.toml"
    config.write_text(f'[projects.web]\npath = "{workspace}"\nnetwork = "{missing}"\n')
    for args in (
        ("dispatch", "--backend", "docker", "--network", missing, "true"),
        ("dispatch", "--network", missing, "true"),  # auto: docker answers, so it is checked
        ("--config", str(config), "dispatch", "--project", "web", "true"),
        ("dispatch", "--network", "container:abc", "true"),
    ):
        done = luzia(env, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stdout == "" and "Traceback" not in done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("luzia: error: "), done.stderr
        assert "network" in lines[0]
    assert json.loads(luzia(env, "jobs", "--json").stdout) == []


def test_doctor_shows_the_default_network_and_whether_jobs_are_isolated(
    env: dict[str, str], tmp_path: Path, docker_engine: docker.DockerClient, own_network: str
) -> None:
    def network_checks(*args: str) -> dict[str, tuple[str, str]]:
        done = luzia(env, *args, "doctor", "--json")
        checks = json.loads(done.stdout)["checks"]
        return {c["name"]: (c["status"], c["detail"]) for c in checks if "network" in c["name"]}

    own = f"network {own_network} (default)"
    assert network_checks() == {
        own: ("ok", "not created yet: the first docker job creates it, jobs isolated")
    }
    container_network(docker_engine, None)
    assert network_checks() == {own: ("ok", "exists; jobs on it cannot reach each other")}
    missing = f"luzia-test-{TEST_RUN_ID}-missing"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[defaults]\nnetwork = "bridge"\n[projects.web]\npath = "/"\nnetwork = "{missing}"\n'
    )
    talking = "exists; jobs on it can reach each other's containers"
    assert network_checks("--config", str(config)) == {
        "network bridge (default)": ("warn", talking),
        f"network {missing}": ("fail", "does not exist"),
    }
    text = luzia(env, "--config", str(config), "doctor").stdout
    assert f"fix: docker network create {missing}" in text


# -------------------------------------------------------------------------- records and config


def test_a_launch_record_from_before_networks_reads_as_luzias_own(tmp_path: Path) -> None:
    (tmp_path / LAUNCH_FILE).write_text('{"caller_path": "/bin", "profile": null}')
    assert read_launch(tmp_path) == Launch(None, "/bin", None)
    (tmp_path / LAUNCH_FILE).write_bytes(Launch(None, "/bin", "none").to_json())
    assert read_launch(tmp_path) == Launch(None, "/bin", "none")


def test_config_takes_a_network_per_project_and_refuses_a_bad_name(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    config = Config.parse(
        '[defaults]\nnetwork = "none"\n[projects.web]\npath = "/"\nnetwork = "ci-net"\n', file
    )
    assert (config.defaults.network, config.projects["web"].network) == ("none", "ci-net")
    with pytest.raises(ConfigError) as caught:
        Config.parse('[projects.web]\npath = "/"\nnetwork = "container:db"\n', file)
    assert str(caught.value) == (
        f"{file} line 3: projects.web.network must be bridge, none, host or a Docker network's "
        "name, not 'container:db'"
    )
    with pytest.raises(UsageError):
        ResponsiveDispatcher(home=tmp_path / "home", config=Config()).dispatch_task(
            "true", workdir=tmp_path, network=""
        )
