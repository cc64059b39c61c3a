"""pytest fixtures for code that drives agents through luzia's controllers.

Registered as a pytest plugin (entry point ``pytest11``), so any project that installs
luzia gets them:

- ``tmux_controller``: a :class:`LocalTmuxController` on a throwaway tmux server.
- ``agent_image``: the agent image, built offline once if missing (under a host-wide lock, so
  parallel workers and concurrent runs build it once and then reuse it).
- ``docker_engine``: a Docker client; skips when no engine is reachable, except under
  ``CI=true``, where a missing engine is a failure, not a skip.
- ``agent_container``: a :class:`DockerTmuxController` in a throwaway container
  (workspace: the test's ``tmp_path``), removed afterwards.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from controllers.docker_tmux import DockerTmuxController
from controllers.errors import DockerUnavailable
from controllers.local import LocalTmuxController

if TYPE_CHECKING:
    import docker


TEST_RUN_ID = uuid.uuid4().hex[:12]
"""Labels this pytest process's containers, so a leak check reaps only its own (each
pytest-xdist worker is a process of its own, with its own id)."""

TEST_LABELS = {"luzia.test": "1", "luzia.test.run": TEST_RUN_ID}


@contextmanager
def host_lock(name: str) -> Iterator[None]:
    """Hold the exclusive lock ``name``, shared by every test process of this user on this host.

    pytest-xdist workers are separate processes, and other pytest runs may share the machine:
    work that must happen once (building an image) or one at a time (``useradd``) goes under it.
    """
    directory = Path(tempfile.gettempdir()) / f"luzia-test-locks-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    key = hashlib.sha256(name.encode()).hexdigest()[:16]
    with open(directory / f"{key}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def shared_image(
    tag: str, build: Callable[[], object], client: docker.DockerClient | None = None
) -> str:
    """Return ``tag``, calling ``build`` (which must create it) only if the engine lacks it.

    Checked and built under a lock named for the tag: any number of workers asking at once get
    one build, and later sessions reuse the image. The pattern for every session-scoped image
    fixture in the tests.
    """
    from controllers.image import image_exists

    with host_lock(f"image {tag}"):
        if not image_exists(tag, client):
            build()
            assert image_exists(tag, client), f"building {tag} did not create it"
    return tag


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture
def tmux_controller(tmp_path: Path) -> Iterator[LocalTmuxController]:
    with LocalTmuxController(cwd=tmp_path) as controller:
        controller.wait_for_shell_prompt(10)
        yield controller


@pytest.fixture(scope="session")
def docker_engine() -> docker.DockerClient:
    from controllers.docker_engine import docker_client

    try:
        return docker_client()
    except DockerUnavailable as exc:
        if in_ci():
            pytest.fail(f"CI=true but Docker is unavailable: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def agent_image(docker_engine: docker.DockerClient) -> str:
    from controllers.image import DEFAULT_IMAGE, ensure_agent_image

    tag = os.environ.get("LUZIA_TEST_IMAGE", DEFAULT_IMAGE)
    return shared_image(tag, lambda: ensure_agent_image(tag, client=docker_engine), docker_engine)


@pytest.fixture
def agent_container(
    agent_image: str, docker_engine: docker.DockerClient, tmp_path: Path
) -> Iterator[DockerTmuxController]:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    with DockerTmuxController.create(
        agent_image, workspace=workspace, client=docker_engine, labels=TEST_LABELS
    ) as controller:
        controller.wait_for_shell_prompt(10)
        yield controller
