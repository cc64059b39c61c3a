"""Building the agent image: ``docker import`` of the offline root filesystem, or ``docker build``
on the Dockerfile, the choice between them, and the build-once ``ensure_agent_image``."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controllers.docker_engine import docker_client, translate_docker_errors
from controllers.errors import ImageBuildError, ImageNotFound, InvalidInput
from controllers.image.rootfs import AGENT_HOME, write_rootfs_tar

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

    def summary(self) -> str:
        """One line for people, e.g. ``built luzia-agent:latest (offline) in 0.8 s, 14.2 MB``."""
        return (
            f"built {self.tag} ({self.method}) in {self.seconds:.1f} s, "
            f"{self.size_bytes / 1e6:.1f} MB"
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


def _import_offline(client: docker.DockerClient, tag: str) -> None:
    repository, version = _check_tag(tag)
    buffer = io.BytesIO()
    write_rootfs_tar(buffer)
    buffer.seek(0)
    with translate_docker_errors(f"docker import of {tag} failed", ImageBuildError):
        reply = client.api.import_image(
            src=buffer, repository=repository, tag=version, changes=list(_IMAGE_CHANGES)
        )
    _raise_stream_errors(f"docker import of {tag} failed", str(reply).splitlines())


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


def _resolve_method(client: docker.DockerClient, method: str) -> str:
    if method not in METHODS:
        raise InvalidInput(f"unknown build method {method!r}: choose one of {', '.join(METHODS)}")
    if method != "auto":
        return method
    has_dockerfile = (AGENT_CONTEXT_DIR / "Dockerfile").is_file()
    if has_dockerfile and _inspect(client, BASE_IMAGE) is not None:
        return "dockerfile"
    return "offline"


def build_agent_image(
    tag: str = DEFAULT_IMAGE,
    *,
    method: str = "auto",
    client: docker.DockerClient | None = None,
) -> BuildResult:
    """Build the agent image as ``tag`` and say how (``offline`` or ``dockerfile``).

    ``method="auto"`` uses the Dockerfile only when its base image is already here, so it
    never waits on a registry; otherwise it assembles the image offline from this host.
    """
    _check_tag(tag)
    started = time.monotonic()
    client = docker_client(client)
    chosen = _resolve_method(client, method)
    previous = _inspect(client, tag)
    if chosen == "offline":
        _import_offline(client, tag)
    else:
        _build_dockerfile(client, tag)
    info = _inspect(client, tag)
    if info is None:
        raise ImageBuildError(f"built {tag} ({chosen}), but the engine does not list it")
    _remove_superseded(client, previous["Id"] if previous else None, str(info["Id"]))
    return BuildResult(
        tag=tag,
        method=chosen,
        seconds=time.monotonic() - started,
        size_bytes=int(info.get("Size") or 0),
        image_id=str(info["Id"]),
    )


def ensure_agent_image(
    tag: str = DEFAULT_IMAGE, *, client: docker.DockerClient | None = None
) -> str:
    """Return ``tag``, building it (``auto``) only when the engine does not have it yet."""
    client = docker_client(client)
    if _inspect(client, tag) is None:
        build_agent_image(tag, method="auto", client=client)
    return tag
