"""Push an agent image to a registry, so every node of a cluster (``backend = "swarm"``) can
pull it: a swarm task starts from an image its node pulls, never from the manager's store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from controllers.docker_engine import docker_client, first_line, translate_docker_errors
from controllers.errors import ImageBuildError

if TYPE_CHECKING:
    import docker


def registry_name(image: str, registry: str) -> str:
    """``image`` as it is named in ``registry`` (``host:port``): ``host:port/name:tag``."""
    name = image.rsplit("/", 1)[-1] if "/" in image else image
    if ":" not in name:
        name += ":latest"
    return f"{registry.rstrip('/')}/{name}"


def push_agent_image(image: str, registry: str, client: docker.DockerClient | None = None) -> str:
    """Tag ``image`` for ``registry`` and push it there; the pushed name. A registry that
    refuses (unreachable, not trusted over HTTP) is an ``ImageBuildError`` saying so."""
    client = docker_client(client)
    target = registry_name(image, registry)
    repository, _, tag = target.rpartition(":")
    with translate_docker_errors(f"cannot tag {image} as {target}"):
        client.images.get(image).tag(repository, tag)
    with translate_docker_errors(f"cannot push {target}"):
        for line in client.images.push(repository, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise ImageBuildError(
                    f"cannot push {target}: {first_line(Exception(line['error']))}"
                )
    return target
