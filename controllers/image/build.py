"""Building the agent image: ``docker import`` of the offline root filesystem, or ``docker build``
on the Dockerfile, the choice between them, and the build-once ``ensure_agent_image``."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controllers.docker_engine import docker_client, translate_docker_errors
from controllers.errors import ImageBuildError, ImageNotFound, InvalidInput
from controllers.image.agents import HostAgent, add_agents, agents_in, find_agents, labels
from controllers.image.rootfs import AGENT_HOME, RootFS, assemble_rootfs

if TYPE_CHECKING:
    import docker

DEFAULT_IMAGE = "luzia-agent:latest"
BASE_IMAGE = "debian:bookworm-slim"
"""The Dockerfile's ``FROM``; ``auto`` uses the Dockerfile only when this is present locally."""

AGENT_CONTEXT_DIR = Path(__file__).resolve().parents[2] / "containers" / "agent"
"""The Dockerfile's build context; absent when luzia was installed from a wheel."""

METHODS = ("auto", "offline", "dockerfile")

_IMAGE_CHANGES = (
    "ENV PATH=/usr/local/bin:/usr/bin:/bin",
    "ENV LANG=C.UTF-8",
    f"ENV HOME={AGENT_HOME}",
    # tmux and agents pick their shell from $SHELL; without it a uid with no passwd entry
    # (``--user 12345``) would get /bin/sh.
    "ENV SHELL=/bin/bash",
    "ENV TERM=xterm-256color",
    "WORKDIR /workspace",
    "USER agent",
    'CMD ["sleep", "infinity"]',
    "LABEL luzia.image=agent",
    "LABEL luzia.image.method=offline",
)


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_agent_image` did."""

    tag: str
    method: str
    """``"offline"`` or ``"dockerfile"``: the path that actually ran."""
    seconds: float
    size_bytes: int
    image_id: str
    agents: dict[str, str] = field(default_factory=dict)
    """Agent name -> version, as recorded in the image's labels."""

    def summary(self) -> str:
        """One line for people, e.g. ``built luzia-agent:latest (offline) in 0.8 s, 14.2 MB``."""
        with_agents = ", ".join(f"{name} {version}" for name, version in self.agents.items())
        return (
            f"built {self.tag} ({self.method}) in {self.seconds:.1f} s, "
            f"{self.size_bytes / 1e6:.1f} MB" + (f"; agents: {with_agents}" if with_agents else "")
        )


def _check_tag(tag: str) -> tuple[str, str]:
    """``repo[:tag]`` -> (repository, tag); rejects what Docker would refuse anyway."""
    from docker.utils import parse_repository_tag

    if not tag or tag != tag.strip() or any(c.isspace() for c in tag) or "@" in tag:
        raise InvalidInput(f"invalid image tag {tag!r}: expected name[:tag], e.g. {DEFAULT_IMAGE}")
    repository, version = parse_repository_tag(tag)
    if not repository or repository != repository.lower():
        raise InvalidInput(f"invalid image tag {tag!r}: the name must be lowercase")
    return repository, version or "latest"


def _inspect(client: docker.DockerClient, tag: str) -> dict[str, Any] | None:
    """The engine's description of ``tag``, or None when there is no such image."""
    import docker.errors

    with translate_docker_errors(f"cannot inspect image {tag}", ImageBuildError):
        try:
            info: dict[str, Any] = client.api.inspect_image(tag)
        except docker.errors.ImageNotFound:
            return None
    return info


def image_exists(tag: str, client: docker.DockerClient | None = None) -> bool:
    """Whether the engine has ``tag`` locally (one inspect call)."""
    return _inspect(docker_client(client), tag) is not None


def _import_offline(client: docker.DockerClient, tag: str, agents: Sequence[HostAgent]) -> None:
    """One ``docker import`` of the base root filesystem with the agents in it.

    One import, not ``FROM base`` + ``COPY`` in a ``docker build``: measured here with the
    400 MB Claude Code binary, the import takes about 3 s and the legacy builder about 11 s
    (it stores the context, copies it into a container, then commits that as a layer).
    """
    repository, version = _check_tag(tag)
    fs = assemble_rootfs()
    add_agents(fs, agents)
    changes = list(_IMAGE_CHANGES)
    changes += [f"LABEL {key}={value}" for key, value in labels(agents).items()]
    if any(agent.name == "claude" for agent in agents):
        changes.append("ENV DISABLE_AUTOUPDATER=1")  # the image is read-only to the agent
    with translate_docker_errors(f"docker import of {tag} failed", ImageBuildError):
        reply = client.api.import_image(
            src=_tar_stream(fs),
            repository=repository,
            tag=version,
            changes=changes,
            stream_src=True,
        )
    _raise_stream_errors(f"docker import of {tag} failed", str(reply).splitlines())


def _tar_stream(fs: RootFS) -> Iterator[bytes]:
    """The plan as tar chunks, written by a thread into a pipe: agents are GBs, memory is not."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with open(write_fd, "wb") as out:
                fs.write_tar(out)
        except BaseException as exc:  # re-raised in the reading thread
            failure.append(exc)

    writer = threading.Thread(target=write, name="luzia-rootfs-tar", daemon=True)
    writer.start()
    with open(read_fd, "rb") as source:
        while chunk := source.read(1 << 20):
            yield chunk
    writer.join()
    if failure:
        raise ImageBuildError(f"cannot write the image's files: {failure[0]}") from failure[0]


def _check_agents(client: docker.DockerClient, tag: str, agents: Sequence[HostAgent]) -> None:
    """Each agent's ``--version`` in the new image, as ``agent``, with no network."""
    import docker.errors

    script = " && ".join(f"{agent.name} --version" for agent in agents)
    with translate_docker_errors(f"cannot check the agents in {tag}", ImageBuildError):
        container = client.containers.create(
            tag,
            ["bash", "-c", script],
            network_disabled=True,
            environment={"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
            labels={"luzia.image.check": tag},
        )
        try:
            container.start()
            status = container.wait(timeout=120)["StatusCode"]
            output = container.logs(stdout=True, stderr=True).decode(errors="replace")
        finally:
            with suppress(docker.errors.DockerException):
                container.remove(force=True)
    if status != 0:
        last = (output.strip() or f"exit {status}").splitlines()[-1]
        raise ImageBuildError(
            f"built {tag}, but an agent does not run in it ({script}): {last}; "
            "please report this with the output of: docker run --rm " + tag + " " + script
        )


def _raise_stream_errors(action: str, lines: Iterable[str | dict[str, Any]]) -> None:
    """The engine reports some failures inside a 200 reply, as ``{"error": ...}`` lines."""
    for line in lines:
        message = line if isinstance(line, dict) else _json_or_none(line)
        if message and message.get("error"):
            raise ImageBuildError(f"{action}: {str(message['error']).strip()}")


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _build_dockerfile(client: docker.DockerClient, tag: str) -> None:
    """``docker build containers/agent``, refusing up front when it would need a pull."""
    _check_tag(tag)
    if not (AGENT_CONTEXT_DIR / "Dockerfile").is_file():
        raise ImageBuildError(
            f"no Dockerfile at {AGENT_CONTEXT_DIR} (luzia installed without its source tree?): "
            "use --method offline, or run from a luzia checkout"
        )
    if _inspect(client, BASE_IMAGE) is None:
        raise ImageNotFound(
            f"the Dockerfile needs base image {BASE_IMAGE}, which is not present locally and "
            f"is not pulled here: `docker pull {BASE_IMAGE}` where a registry is reachable "
            "(or `docker load` it), or use --method offline"
        )
    with translate_docker_errors(f"docker build of {tag} failed", ImageBuildError):
        stream = client.api.build(
            path=str(AGENT_CONTEXT_DIR),
            tag=tag,
            pull=False,
            rm=True,
            forcerm=True,
            decode=True,
            labels={"luzia.image.method": "dockerfile"},
        )
        _raise_stream_errors(f"docker build of {tag} failed", stream)


def _remove_superseded(client: docker.DockerClient, old_id: str | None, new_id: str) -> None:
    """Drop the image the new build replaced under the tag, unless something still uses it."""
    import docker.errors
    import requests.exceptions

    if old_id is None or old_id == new_id:
        return
    # In use by a container, or tagged elsewhere: leave it be.
    with suppress(docker.errors.DockerException, requests.exceptions.RequestException):
        client.api.remove_image(old_id)


def _resolve_method(client: docker.DockerClient, method: str, agents: bool) -> str:
    if method not in METHODS:
        raise InvalidInput(f"unknown build method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "dockerfile" and agents:
        raise InvalidInput(
            "--agent copies this host's agents into the offline image; with --method dockerfile "
            "choose them with build args (CLAUDE_AGENT_SDK_VERSION, CODEX_VERSION, "
            "AIDER_VERSION: see containers/agent/README.md)"
        )
    if method != "auto":
        return method
    if agents:
        return "offline"
    has_dockerfile = (AGENT_CONTEXT_DIR / "Dockerfile").is_file()
    if has_dockerfile and _inspect(client, BASE_IMAGE) is not None:
        return "dockerfile"
    return "offline"


def build_agent_image(
    tag: str = DEFAULT_IMAGE,
    *,
    method: str = "auto",
    agents: Sequence[str] = (),
    client: docker.DockerClient | None = None,
) -> BuildResult:
    """Build the agent image as ``tag`` and say how (``offline`` or ``dockerfile``).

    ``method="auto"`` uses the Dockerfile only when its base image is already here, so it
    never waits on a registry; otherwise it assembles the image offline from this host.
    ``agents``: ``claude``, ``codex``, ``aider`` (each ``NAME`` or ``NAME=PATH``), copied from
    this host into the offline image and checked to run there.
    """
    _check_tag(tag)
    started = time.monotonic()
    host_agents = find_agents(agents)
    client = docker_client(client)
    chosen = _resolve_method(client, method, bool(host_agents))
    previous = _inspect(client, tag)
    if chosen == "offline":
        _import_offline(client, tag, host_agents)
    else:
        _build_dockerfile(client, tag)
    info = _inspect(client, tag)
    if info is None:
        raise ImageBuildError(f"built {tag} ({chosen}), but the engine does not list it")
    previous_id = previous["Id"] if previous else None
    if host_agents:
        try:
            _check_agents(client, tag, host_agents)
        except ImageBuildError:
            _restore(client, tag, str(info["Id"]), previous_id)
            raise
    _remove_superseded(client, previous_id, str(info["Id"]))
    return BuildResult(
        tag=tag,
        method=chosen,
        seconds=time.monotonic() - started,
        size_bytes=int(info.get("Size") or 0),
        image_id=str(info["Id"]),
        agents=labels_to_agents(info),
    )


def labels_to_agents(info: dict[str, Any]) -> dict[str, str]:
    """The agents an inspected image records in its labels."""
    return agents_in((info.get("Config") or {}).get("Labels"))


def _restore(client: docker.DockerClient, tag: str, new_id: str, previous_id: str | None) -> None:
    """A broken build gives the tag back to the image it replaced (or removes the tag)."""
    import docker.errors
    import requests.exceptions

    with suppress(docker.errors.DockerException, requests.exceptions.RequestException):
        client.api.remove_image(new_id, force=True)
        if previous_id is not None:
            repository, version = _check_tag(tag)
            client.api.tag(previous_id, repository, version)


def ensure_agent_image(
    tag: str = DEFAULT_IMAGE, *, client: docker.DockerClient | None = None
) -> str:
    """Return ``tag``, building it (``auto``) only when the engine does not have it yet."""
    client = docker_client(client)
    if _inspect(client, tag) is None:
        build_agent_image(tag, method="auto", client=client)
    return tag


@dataclass(frozen=True)
class ImageInfo:
    """One of luzia's agent images (label ``luzia.image=agent``), as ``luzia image ls`` shows it."""

    tags: list[str]
    image_id: str
    size_bytes: int
    created: float
    """Unix time."""
    method: str
    agents: dict[str, str]


def agent_images(client: docker.DockerClient | None = None) -> list[ImageInfo]:
    """luzia's images on this engine, newest first (one list call)."""
    client = docker_client(client)
    with translate_docker_errors("cannot list images", ImageBuildError):
        found = client.api.images(filters={"label": "luzia.image=agent"})
    images = [
        ImageInfo(
            tags=[t for t in (item.get("RepoTags") or []) if t != "<none>:<none>"],
            image_id=str(item["Id"]),
            size_bytes=int(item.get("Size") or 0),
            created=float(item.get("Created") or 0),
            method=(item.get("Labels") or {}).get("luzia.image.method", "?"),
            agents=agents_in(item.get("Labels")),
        )
        for item in found
    ]
    return sorted(images, key=lambda image: -image.created)


def image_agents(tag: str, client: docker.DockerClient | None = None) -> dict[str, str] | None:
    """The agents (name -> version) ``tag`` holds, or None when there is no such image."""
    info = _inspect(docker_client(client), tag)
    return None if info is None else labels_to_agents(info)


def image_labels(tag: str, client: docker.DockerClient | None = None) -> dict[str, str] | None:
    """``tag``'s labels ({} when it has none), or None when there is no such image."""
    info = _inspect(docker_client(client), tag)
    return None if info is None else dict((info.get("Config") or {}).get("Labels") or {})
