"""aider in luzia: its profile, its first-run HOME and its command-mode outcome.

aider asks setup questions on every start unless told not to ("Open documentation url for more
info?" for a model it does not know, "Would you like to see what's new in this version?"), and
looks up a price list and its own latest version on the internet. The flags below turn those off
for the run without writing to the user's files; ``--yes-always`` answers the questions edits
raise ("Create new file?"), so a turn never stops halfway, and adds ``.aider*`` to the
workspace's ``.gitignore`` when it is missing there, as aider recommends: otherwise its chat
history and tags cache (binary) land in ``luzia diff`` and ``luzia commit``. Git is luzia's
business (snapshots, ``luzia diff``/``commit``): aider's own commits would move the branch under
the job and make ``luzia commit`` refuse.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path

from luzia.agents.kind import (
    AgentKind,
    AgentState,
    Outcome,
    SeedContext,
    copy_private,
    plain_lines,
    read_json_object,
    write_private_json,
)
from luzia.agents.profile import AgentProfile
from luzia.signals import SIGNAL_VAR, Signal

FLAGS = (
    "--no-check-update --no-show-release-notes --no-analytics --no-show-model-warnings"
    " --no-auto-commits --no-dirty-commits --no-detect-urls --yes-always"
)
"""No update check, release notes, analytics or model warning; no git commits; no fetching URLs
found in a task; yes to the edit questions (and to ``.aider*`` in ``.gitignore``)."""

OFFLINE = "LITELLM_LOCAL_MODEL_COST_MAP=True"
"""litellm reads its bundled price list instead of fetching one (5 s timeout) at start."""

PROFILE = AgentProfile(
    name="aider",
    command=f"{OFFLINE} aider {FLAGS}",
    exec_command=f"{OFFLINE} aider {FLAGS} --message {{task}}",
    # The empty input line, last on the screen: "> ", or with the edit format and mode when
    # they are not the model's default: "diff> ", "ask> ", "diff multi> " (capture-pane drops
    # the space). Only the last line: a pasted task's blank lines show as ">" above it.
    prompt=r"(?:\A|\n)(?:[\w-]+ )*[\w-]*>\Z",
    busy=r"Waiting for \S+",
    # The last line, unanswered: "... (Y)es/(N)o [Yes]: " until a person types "n" after it
    # (a default taken with Enter leaves it as it was, with the next screen below it).
    # Without a model or an API key, aider waits 5 minutes for an OpenRouter login in a browser.
    questions=(r"\(Y\)es/\(N\)o.*\]:\Z", r"Waiting up to \d+ minutes for you to finish in the"),
    delay_enter=0.3,
    quiet=0.5,
    forward_env=(
        "AIDER_*",
        "OPENAI_API_KEY",
        "OPENAI_API_BASE",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "GEMINI_API_KEY",
        "DEEPSEEK_API_KEY",
        "OPENROUTER_API_KEY",
        "OLLAMA_API_BASE",
    ),
    kind="aider",
)

USER_FILES = (".aider.conf.yml", ".aider.model.settings.yml", ".aider.model.metadata.json")
"""The user's own aider config in their HOME, copied into a job's HOME."""

PRICES = Path(".aider/caches/model_prices_and_context_window.json")
"""aider's cached price list: fetched from GitHub when missing, empty or a day old."""

_ERROR = re.compile(r"litellm\.\w+(?:Error|Exception|Timeout)\b")
_TOKENS = re.compile(r"Tokens: (?P<sent>[\d.]+[kM]?) sent\b.*?(?P<received>[\d.]+[kM]?) received\.")
_COST = re.compile(r"Cost: \$(?P<message>[\d.]+) message, \$(?P<session>[\d.]+) session\.")
_RETRY = re.compile(r"Retrying in [\d.]+ seconds")
NO_MODEL = "No LLM model was specified and no API keys were provided."
NO_MODEL_HINT = (
    "; set AIDER_MODEL and the provider's key (e.g. OPENAI_API_KEY) where you dispatch, "
    "or model: in ~/.aider.conf.yml"
)


class AiderKind(AgentKind):
    name = "aider"
    program = "aider"
    profile = PROFILE

    def seed_home(self, home: Path, ctx: SeedContext) -> None:
        """The user's aider config and OpenRouter login; analytics off for good (no opt-in
        question); a price list in place so aider does not fetch one."""
        for name in USER_FILES:
            copy_private(ctx.user_home / name, home / name)
        copy_private(
            ctx.user_home / ".aider" / "oauth-keys.env", home / ".aider" / "oauth-keys.env"
        )
        analytics = {"uuid": str(uuid.uuid4()), "permanently_disable": True, "asked_opt_in": True}
        write_private_json(home / ".aider" / "analytics.json", analytics)
        if not read_json_object(ctx.user_home / PRICES) or not copy_private(
            ctx.user_home / PRICES, home / PRICES
        ):
            # Any entry will do: aider then takes model data from litellm's bundled list.
            write_private_json(home / PRICES, {"luzia-offline": {}})

    def signal_args(self) -> str:
        """aider runs its notifications command (through a shell) when a reply is done and
        it waits for the person."""
        return f"--notifications --notifications-command 'sh \"${SIGNAL_VAR}\" notify'"

    def read_signal(self, signal: Signal, host_path: Callable[[str], Path]) -> AgentState | None:
        """Its only signal: the reply is done (a question on the screen makes it waiting)."""
        return AgentState("idle", "done") if signal.name == "notify" else None

    def turn_usage(self, screen: str) -> dict[str, float]:
        """The reply's ``Tokens: 2.1k sent, 52 received. Cost: $0.01 message, ...`` line,
        the last one on the screen."""
        for line in reversed([_rendered(line) for line in screen.splitlines()]):
            if tokens := _TOKENS.search(line):
                usage = {
                    "input_tokens": float(_count(tokens["sent"])),
                    "output_tokens": float(_count(tokens["received"])),
                }
                if cost := _COST.search(line):
                    usage["cost_usd"] = float(cost["message"])
                return usage
        return {}

    def outcome(self, log: str) -> Outcome | None:
        """aider's last API error when nothing followed it but retries, else its usage lines.

        aider exits 0 after an API error in ``--message`` mode; its error is the paragraph
        starting ``litellm.<Kind>Error:`` (wrapped at the pane width), optionally followed by
        a hint line. ``Tokens: ... Cost: ...`` lines report each reply's usage.
        """
        lines = [_rendered(line) for line in plain_lines(log)]
        usage: dict[str, float] = {}
        error: str | None = None
        for index, line in enumerate(lines):
            if tokens := _TOKENS.search(line):
                usage["input_tokens"] = usage.get("input_tokens", 0) + _count(tokens["sent"])
                usage["output_tokens"] = usage.get("output_tokens", 0) + _count(tokens["received"])
                error = None
            if cost := _COST.search(line):
                usage["cost_usd"] = float(cost["session"])
            if found := _ERROR.search(line):  # the spinner may share its line
                error = _paragraph([line[found.start() :], *lines[index + 1 :]])
            elif _RETRY.search(line):
                error = None
        if error is None and NO_MODEL in lines:
            error = NO_MODEL.rstrip(".") + NO_MODEL_HINT
        if error is not None:
            return Outcome(failed=True, message=error, usage=usage)
        if usage:
            return Outcome(failed=False, message="", usage=usage)
        return None


def _rendered(line: str) -> str:
    """A line as the terminal shows it: the spinner redraws in place with carriage returns
    and backspaces."""
    shown: list[str] = []
    for char in line.rsplit("\r", 1)[-1]:
        if char == "\b":
            if shown:
                shown.pop()
        else:
            shown.append(char)
    return "".join(shown).strip()


def _paragraph(lines: list[str]) -> str:
    """The lines up to the next blank, retry or usage line, joined (rich wraps them)."""
    parts = []
    for line in lines:
        if not line or _RETRY.search(line) or _TOKENS.search(line):
            break
        parts.append(line)
    return " ".join(parts)


def _count(text: str) -> float:
    """aider's token counts: ``596``, ``2.5k``, ``12k``, ``1.2M``."""
    scale = {"k": 1e3, "M": 1e6}.get(text[-1], 1.0)
    return round(float(text.rstrip("kM")) * scale)


KIND = AiderKind()
