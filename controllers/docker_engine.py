"""The boundary to the Docker Engine: one client factory, one error translation.

Nothing above this module sees a ``docker.errors`` or ``requests`` exception; the
SDK is imported lazily so ``import controllers`` stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


CONTEXT_PREFIX = "context:"
"""An endpoint ``context:NAME`` is the Docker CLI context NAME (``docker context ls``)."""


def endpoint_client(endpoint: str, timeout: int = 30) -> docker.DockerClient:
    """A client for ``endpoint``: a ``unix://``, ``tcp://`` (TLS from the environment, as the
    CLI does) or ``ssh://`` address, or ``context:NAME``: that Docker CLI context's host and
    TLS material, as ``docker --context NAME`` uses them."""
    import docker

    action = f"cannot reach the Docker Engine at {endpoint}"
    with translate_docker_errors(action, DockerUnavailable):
        if not endpoint.startswith(CONTEXT_PREFIX):
            return docker.from_env(
                environment={**os.environ, "DOCKER_HOST": endpoint},
                use_ssh_client=endpoint.startswith("ssh://"),
                timeout=timeout,
            )
        name = endpoint.removeprefix(CONTEXT_PREFIX)
        host, tls = _cli_context(name)
        if host is None:
            raise DockerUnavailable(f"{action}: no Docker context {name} (see docker context ls)")
        return docker.DockerClient(
            base_url=host, tls=tls, use_ssh_client=host.startswith("ssh://"), timeout=timeout
        )


def _cli_context(name: str) -> tuple[str | None, Any]:
    """A Docker CLI context's host and TLS settings, read from the CLI's own store
    (``$DOCKER_CONFIG`` or ``~/.docker``, ``contexts/{meta,tls}/SHA256(NAME)``). The SDK's
    ``ContextAPI`` looks for that store next to ``config.json`` and, when there is none (the
    CLI creates contexts without one), in the current directory."""
    import docker.tls

    store = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "contexts"
    digest = hashlib.sha256(name.encode()).hexdigest()
    try:
        meta = json.loads((store / "meta" / digest / "meta.json").read_text())
        endpoint = meta["Endpoints"]["docker"]
        host = str(endpoint["Host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, False
    material = store / "tls" / digest / "docker"
    ca, cert, key = (material / f for f in ("ca.pem", "cert.pem", "key.pem"))
    if not (ca.exists() or cert.exists()):
        return host, False
    return host, docker.tls.TLSConfig(
        client_cert=(str(cert), str(key)) if cert.exists() and key.exists() else None,
        ca_cert=str(ca) if ca.exists() else None,
        verify=ca.exists() and not endpoint.get("SkipTLSVerify", False),
    )


def endpoint_args(endpoint: str | None) -> list[str]:
    """The ``docker`` command line's options that talk to ``endpoint`` (none: the default)."""
    if not endpoint:
        return []
    if endpoint.startswith(CONTEXT_PREFIX):
        return ["--context", endpoint.removeprefix(CONTEXT_PREFIX)]
    return ["-H", endpoint]


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
