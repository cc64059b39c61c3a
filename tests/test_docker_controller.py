"""DockerTmuxController: container lifecycle, hardening, adoption and faults, on a real engine.

The pane itself (typing, reading, waiting, ``run``) is covered for both backends by
``test_controller_contract.py``; this file covers what only the Docker backend has.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from controllers import (
    ContainerGone,
    ControllerError,
    DockerTmuxController,
    DockerUnavailable,
    ImageNotFound,
)
from controllers.container import MANAGED_LABEL, WORKSPACE
from controllers.pytest_plugin import TEST_LABELS
from tests.conftest import start_foreground

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

AGENT_UID = 12345


def unique_label() -> tuple[str, str]:
    """A label key and value no other container on this engine carries."""
    return "luzia.test.case", uuid.uuid4().hex[:12]


def gone(client: docker.DockerClient, container_id: str) -> bool:
    import docker.errors

    try:
        client.containers.get(container_id)
    except docker.errors.NotFound:
        return True
    return False


def remove_quietly(container: Container) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True)


@pytest.fixture
def owned_workspace(workspace: Path) -> Path:
    """A workspace belonging to someone other than the test runner (needs root to chown)."""
    if os.geteuid() != 0:
        pytest.skip("chown to another uid needs root (CI runs the tests as root)")
    os.chown(workspace, AGENT_UID, AGENT_UID)
    return workspace


@pytest.fixture
def create(
    agent_image: str, docker_engine: docker.DockerClient
) -> Iterator[Callable[..., DockerTmuxController]]:
    """``create(**kwargs)``: a controller on a new test-labelled container, closed afterwards."""
    made: list[DockerTmuxController] = []

    def make(**kwargs: object) -> DockerTmuxController:
        labels = {**TEST_LABELS, **kwargs.pop("labels", {})}  # type: ignore[dict-item]
        controller = DockerTmuxController.create(
            agent_image,
            client=docker_engine,
            labels=labels,
            **kwargs,  # type: ignore[arg-type]
        )
        made.append(controller)
        controller.wait_for_shell_prompt(10)
        return controller

    yield make
    for controller in made:
        controller.close()


@pytest.fixture
def sdk_container(
    agent_image: str, docker_engine: docker.DockerClient
) -> Iterator[Callable[..., Container]]:
    """``start(labels)``: a container started with the SDK, not by luzia (as a user would)."""
    started: list[Container] = []

    def start(labels: dict[str, str] | None = None) -> Container:
        container = docker_engine.containers.run(
            agent_image,
            ["sleep", "infinity"],
            detach=True,
            init=True,
            labels={**TEST_LABELS, **(labels or {})},
        )
        started.append(container)
        return container

    yield start
    for container in started:
        remove_quietly(container)


# -- create --


@pytest.mark.docker
def test_create_labels_hardens_mounts_and_passes_env(
    create: Callable[..., DockerTmuxController], workspace: Path
) -> None:
    env = {"LUZIA_X": "spaces and 'quotes' $HOME ü"}
    c = create(workspace=workspace, env=env, labels={"luzia.job": "job-1"})
    c.container.reload()
    attrs = c.container.attrs
    labels = attrs["Config"]["Labels"]
    assert labels[MANAGED_LABEL] == "1"
    assert labels["luzia.job"] == "job-1"
    assert {k: labels.get(k) for k in TEST_LABELS} == TEST_LABELS

    host = attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert any(opt.startswith("no-new-privileges") for opt in host["SecurityOpt"])
    assert host["PidsLimit"] == 512
    assert host["Memory"] == 2 * 1024**3
    assert host["Init"] is True
    assert not host.get("Privileged")

    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts[WORKSPACE]["Source"] == str(workspace.resolve())
    assert mounts[WORKSPACE]["RW"] is True
    assert not any("docker.sock" in m["Source"] for m in attrs["Mounts"])
    assert "LUZIA_X=" + env["LUZIA_X"] in attrs["Config"]["Env"]

    # What the pane's shell sees, not just what the engine recorded.
    status = c.run("grep -E '^(CapEff|NoNewPrivs):' /proc/self/status").output.split()
    assert status == ["CapEff:", "0000000000000000", "NoNewPrivs:", "1"]
    assert c.run('printf "%s\\n" "$LUZIA_X"; pwd').output == f"{env['LUZIA_X']}\n{WORKSPACE}\n"
    assert c.run("echo from-the-pane > written.txt").ok
    assert (workspace / "written.txt").read_text() == "from-the-pane\n"


@pytest.mark.docker
def test_create_resource_limits_are_configurable(
    create: Callable[..., DockerTmuxController],
) -> None:
    c = create(memory="256m", pids_limit=64, cpus=0.5)
    c.container.reload()
    host = c.container.attrs["HostConfig"]
    assert (host["Memory"], host["PidsLimit"], host["NanoCpus"]) == (256 * 1024**2, 64, 5 * 10**8)


@pytest.mark.docker
def test_agent_runs_as_the_workspace_owner(
    create: Callable[..., DockerTmuxController], owned_workspace: Path
) -> None:
    c = create(workspace=owned_workspace)
    assert c.run("id -u; id -g").output == f"{AGENT_UID}\n{AGENT_UID}\n"
    assert c.run("echo agent > /workspace/by-agent.txt").ok
    st = (owned_workspace / "by-agent.txt").stat()
    assert (st.st_uid, st.st_gid) == (AGENT_UID, AGENT_UID)


@pytest.mark.docker
def test_explicit_user_wins_over_the_workspace_owner(
    create: Callable[..., DockerTmuxController], owned_workspace: Path
) -> None:
    c = create(workspace=owned_workspace, user="23456:23457")
    assert c.run("id -u; id -g").output == "23456\n23457\n"


@pytest.mark.docker
def test_without_workspace_the_agent_runs_as_the_invoking_user(
    create: Callable[..., DockerTmuxController],
) -> None:
    c = create()
    assert c.run("id -u; id -g").output == f"{os.getuid()}\n{os.getgid()}\n"


# -- lifecycle --


@pytest.mark.docker
def test_close_removes_an_owned_container(
    create: Callable[..., DockerTmuxController], docker_engine: docker.DockerClient
) -> None:
    c = create()
    assert c.owned
    c.close()
    assert gone(docker_engine, c.container.id)
    assert not c.is_alive()
    assert c.client._proc.poll() is not None
    c.close()  # a second close is harmless


@pytest.mark.docker
def test_kill_removes_the_container(
    create: Callable[..., DockerTmuxController], docker_engine: docker.DockerClient
) -> None:
    c = create()
    c.kill()
    assert gone(docker_engine, c.container.id)
    assert c.client._proc.poll() is not None


@pytest.mark.docker
def test_stop_keeps_the_container(
    create: Callable[..., DockerTmuxController], docker_engine: docker.DockerClient
) -> None:
    c = create()
    try:
        c.stop(timeout=1)
        kept = docker_engine.containers.get(c.container.id)
        assert kept.status == "exited"
        assert c.client._proc.poll() is not None
        assert not c.is_alive()
    finally:
        remove_quietly(c.container)


@pytest.mark.docker
def test_create_removes_the_container_when_tmux_cannot_start(
    agent_image: str, docker_engine: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, value = unique_label()
    monkeypatch.setenv("PATH", "/nonexistent")  # no docker CLI for the control stream
    with pytest.raises(DockerUnavailable, match="docker command-line client"):
        DockerTmuxController.create(
            agent_image, client=docker_engine, labels={**TEST_LABELS, key: value}
        )
    left = docker_engine.containers.list(all=True, filters={"label": f"{key}={value}"})
    assert left == []


# -- adopt --


@pytest.mark.docker
def test_adopt_detaches_on_close_and_a_second_adopt_joins_the_session(
    sdk_container: Callable[..., Container], docker_engine: docker.DockerClient
) -> None:
    key, value = unique_label()
    container = sdk_container({key: value})

    first = DockerTmuxController.adopt(container.id, client=docker_engine)
    assert not first.owned
    first.wait_for_shell_prompt(10)
    assert first.run("export LUZIA_STATE=kept-$((20+22)); cd /tmp; id -un").output == "agent\n"
    first.close()
    assert first.client._proc.poll() is not None
    container.reload()
    assert container.status == "running"

    second = DockerTmuxController.adopt(label=f"{key}={value}", client=docker_engine)
    try:
        assert second.container.id == container.id
        assert second.pane_id == first.pane_id
        second.wait_for_shell_prompt(10)
        assert second.run('echo "$LUZIA_STATE"; pwd').output == "kept-42\n/tmp\n"
        assert "kept-42" in second.capture_pane(start="-")
    finally:
        second.close()
    container.reload()
    assert container.status == "running"

    third = DockerTmuxController.adopt(container.name, client=docker_engine)
    with third:
        third.wait_for_shell_prompt(10)
        assert third.run('echo "$LUZIA_STATE"').output == "kept-42\n"
    container.reload()
    assert container.status == "running"


@pytest.mark.docker
def test_adopt_by_ambiguous_label_is_refused(
    sdk_container: Callable[..., Container], docker_engine: docker.DockerClient
) -> None:
    key, value = unique_label()
    a, b = sdk_container({key: value}), sdk_container({key: value})
    with pytest.raises(ControllerError, match=r"expected one .* found 2") as info:
        DockerTmuxController.adopt(label=f"{key}={value}", client=docker_engine)
    assert a.name in str(info.value) and b.name in str(info.value)


@pytest.mark.docker
def test_adopt_by_missing_label_or_id_is_refused(docker_engine: docker.DockerClient) -> None:
    key, value = unique_label()
    with pytest.raises(ControllerError, match=r"expected one .* found 0"):
        DockerTmuxController.adopt(label=f"{key}={value}", client=docker_engine)
    with pytest.raises(ContainerGone, match="no container 'luzia-no-such-container"):
        DockerTmuxController.adopt(f"luzia-no-such-container-{value}", client=docker_engine)
    with pytest.raises(ControllerError, match="not both"):
        DockerTmuxController.adopt("x", label="y", client=docker_engine)


@pytest.mark.docker
def test_adopt_a_stopped_container_is_refused(
    sdk_container: Callable[..., Container], docker_engine: docker.DockerClient
) -> None:
    container = sdk_container()
    container.kill()
    with pytest.raises(ContainerGone, match="not running"):
        DockerTmuxController.adopt(container.id, client=docker_engine)


# -- faults --


def remove(container: Container) -> None:
    container.remove(force=True)


def kill(container: Container) -> None:
    container.kill()


def stop(container: Container) -> None:
    container.stop(timeout=1)


CALLS: dict[str, Callable[[DockerTmuxController], object]] = {
    "run": lambda c: c.run("true", timeout=30),
    "send_keys": lambda c: c.send_keys("echo hi"),
    "capture_pane": lambda c: c.capture_pane(),
}


@pytest.mark.docker
@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("fault", "reason"), [(remove, "removed"), (kill, "exited"), (stop, "exited")]
)
@pytest.mark.parametrize(
    "call",
    [
        "run",
        "send_keys",
        "capture_pane",
    ],
)
def test_container_gone_under_the_controller_is_reported(
    create: Callable[..., DockerTmuxController],
    docker_engine: docker.DockerClient,
    fault: Callable[[Container], None],
    reason: str,
    call: str,
) -> None:
    c = create()
    fault(docker_engine.containers.get(c.container.id))
    # The engine has finished; let the control stream notice too, so the call below
    # meets a closed stream every time (the case a caller hits after any delay).
    assert c.client.closed.wait(5), "the docker exec stream outlived its container"
    with pytest.raises(ContainerGone, match=reason):
        CALLS[call](c)
    assert c.client._proc.poll() is not None, "the docker exec stream was left running"
    assert not c.is_alive()


@pytest.mark.docker
@pytest.mark.timeout(10)
def test_container_removed_while_waiting_is_reported(
    create: Callable[..., DockerTmuxController], docker_engine: docker.DockerClient
) -> None:
    c = create()
    start_foreground(c, "sleep 300")
    target = docker_engine.containers.get(c.container.id)
    remover = threading.Thread(target=target.remove, kwargs={"force": True})
    remover.start()
    try:
        with pytest.raises(ContainerGone) as info:
            c.wait_for_shell_prompt(timeout=60)
    finally:
        remover.join()
    assert c.client._proc.poll() is not None
    assert "remov" in str(info.value), str(info.value)


@pytest.mark.docker
def test_missing_image_names_the_fix(docker_engine: docker.DockerClient) -> None:
    key, value = unique_label()
    with pytest.raises(ImageNotFound, match="luzia image build"):
        DockerTmuxController.create(
            f"luzia-test-missing-image:{value}",
            client=docker_engine,
            labels={**TEST_LABELS, key: value},
        )
    assert docker_engine.containers.list(all=True, filters={"label": f"{key}={value}"}) == []


@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param(lambda: DockerTmuxController.create(), id="create"),
        pytest.param(lambda: DockerTmuxController.adopt(label="x"), id="adopt"),
    ],
)
def test_unreachable_docker_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, attempt: Callable[[], object]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    with pytest.raises(DockerUnavailable) as info:
        attempt()
    message = str(info.value)
    assert "\n" not in message
    assert "DOCKER_HOST" in message and "start the Docker Engine" in message
