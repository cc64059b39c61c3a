"""Agent containers through the Docker SDK: create hardened, find by label, remove."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controllers.docker_engine import first_line, translate_docker_errors
from controllers.errors import ContainerGone, ControllerError

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

MANAGED_LABEL = "luzia.managed"
WORKSPACE = "/workspace"
DOCKER_NETWORK_MODES = ("bridge", "none", "host")
"""Docker's own networking modes: ``network_mode``; anything else names a network to join."""
HOST_ALIAS = "host.docker.internal"
"""The name every container resolves to the host (Docker's ``host-gateway``), so an agent reaches
a model proxy on the host (ollama, LiteLLM) as on Docker Desktop."""


def default_user(workspace: Path | None) -> str:
    """The uid:gid the agent runs as: the workspace's owner, else the invoking user.

    Files the agent writes then belong to the person who owns the project. Root is
    used only when that owner is root, and then with every capability dropped.
    """
    if workspace is not None:
        st = workspace.stat()
        return f"{st.st_uid}:{st.st_gid}"
    return f"{os.getuid()}:{os.getgid()}"


@dataclass
class ContainerSpec:
    """How to create an agent container; hardened unless told otherwise."""

    image: str
    workspace: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    memory: str | None = "2g"
    pids_limit: int | None = 512
    cpus: float | None = None
    name: str | None = None
    network: str | None = None
    """A network's name or id, or one of :data:`DOCKER_NETWORK_MODES`; ``None``: Docker's bridge."""
    volumes: Mapping[str, str] = field(default_factory=dict)
    """Extra bind mounts, host path -> container path (read-write)."""
    mounts: Sequence[tuple[str, str, bool]] = ()
    """More bind mounts: (host path, container path, read-only); the same path may be bound
    twice, and paths may hold colons."""

    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``client.containers.run``."""
        binds = {host: {"bind": target, "mode": "rw"} for host, target in self.volumes.items()}
        workspace = self.workspace.resolve() if self.workspace else None
        if workspace is not None:
            if not workspace.is_dir():
                raise ControllerError(f"workspace {workspace} is not a directory")
            binds[str(workspace)] = {"bind": WORKSPACE, "mode": "rw"}
        kwargs: dict[str, Any] = {
            "detach": True,
            "init": True,
            "user": self.user or default_user(workspace),
            "working_dir": WORKSPACE,
            "environment": {"LANG": "C.UTF-8", **self.env},
            "labels": {MANAGED_LABEL: "1", **self.labels},
            "volumes": binds,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "pids_limit": self.pids_limit,
            "mem_limit": self.memory,
            "name": self.name,
            "extra_hosts": {HOST_ALIAS: "host-gateway"},
        }
        if self.mounts:
            from docker.types import Mount

            kwargs["mounts"] = [
                Mount(target, source, type="bind", read_only=read_only)
                for source, target, read_only in self.mounts
            ]
        if self.cpus:
            kwargs["nano_cpus"] = int(self.cpus * 1e9)
        if self.network in DOCKER_NETWORK_MODES:
            kwargs["network_mode"] = self.network
        elif self.network:
            kwargs["network"] = self.network
        return {k: v for k, v in kwargs.items() if v is not None}


def create_container(client: docker.DockerClient, spec: ContainerSpec) -> Container:
    """Create and start it; never pulls (a missing image is ``ImageNotFound``, with the fix)."""
    kwargs = spec.run_kwargs()
    del kwargs["detach"]
    with translate_docker_errors(f"cannot start a container from {spec.image}"):
        container = client.containers.create(spec.image, **kwargs)
    try:
        with translate_docker_errors(f"cannot start container {container.short_id}"):
            container.start()
            container.reload()
    except BaseException:
        remove_container(container)
        raise
    return container


def find_container(
    client: docker.DockerClient, ref: str | None = None, *, label: str | None = None
) -> Container:
    """One running container, by id or name, or as the only one carrying ``label``."""
    if (ref is None) == (label is None):
        raise ControllerError("name a container by id/name or by label, not both or neither")
    if ref is not None:
        with translate_docker_errors(f"no container {ref!r}"):
            container = client.containers.get(ref)
    else:
        with translate_docker_errors("cannot list containers"):
            found = client.containers.list(filters={"label": label})
        if len(found) != 1:
            names = ", ".join(c.name for c in found) or "none"
            raise ControllerError(
                f"expected one running container labelled {label!r}, found {len(found)} ({names})"
            )
        container = found[0]
    if container.status != "running":
        raise ContainerGone(f"container {container.name} is {container.status}, not running")
    return container


def remove_container(container: Container) -> None:
    """Remove it, running or not; a container already gone is fine."""
    import docker.errors

    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "already in progress" not in str(exc):
            raise ControllerError(
                f"cannot remove container {container.short_id}: {first_line(exc)}"
            ) from exc


def describe_loss(container: Container, settle: float = 1.0) -> str:
    """Why a container's tmux went away: removed, exited (with code), or still running.

    The exec stream ends as soon as the engine starts tearing a container down, before its
    state says so; the state is read again for up to ``settle`` seconds while it says running.
    """
    return loss_state(container, settle)[1]


def loss_state(container: Container, settle: float = 1.0) -> tuple[bool, str]:
    """:func:`describe_loss`, and whether the container still runs after all."""
    import docker.errors
    import requests.exceptions

    deadline = time.monotonic() + settle
    while True:
        try:
            container.reload()
        except docker.errors.NotFound:
            return False, f"container {container.short_id} removed"
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            # Its engine is gone too (stopped, or a remote node's engine lost)
            return False, f"container {container.short_id}: {first_line(exc)}"
        status = container.status
        if status not in ("running", "removing") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if status == "removing":
        return False, f"container {container.short_id} removed"
    if status != "running":
        code = container.attrs.get("State", {}).get("ExitCode")
        return False, f"container {container.short_id} {status} ({code})"
    return True, f"container {container.short_id} is running but its tmux server is gone"
