"""The turn watcher on a real pane, with agents that react slowly (as under load)."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import pytest

from controllers import LocalTmuxController
from luzia.agents import AgentProfile
from luzia.turns import TurnWatcher

PROFILE = AgentProfile(
    name="slow",
    command="bash ./slow-agent",
    prompt=r"(?m)^>\s*$",
    questions=(r"\[y/n\]\s*$",),
    delay_enter=0.05,
    quiet=0.3,
    start_timeout=30,
)

# Reads a task, asks, then waits before it reacts at all: its answer is not echoed by the
# terminal (read -s), as in raw-mode TUIs. The waits are the subject, a slow agent.
SLOW_AGENT = r"""
printf '> '
read -r task
printf 'Proceed? [y/n] '
if ! read -r -s -n1 -t "$ANSWER_WAIT" answer; then answer=timeout; fi
sleep "$REACT"
printf '%s\nDone.\n> ' "$answer"
read -r more
"""


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[LocalTmuxController]:
    (tmp_path / "slow-agent").write_text(SLOW_AGENT)
    with LocalTmuxController(cwd=tmp_path) as controller:
        controller.wait_for_shell_prompt(10)
        yield controller


class Reports:
    """What the watcher reported, in order."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[str, str]] = queue.Queue()

    def __call__(self, state: str, message: str, usage: dict[str, float]) -> None:
        self.queue.put((state, message))

    def next_end(self) -> tuple[str, str]:
        """The next report of a turn's end: ``idle`` or ``waiting``, with its message."""
        while True:
            state, message = self.queue.get(timeout=30)
            if state in ("idle", "waiting"):
                return state, message


def test_an_answer_is_not_taken_for_a_turn_end_before_the_agent_reacts(
    pane: LocalTmuxController,
) -> None:
    reports = Reports()
    watcher = TurnWatcher(pane, PROFILE, "go", reports)
    pane.send_keys("ANSWER_WAIT=60 REACT=1 bash ./slow-agent")
    watcher.start()
    try:
        assert reports.next_end() == ("waiting", "Proceed? [y/n]")
        watcher.submit("n", enter=False)
        assert reports.next_end() == ("idle", "waiting at its prompt")
        assert "n\nDone." in pane.capture_pane()
    finally:
        watcher.stop()


def test_output_while_the_turn_end_is_reported_is_not_missed(
    pane: LocalTmuxController,
) -> None:
    """The agent goes on by itself while the question is being reported (a slow report)."""
    seen_question = []

    def report(state: str, message: str, usage: dict[str, float]) -> None:
        if state == "waiting" and not seen_question:
            seen_question.append(pane.stream.position)
            with pane.stream.cond:
                pane.stream.cond.wait_for(lambda: pane.stream.position > seen_question[0], 30)
        reports(state, message, usage)

    reports = Reports()
    watcher = TurnWatcher(pane, PROFILE, "go", report)
    pane.send_keys("ANSWER_WAIT=0.5 REACT=0 bash ./slow-agent")
    watcher.start()
    try:
        assert reports.next_end() == ("waiting", "Proceed? [y/n]")
        assert reports.next_end() == ("idle", "waiting at its prompt")
        assert "timeout\nDone." in pane.capture_pane()
    finally:
        watcher.stop()


# Works, ends its turn, redraws a hint at the top and erases it (no sign of work), starts
# working by itself, then asks while a glyph above the question blinks five times a second.
BLINKING_AGENT = r"""
printf '> '
read -r task
printf 'working (esc to interrupt)'
sleep 0.3
printf '\r\033[2KDone.\n> '
sleep 1
printf '\0337\033[1;1Hhint: press ? for help\0338'
sleep 1
printf '\0337\033[1;1H\033[2K\0338'
sleep 1
printf '\r\033[2Kworking again (esc to interrupt)'
sleep 0.3
printf '\r\033[2KAllow it? [y/n] '
while :; do
  printf '\0337\033[3;1H*\0338'; sleep 0.1; printf '\0337\033[3;1H \0338'
  read -r -s -n1 -t 0.1 answer && break
done
printf '\nanswered %s\n> ' "$answer"
read -r more
"""

BLINKING = AgentProfile(
    name="blinking",
    command="bash ./blinking-agent",
    prompt=r"(?m)^>\s*$",
    busy="esc to interrupt",
    questions=(r"Allow it\? \[y/n\]\s*\Z",),  # last on the screen: once answered, history
    delay_enter=0.05,
    quiet=0.3,
    start_timeout=30,
)


def test_redraws_do_not_start_a_turn_and_a_blinking_question_holds(
    pane: LocalTmuxController, tmp_path: Path
) -> None:
    (tmp_path / "blinking-agent").write_text(BLINKING_AGENT)
    reports = Reports()
    watcher = TurnWatcher(pane, BLINKING, "go", reports)
    pane.send_keys("bash ./blinking-agent")
    watcher.start()
    try:
        seen = [reports.queue.get(timeout=30) for _ in range(4)]
        assert seen == [
            ("running", "working on the task"),
            ("idle", "waiting at its prompt"),
            ("running", "working"),  # the busy sign, not the hint drawn and erased before it
            ("waiting", "Allow it? [y/n]"),
        ]
        # Two seconds of blinking (ten redraws of the glyph) change nothing.
        with pane.stream.cond:
            start = pane.stream.position
            pane.stream.cond.wait_for(lambda: pane.stream.position >= start + 20 * 12, 30)
        assert reports.queue.empty(), reports.queue.get()
        watcher.submit("y", enter=False)
        assert reports.queue.get(timeout=30) == ("running", "working on the answer")
        assert reports.next_end() == ("idle", "waiting at its prompt")
        assert "answered y" in pane.capture_pane()
    finally:
        watcher.stop()
