"""An agent profile: how luzia starts an agent, sees it ready, hands it a task, sees a turn end.

A job's ``agent`` is either a profile name (built in, or ``[agents.<name>]`` in the config)
or a plain command template. A profile with ``delivery = "prompt"`` makes an interactive job:
the agent starts in the pane, the task is pasted at its prompt, follow-ups come with
``luzia send``. With ``delivery = "argument"`` the task goes into ``{task}`` in the command and
the job ends when the agent exits. An interactive profile with an ``exec_command`` can run in
command mode too (``--mode command``).

Config (every key but ``command`` optional)::

    [agents.claude]
    command = "claude"                 # started in the workspace
    delivery = "prompt"                # "prompt" (interactive) | "argument" ({task} in command)
    exec_command = "claude -p {task}"  # command mode for a "prompt" profile
    prompt = '(?m)^\\s*>\\s*$'         # regex: the agent is ready for input (on screen)
    busy = 'esc to interrupt'          # regex: still working, even if the prompt shows
    busy_title = '^[\u2800-\u28ff]'     # regex: the pane title while it works (a spinner)
    questions = ['Do you want to', '\\[y/n\\]']  # regexes, anywhere on screen: a person is asked
    question_title = 'Action Required' # regex: the pane title while it asks
    delay_enter = 0.5                  # seconds between pasting a task and pressing Enter
    quiet = 1.0                        # seconds without output that end a turn
    start_timeout = 60                 # seconds for the first prompt to appear
    secret_env = ["ANTHROPIC_*"]       # more names of secret variables (see luzia.jobenv)
    forward_env = ["ANTHROPIC_API_KEY"]  # copied from the dispatching shell when set; secret
    kind = "claude"                    # first-run state and outcome as for a built-in agent
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

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
    busy_title: str | None = None
    question_title: str | None = None
    delay_enter: float = 0.3
    quiet: float = 0.5
    start_timeout: float = 60.0
    secret_env: tuple[str, ...] = field(default_factory=tuple)
    exec_command: str | None = None
    forward_env: tuple[str, ...] = field(default_factory=tuple)
    kind: str | None = None

    @property
    def interactive(self) -> bool:
        return self.delivery == "prompt"

    @property
    def runs_commands(self) -> bool:
        """Whether a job can run it in command mode (the task in its command line)."""
        return not self.interactive or self.exec_command is not None

    def command_for(self, mode: str) -> str:
        """The command template a job in ``mode`` runs."""
        if mode == "command" and self.interactive and self.exec_command is not None:
            return self.exec_command
        return self.command

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AgentProfile:
        """The inverse of :meth:`to_dict` (JSON turned tuples into lists); unknown keys, from a
        newer luzia, are dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known
        }
        return cls(**values)
