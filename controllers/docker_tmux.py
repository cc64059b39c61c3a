"""A shell pane in a tmux server inside a Docker container."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from controllers.container import (
    WORKSPACE,
    ContainerSpec,
    create_container,
    describe_loss,
    find_container,
    loss_state,
    remove_container,
)
from controllers.control_mode import ControlModeClient
from controllers.controller import TmuxController, session_argv, session_commands
from controllers.docker_engine import docker_client, endpoint_args, translate_docker_errors
from controllers.errors import ContainerGone, ControllerError, DockerUnavailable

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

TMUX_SOCKET = "/tmp/luzia-tmux.sock"
"""The container's tmux socket: ours alone, whatever else runs in the container."""


class DockerTmuxController(TmuxController):
    """Drives a pane of a tmux server inside a container.

    Commands travel over one long-lived ``docker exec -i ... tmux -C`` stream, so each
    costs about a millisecond instead of a ``docker exec`` apiece.

    Use :meth:`create` for a new hardened container (removed by ``close``), or
    :meth:`adopt` for one that already runs (left running by ``close``). ``docker_host``
    (``unix://``, ``tcp://``, ``ssh://``): the engine ``container`` belongs to, when it is not
    the one the environment points at.
    """

    def __init__(
        self,
        container: Container,
        *,
        owned: bool,
        session: str = "luzia",
        width: int = 200,
        height: int = 50,
        cwd: str | None = WORKSPACE,
        env: Mapping[str, str] | None = None,
        history_limit: int = 50_000,
        docker_host: str | None = None,
    ) -> None:
        docker_cli = shutil.which("docker")
        if docker_cli is None:
            raise DockerUnavailable(
                "the docker command-line client is needed for the tmux "
                "stream and is not on PATH (install docker-ce-cli or docker.io)"
            )
        self.container = container
        joined = False
        if not owned:  # a container we just created has no session yet: skip the round trip
            with translate_docker_errors(f"cannot check tmux in container {container.short_id}"):
                check = ["tmux", "-S", TMUX_SOCKET, "has-session", "-t", session]
                joined = container.exec_run(check).exit_code == 0
        # Another engine's container (a swarm node's): the stream goes to that engine.
        prefix = [
            docker_cli,
            *endpoint_args(docker_host),
            "exec",
            "-i",
            "-e",
            "LANG=C.UTF-8",
            container.id,
            "tmux",
            "-S",
            TMUX_SOCKET,
        ]
        argv = session_argv(
            prefix,
            session,
            width=width,
            height=height,
            cwd=cwd,
            env=env or {},
            history_limit=history_limit,
        )
        client = ControlModeClient(
            argv,
            env={k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")},
            startup_commands=session_commands(argv),
        )
        super().__init__(client, session, owned=owned, joined=joined)

    @classmethod
    def create(
        cls,
        image: str | None = None,
        *,
        workspace: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        user: str | None = None,
        memory: str | None = "2g",
        pids_limit: int | None = 512,
        cpus: float | None = None,
        name: str | None = None,
        network: str | None = None,
        volumes: Mapping[str, str] | None = None,
        mounts: Sequence[tuple[str, str, bool]] = (),
        client: docker.DockerClient | None = None,
        **tmux_options: object,
    ) -> DockerTmuxController:
        """Start a hardened container from ``image`` and a tmux shell pane in it.

        ``image`` defaults to :data:`controllers.image.DEFAULT_IMAGE`.
        The workspace is mounted at ``/workspace``; the agent runs as the workspace's
        owner (see :func:`controllers.container.default_user`) with every capability
        dropped, ``no-new-privileges`` and pid and memory limits; ``host.docker.internal``
        is the host. ``mounts``: more bind mounts, (host path, container path, read-only).
        """
        if image is None:
            from controllers.image import DEFAULT_IMAGE

            image = DEFAULT_IMAGE
        spec = ContainerSpec(
            image=image,
            workspace=Path(workspace) if workspace else None,
            env=env or {},
            labels=labels or {},
            user=user,
            memory=memory,
            pids_limit=pids_limit,
            cpus=cpus,
            name=name,
            network=network,
            volumes=volumes or {},
            mounts=mounts,
        )
        container = create_container(client or docker_client(), spec)
        try:
            return cls(container, owned=True, env=env, **tmux_options)  # type: ignore[arg-type]
        except BaseException:
            remove_container(container)
            raise

    @classmethod
    def adopt(
        cls,
        container: str | None = None,
        *,
        label: str | None = None,
        client: docker.DockerClient | None = None,
        **tmux_options: object,
    ) -> DockerTmuxController:
        """Drive a container that already runs (by id, name or a unique label).

        Joins luzia's tmux session in it if there is one, else starts it. ``close`` only
        detaches: the container is the user's.
        """
        found = find_container(client or docker_client(), container, label=label)
        return cls(found, owned=False, **tmux_options)  # type: ignore[arg-type]

    def kill(self) -> None:
        """Remove the container and everything running in it."""
        self._closing(f"container {self.container.short_id} removed by its controller", False)
        self.detach()
        remove_container(self.container)

    def stop(self, timeout: int = 5) -> None:
        """Stop the container but keep it, e.g. for inspection."""
        self._closing(f"container {self.container.short_id} stopped by its controller", False)
        self.detach()
        with translate_docker_errors(f"cannot stop container {self.container.short_id}"):
            self.container.stop(timeout=timeout)

    def _lost(self, exc: ControllerError) -> ControllerError:
        return ContainerGone(describe_loss(self.container))

    def _report_end(self) -> None:
        """The container's state names the cause; reading it takes Docker round trips (and
        up to a second while the engine tears the container down), so not on the reader."""
        threading.Thread(target=self._report_loss, name="luzia-pane-lost", daemon=True).start()

    def _report_loss(self) -> None:
        running, cause = loss_state(self.container)
        reason = self.client.exit_reason
        if not running:
            self._pane_lost(cause, stream_only=False)
        elif self.client.exit_announced:
            self._pane_lost(f"{cause} ({reason})", stream_only=False)
        else:
            name = self.container.short_id
            self._pane_lost(
                f"the docker exec stream ended ({reason}); container {name} still runs",
                stream_only=True,
            )
