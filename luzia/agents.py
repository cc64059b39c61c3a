"""Agent profiles: how to start an agent, see that it is ready, hand it a task, see a turn end.

A job's ``agent`` is either a profile name (built in, or ``[agents.<name>]`` in the config)
or a plain command template. A profile with ``delivery = "prompt"`` makes an interactive job:
the agent starts in the pane, the task is pasted at its prompt, follow-ups come with
``luzia send``. With ``delivery = "argument"`` the task goes into ``{task}`` in the command and
the job ends when the agent exits.

Config (every key but ``command`` optional)::

    [agents.claude]
    command = "claude"                 # started in the workspace
    delivery = "prompt"                # "prompt" (interactive) | "argument" ({task} in command)
    prompt = '(?m)^\\s*>\\s*$'         # regex: the agent is ready for input (on screen)
    busy = 'esc to interrupt'          # regex: still working, even if the prompt shows
    questions = ['Do you want to', '\\[y/n\\]']  # regexes: waiting for a person's answer
    delay_enter = 0.5                  # seconds between pasting a task and pressing Enter
    quiet = 1.0                        # seconds without output that end a turn
    start_timeout = 60                 # seconds for the first prompt to appear
    secret_env = ["ANTHROPIC_*"]       # more names of secret variables (see luzia.jobenv)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Delivery = Literal["prompt", "argument"]
DELIVERIES: tuple[Delivery, ...] = ("prompt", "argument")


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """How luzia drives one kind of agent; see the module docstring for each field."""

    name: str
    command: str
    delivery: Delivery = "prompt"
    prompt: str | None = None
    busy: str | None = None
    questions: tuple[str, ...] = field(default_factory=tuple)
    delay_enter: float = 0.3
    quiet: float = 0.5
    start_timeout: float = 60.0
    secret_env: tuple[str, ...] = field(default_factory=tuple)

    @property
    def interactive(self) -> bool:
        return self.delivery == "prompt"


BUILTIN_PROFILES: dict[str, AgentProfile] = {
    profile.name: profile
    for profile in (
        AgentProfile(
            name="claude",
            command="claude",
            prompt=r"(?m)^[│\s]*>\s",
            busy=r"esc to interrupt",
            questions=(r"Do you want to", "\u276f 1\\. Yes"),
            delay_enter=0.5,
            quiet=1.5,
        ),
        AgentProfile(
            name="aider",
            command="aider",
            prompt=r"(?m)^> $",
            questions=(r"\(Y\)es/\(N\)o",),
            quiet=1.0,
        ),
        AgentProfile(
            name="fake-agent",
            command="fake-agent",
            prompt=r"(?m)^>\s*$",
            busy=r"esc to interrupt",
            questions=(r"\[y/n\]\s*$",),
            delay_enter=0.2,
            quiet=0.3,
        ),
    )
}
"""Profiles for agents in the field; their patterns follow what those CLIs print today.

``capture-pane`` drops trailing spaces, so no pattern may require one at the end of a line.
"""


def resolve_profile(agent: str | None, configured: dict[str, AgentProfile]) -> AgentProfile | None:
    """The profile ``agent`` names (config first, then built-in), or ``None`` for a command."""
    if agent is None:
        return None
    return configured.get(agent) or BUILTIN_PROFILES.get(agent)
