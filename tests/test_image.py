"""The agent image: built offline from this host, run against the real Docker Engine.

One offline build per module, under a unique tag (the shared ``luzia-agent:latest`` is never
touched), removed at teardown together with any container these tests created.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from controllers.errors import (
    ControllerError,
    DockerUnavailable,
    ImageBuildError,
    ImageNotFound,
    InvalidInput,
)
from controllers.image import (
    BASE_IMAGE,
    BuildResult,
    HostToolMissing,
    build_agent_image,
    ensure_agent_image,
    image_exists,
    write_rootfs_tar,
)

RUN_ID = uuid.uuid4().hex[:10]
TEST_TAG = f"luzia-agent:test-image-{RUN_ID}"
LABELS = {"luzia.test": "1", "luzia.test.run": RUN_ID}
HARDENED: dict[str, Any] = {
    "user": "12345:12345",
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
}


def docker_or_skip() -> docker.DockerClient:
    """A live Docker client; skip without one, except under CI=true where that is a failure."""
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the Docker Engine is unreachable: {exc}")
        pytest.skip(f"Docker Engine unreachable: {exc}")
    return client


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker_or_skip()


@pytest.fixture(scope="module")
def built(client: docker.DockerClient) -> Iterator[BuildResult]:
    result = build_agent_image(TEST_TAG, method="offline", client=client)
    try:
        yield result
    finally:
        for container in client.containers.list(
            all=True, filters={"label": f"luzia.test.run={RUN_ID}"}
        ):
            container.remove(force=True)
        client.images.remove(TEST_TAG, force=True)


def run(
    client: docker.DockerClient, script: str, *, timeout: float = 30, **kwargs: Any
) -> tuple[int, str]:
    """Run ``bash -c script`` in a fresh container of the test image; (exit code, output)."""
    container = client.containers.create(TEST_TAG, ["bash", "-c", script], labels=LABELS, **kwargs)
    try:
        container.start()
        status = container.wait(timeout=timeout)["StatusCode"]
        return status, container.logs(stdout=True, stderr=True).decode()
    finally:
        container.remove(force=True)


def ok(client: docker.DockerClient, script: str, **kwargs: Any) -> str:
    status, output = run(client, script, **kwargs)
    assert status == 0, output
    return output


# --------------------------------------------------------------------------- no Docker needed


def test_rootfs_tar_is_root_owned_sorted_and_without_setuid() -> None:
    buffer = io.BytesIO()
    write_rootfs_tar(buffer)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    by_name = {m.name: m for m in members}
    for name in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{name}"):
            assert by_name[name].issym() and by_name[name].linkname == os.readlink(f"/{name}")
    assert {m.uid for m in members if m.name != "home/agent"} == {0}
    assert (by_name["home/agent"].uid, by_name["home/agent"].mode) == (1000, 0o1777)
    for name in ("tmp", "workspace"):
        assert by_name[name].mode == 0o1777
    assert not [m.name for m in members if m.mode & 0o6000]
    assert len({m.mtime for m in members}) == 1
    assert "usr/bin/tmux" in by_name and "usr/lib/git-core/git-commit" in by_name


def test_bad_tag_on_the_command_line_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {**os.environ, "LUZIA_HOME": str(tmp_path / "home"), "LUZIA_NO_AUTOSTART": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "luzia", "image", "build", "-t", "Not A Tag", "--method", "offline"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "Not A Tag" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_method_and_tag_in_the_api_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        build_agent_image("luzia-agent:x", method="bogus", client=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        build_agent_image("Not A Tag")


def test_unreachable_docker_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(DockerUnavailable, match="DOCKER_HOST"):
        image_exists("luzia-agent:whatever")


def test_missing_host_tool_names_program_and_package() -> None:
    from controllers.image.host import require_program

    with pytest.raises(HostToolMissing, match=r"'no-such-tool-x'.*apt-get install no-such-pkg"):
        require_program("no-such-tool-x", "no-such-pkg")


# --------------------------------------------------------------------------- real containers


@pytest.mark.docker
def test_build_result_describes_the_image(client: docker.DockerClient, built: BuildResult) -> None:
    assert built.tag == TEST_TAG and built.method == "offline"
    assert 5e6 < built.size_bytes < 100e6
    info = client.api.inspect_image(TEST_TAG)
    assert info["Id"] == built.image_id
    config = info["Config"]
    assert config["Labels"] == {"luzia.image": "agent", "luzia.image.method": "offline"}
    assert config["User"] == "agent" and config["WorkingDir"] == "/workspace"
    assert config["Cmd"] == ["sleep", "infinity"]
    assert {"LANG=C.UTF-8", "HOME=/home/agent", "TERM=xterm-256color"} <= set(config["Env"])


@pytest.mark.docker
def test_tools_run_as_agent_by_default(client: docker.DockerClient, built: BuildResult) -> None:
    out = ok(
        client,
        "id -u; id -un; pwd; tmux -V; bash --version | head -1; sh -c 'echo sh-ok'; "
        "echo a,b | cut -d, -f2 | tr a-z A-Z; seq 3 | sort -r | head -1; "
        "awk 'BEGIN{print 6*7}'; printf 'x\\n' | grep -c x; echo abc | sed s/b/B/; "
        "find /usr/bin -name tmux; echo 1 | xargs echo n; diff <(echo a) <(echo a) && echo same",
    )
    lines = out.splitlines()
    assert lines[:3] == ["1000", "agent", "/workspace"]
    assert lines[3].startswith("tmux 3.")
    assert "GNU bash" in lines[4]
    assert lines[5:] == ["sh-ok", "B", "3", "42", "1", "aBc", "/usr/bin/tmux", "n 1", "same"]


@pytest.mark.docker
def test_git_workflow_in_workspace(client: docker.DockerClient, built: BuildResult) -> None:
    out = ok(
        client,
        "set -e; export GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@x GIT_COMMITTER_NAME=a "
        "GIT_COMMITTER_EMAIL=a@x; git init -q -b main . 2>&1; echo one > f; git add f; "
        "git commit -qm first; echo two >> f; git diff --stat; git status --short; "
        "git stash -q; git stash list; git stash pop -q; git commit -qam second; "
        "git worktree add -q /tmp/wt; git -C /tmp/wt log --oneline | wc -l; git log --format=%s",
    )
    assert "1 file changed" in out
    assert " M f" in out
    assert "stash@{0}" in out
    assert out.rstrip().splitlines()[-3:] == ["2", "second", "first"]
    assert "warning" not in out.lower()


@pytest.mark.docker
def test_hardened_arbitrary_uid_runs_a_tmux_server(
    client: docker.DockerClient, built: BuildResult
) -> None:
    out = ok(
        client,
        "id -u; tmux -S /tmp/s new-session -d -s main && tmux -S /tmp/s list-sessions; "
        "touch $HOME/ok && echo home-writable; "
        "cd /workspace && git init -q . && git status --short && echo git-ok",
        **HARDENED,
    )
    lines = out.splitlines()
    assert lines[0] == "12345"
    assert lines[1].startswith("main: 1 windows")
    assert lines[2:] == ["home-writable", "git-ok"]


@pytest.mark.docker
def test_utf8_round_trips_through_tmux(client: docker.DockerClient, built: BuildResult) -> None:
    text = "héllo wörld ✓ 日本語"
    out = ok(
        client,
        f"printf '%s\\n' '{text}'; "
        "tmux -S /tmp/s new-session -d -x 80 -y 10 && "
        f"tmux -S /tmp/s send-keys -l 'echo {text}; tmux wait-for -S echoed' && "
        "tmux -S /tmp/s send-keys Enter && tmux -S /tmp/s wait-for echoed && "
        "tmux -S /tmp/s capture-pane -p | grep -v '^$'",
        **HARDENED,
    )
    lines = out.splitlines()
    assert lines[0] == text
    assert text in lines[1:], out  # the echoed line, read back from the pane


@pytest.mark.docker
def test_ensure_is_a_no_op_when_present(client: docker.DockerClient, built: BuildResult) -> None:
    assert ensure_agent_image(TEST_TAG, client=client) == TEST_TAG
    assert client.api.inspect_image(TEST_TAG)["Id"] == built.image_id
    assert image_exists(TEST_TAG, client=client)
    assert not image_exists(f"luzia-agent:absent-{RUN_ID}", client=client)


@pytest.mark.docker
def test_dockerfile_without_base_image_fails_fast(client: docker.DockerClient) -> None:
    if image_exists(BASE_IMAGE, client=client):
        pytest.skip(f"{BASE_IMAGE} is present here; this checks the air-gapped case")
    tag = f"luzia-agent:test-dockerfile-{RUN_ID}"
    with pytest.raises(ImageNotFound, match=BASE_IMAGE) as info:
        build_agent_image(tag, method="dockerfile", client=client)
    assert isinstance(info.value, ControllerError)
    assert "--method offline" in str(info.value)
    assert not image_exists(tag, client=client)


@pytest.mark.docker
def test_dockerfile_without_build_context_is_a_clear_error(
    client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import controllers.image.build

    monkeypatch.setattr(controllers.image.build, "AGENT_CONTEXT_DIR", tmp_path / "absent")
    with pytest.raises(ImageBuildError, match=r"no Dockerfile at .*--method offline"):
        build_agent_image(
            f"luzia-agent:test-dockerfile-{RUN_ID}", method="dockerfile", client=client
        )


@pytest.mark.docker
def test_no_test_containers_left(client: docker.DockerClient, built: BuildResult) -> None:
    ok(client, "true")
    leftovers = client.containers.list(all=True, filters={"label": f"luzia.test.run={RUN_ID}"})
    assert leftovers == []
