"""What a job runs with, fixed at dispatch: its resolved agent profile, the caller's PATH and the
network its container joins.

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

LAUNCH_FILE = "launch.json"


@dataclass(frozen=True, slots=True)
class Launch:
    """``profile``: the agent profile as resolved at dispatch (``None``: a plain command).
    ``caller_path``: the dispatching process's ``PATH``, which a local job runs with.
    ``network``: the container's network (``luzia.network``; ``None``: luzia's own)."""

    profile: AgentProfile | None = None
    caller_path: str | None = None
    network: str | None = None

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "caller_path": self.caller_path,
            "network": self.network,
            "profile": None,
        }
        if self.profile is not None:
            data["profile"] = self.profile.to_dict()
        return json.dumps(data).encode()


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
    path = data.get("caller_path")
    network = data.get("network")
    return Launch(
        profile,
        path if isinstance(path, str) else None,
        network if isinstance(network, str) else None,
    )
