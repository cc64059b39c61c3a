"""The boundary to the Docker Engine: one client factory, one error translation.

Nothing above this module sees a ``docker.errors`` or ``requests`` exception; the
SDK is imported lazily so ``import controllers`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from controllers.errors import ContainerGone, ControllerError, DockerUnavailable, ImageNotFound

if TYPE_CHECKING:
    import docker

_FIX = "start the Docker Engine, or point DOCKER_HOST at it"


def docker_client(client: docker.DockerClient | None = None) -> docker.DockerClient:
    """``client`` itself, or a new one for the engine the environment points at."""
    if client is not None:
        return client
    import docker

    try:
        return docker.from_env()  # asks the engine for its API version: fails fast when down
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(
            f"cannot reach the Docker Engine ({first_line(exc)}): {_FIX}"
        ) from exc


@contextmanager
def translate_docker_errors(
    action: str, error: type[ControllerError] = ControllerError
) -> Iterator[None]:
    """Turn SDK failures during ``action`` into controller errors (``error`` by default)."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except requests.exceptions.ConnectionError as exc:
        raise DockerUnavailable(
            f"{action}: lost the Docker Engine ({first_line(exc)}); {_FIX}"
        ) from exc
    except docker.errors.ImageNotFound as exc:
        raise ImageNotFound(
            f"{action}: image not found ({first_line(exc)}); build it with `luzia image build`"
        ) from exc
    except docker.errors.NotFound as exc:
        raise ContainerGone(f"{action}: {first_line(exc)}") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise error(f"{action}: {first_line(exc)}") from exc


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
