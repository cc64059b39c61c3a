"""What a job runs with, fixed at dispatch: its resolved agent profile, the caller's PATH, the
network its container joins and its container's mounts, limits and user.

An engine may have been started long before, with another config file or environment. Like
pueue capturing the environment at ``add``, the dispatcher writes ``launch.json`` into the job's
directory with the job's row, and the engine starts the job from it, never from its own config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luzia.agents import AgentProfile
from luzia.container_settings import ContainerSettings

LAUNCH_FILE = "launch.json"


@dataclass(frozen=True, slots=True)
class Launch:
    """``profile``: the agent profile as resolved at dispatch (``None``: a plain command).
    ``caller_path``: the dispatching process's ``PATH``, which a local job runs with.
    ``network``: the container's network (``luzia.network``; ``None``: luzia's own).
    ``container``: its mounts, limits and user, resolved (``None``: a local job, or one
    dispatched before luzia recorded them).
    ``caller_home``: the dispatching user's ``HOME``, where a container job's agent HOME
    takes the user's own agent config and credentials from (``luzia.agents.home``)."""

    profile: AgentProfile | None = None
    caller_path: str | None = None
    network: str | None = None
    container: ContainerSettings | None = None
    caller_home: str | None = None
    retries: int = 0
    """How many times a swarm job runs again elsewhere when its node is lost (``luzia.swarm``)."""

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "caller_path": self.caller_path,
            "caller_home": self.caller_home,
            "retries": self.retries,
            "network": self.network,
            "profile": None,
            "container": None if self.container is None else self.container.to_dict(),
        }
        if self.profile is not None:
            data["profile"] = self.profile.to_dict()
        return json.dumps(data).encode()

    def container_view(self) -> dict[str, Any]:
        """What ``luzia status`` shows of a docker job's container: network, mounts, limits."""
        from luzia.network import managed_network

        shown = self.container.to_dict() if self.container is not None else {}
        return {"network": self.network or managed_network(), **shown}


def read_launch(job_dir: Path) -> Launch | None:
    """The job's launch record, or ``None`` for a job dispatched before luzia wrote one."""
    try:
        data = json.loads((job_dir / LAUNCH_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    raw = data.get("profile")
    profile = None
    if isinstance(raw, dict):
        profile = AgentProfile.from_dict(raw)
    container = data.get("container")
    return Launch(
        profile,
        _text(data.get("caller_path")),
        _text(data.get("network")),
        ContainerSettings.from_dict(container) if isinstance(container, dict) else None,
        _text(data.get("caller_home")),
        retries if isinstance(retries := data.get("retries"), int) else 0,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
