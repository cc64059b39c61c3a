"""Which network a job's container joins, and luzia's own bridge where jobs cannot reach each other.

A job's ``network`` is ``bridge``, ``none`` or ``host`` (Docker's own), the name of a network the
user made, or by default luzia's network: a bridge created on first use with inter-container
traffic off (``enable_icc=false``), so a job reaches the internet and the host but never another
job's container. The setting is resolved at dispatch and carried in the job's launch record.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from luzia.errors import BackendError, UsageError

if TYPE_CHECKING:
    import docker
    from docker.models.networks import Network

DEFAULT_NETWORK = "luzia-jobs"
NETWORK_VAR = "LUZIA_JOBS_NETWORK"
"""Names luzia's own network instead of ``luzia-jobs`` (tests use one of their own)."""

ICC_OPTION = "com.docker.network.bridge.enable_icc"
MANAGED_LABEL = "luzia.managed"

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_create_lock = threading.Lock()


def managed_network() -> str:
    """The name of luzia's own network."""
    return os.environ.get(NETWORK_VAR) or DEFAULT_NETWORK


def is_own(name: str) -> bool:
    """Whether ``name`` is luzia's own network (``luzia-jobs`` always is)."""
    return name in (managed_network(), DEFAULT_NETWORK)


def check_name(name: str) -> str:
    """``name`` if it can name a network, else ``UsageError`` (``container:ID`` is refused too)."""
    if not re.fullmatch(_NAME, name):
        raise UsageError(
            f"network must be bridge, none, host or a Docker network's name, not {name!r}"
        )
    return name


def job_network(name: str | None, *, check: bool) -> str:
    """The network a job is dispatched with: ``name``, else luzia's own.

    With ``check``, a network that is neither Docker's own nor luzia's must exist when the Docker
    Engine answers (``UsageError`` if not); when it does not answer, starting the job checks.
    """
    chosen = check_name(name) if name is not None else managed_network()
    if not check or is_own(chosen):
        return chosen
    from controllers.container import DOCKER_NETWORK_MODES
    from controllers.docker_engine import docker_client

    if chosen in DOCKER_NETWORK_MODES:
        return chosen
    from controllers.errors import ControllerError

    try:
        client = docker_client()
    except ControllerError:
        return chosen
    if _find(client, chosen) is None:
        raise UsageError(_missing(chosen))
    return chosen


def container_network(client: docker.DockerClient, name: str | None) -> str:
    """What to create a job's container with for its ``network`` (``None``: luzia's own).

    Luzia's network is created if missing; two engines creating it at once agree on the oldest
    of the networks so named. One that lets containers reach each other is refused.
    """
    from controllers.container import DOCKER_NETWORK_MODES

    name = name or managed_network()
    if name in DOCKER_NETWORK_MODES:
        return name
    if not is_own(name):
        found = _find(client, name)
        if found is None:
            raise BackendError(_missing(name))
        return str(found.id)
    with _create_lock:
        network = _managed(client, name)
    if not isolated(network):
        raise BackendError(
            f"network {name} lets containers reach each other ({ICC_OPTION} is not false); "
            f"remove it (docker network rm {name}) and luzia creates it anew"
        )
    return str(network.id)


def isolated(network: Network) -> bool:
    """Whether containers on ``network`` cannot reach each other."""
    options = network.attrs.get("Options") or {}
    return bool(options.get(ICC_OPTION) == "false")


@dataclass(frozen=True)
class NetworkState:
    """What ``luzia doctor`` says about a network jobs may use."""

    status: Literal["ok", "warn", "fail"]
    detail: str
    fix: str | None = None


def describe(client: docker.DockerClient, name: str | None) -> NetworkState:
    """Whether the network exists and whether jobs on it can reach each other."""
    name = name or managed_network()
    if name == "none":
        return NetworkState("ok", "no network: jobs have only a loopback interface")
    if name == "host":
        return NetworkState(
            "warn",
            "the host's network: jobs reach every port of the host and what it reaches",
            'set network = "none" or leave it out for luzia\'s own network',
        )
    own = is_own(name)
    found = _find(client, name)
    if found is None:
        if own:
            return NetworkState(
                "ok", "not created yet: the first docker job creates it, jobs isolated"
            )
        return NetworkState("fail", "does not exist", f"docker network create {name}")
    if isolated(found):
        return NetworkState("ok", "exists; jobs on it cannot reach each other")
    if own:
        return NetworkState(
            "fail",
            "exists but lets containers reach each other; jobs refuse it",
            f"docker network rm {name} (luzia creates it anew)",
        )
    return NetworkState(
        "warn",
        "exists; jobs on it can reach each other's containers",
        f"leave network out for luzia's own network, or create {name} with -o {ICC_OPTION}=false",
    )


def _managed(client: docker.DockerClient, name: str) -> Network:
    from controllers.docker_engine import translate_docker_errors

    with translate_docker_errors(f"cannot set up network {name}"):
        found = _named(client, name)
        if not found:
            import docker.errors

            try:
                client.networks.create(
                    name,
                    driver="bridge",
                    options={ICC_OPTION: "false"},
                    labels={MANAGED_LABEL: "1"},
                    check_duplicate=True,
                )
            except docker.errors.APIError:
                # Another engine made it first (409), or its creation raced ours for a subnet.
                if not _named(client, name):
                    raise
            found = _named(client, name)
        if not found:
            raise BackendError(f"network {name} vanished as it was created; start the job again")
        oldest, *extra = sorted(found, key=lambda n: (n.attrs.get("Created", ""), n.id))
        for duplicate in extra:  # a race on an engine without unique names: keep one
            if duplicate.attrs.get("Labels", {}).get(MANAGED_LABEL) == "1":
                _remove_quietly(duplicate)
        return oldest


def _named(client: docker.DockerClient, name: str) -> list[Network]:
    """Every network called exactly ``name`` (the engine's name filter also matches parts)."""
    return [n for n in client.networks.list(names=[name]) if n.name == name]


def _find(client: docker.DockerClient, name: str) -> Network | None:
    """The network with this name or id, or ``None``."""
    import docker.errors

    from controllers.docker_engine import translate_docker_errors

    with translate_docker_errors(f"cannot inspect network {name}"):
        try:
            return client.networks.get(name)
        except docker.errors.NotFound:
            return None


def _remove_quietly(network: Network) -> None:
    import docker.errors

    # in use by a job that chose it an instant ago, or removed by the other engine: leave it
    with contextlib.suppress(docker.errors.APIError):
        network.remove()


def _missing(name: str) -> str:
    return (
        f"no Docker network {name!r}: create it (docker network create {name}) or choose "
        "bridge, none, host, or leave network out for luzia's own"
    )
