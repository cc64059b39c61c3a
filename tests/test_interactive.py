"""Interactive agents end to end: the fake agent driven by the engine (host tmux, containers)."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from luzia.agents import BUILTIN_PROFILES
from luzia.config import Config
from luzia.dispatcher import ResponsiveDispatcher
from luzia.errors import UsageError
from luzia.jobs import JobState
from tests.conftest import Events, idle, waiting

AGENT_ENV = {
    "FAKE_AGENT_THINK": "0.2",
    "FAKE_AGENT_DROP_FAST_ENTER": "1",  # an Enter glued to the paste is lost, as in Ink TUIs
}
PROFILE = dataclasses.replace(
    BUILTIN_PROFILES["fake-agent"], name="fake", command="bash ./fake-agent", start_timeout=30
)
"""The built-in profile's patterns, with the agent run from the workspace."""


ASKS_FIRST = dataclasses.replace(
    PROFILE,
    name="asks-first",
    command="read -rp 'Trust the files in this folder? [y/n] ' a && [[ $a == y ]] "
    "&& bash ./fake-agent",
)
"""An agent that asks a question before its first prompt, as Claude Code and Codex do."""

NO_PROMPT = dataclasses.replace(
    PROFILE, name="no-prompt", command="bash --norc", prompt="never shown", start_timeout=1
)
"""An agent whose prompt luzia does not recognise (a profile behind the agent's version)."""


@pytest.fixture
def dispatcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ResponsiveDispatcher]:
    monkeypatch.setenv("LUZIA_NO_AUTOSTART", "1")
    d = ResponsiveDispatcher(
        home=tmp_path / "home",
        config=Config(agents={"fake": PROFILE, "asks-first": ASKS_FIRST, "no-prompt": NO_PROMPT}),
    )
    engine = d.start_background_monitor()
    yield d
    d.clean(all=True)
    engine.stop()
    d.close()


def test_interactive_session_with_follow_up_question_and_exit(
    dispatcher: ResponsiveDispatcher, agent_repo: Path, backend: str
) -> None:
    job_id = dispatcher.dispatch_task(
        "edit hello.txt: hello from the agent",
        workdir=agent_repo,
        backend=backend,
        agent="fake",
        env=AGENT_ENV,
    )
    assert dispatcher.get_status(job_id).mode == "interactive"
    events = Events(dispatcher, job_id)
    events.until(lambda e: e.state is JobState.RUNNING and "task" in e.reason, "the task ran")
    events.until(idle("waiting at its prompt"), "the first turn ended")
    assert "hello from the agent" in (agent_repo / "hello.txt").read_text()

    dispatcher.send_input(job_id, "ask: Allow edit to second.txt?\nedit second.txt: follow-up")
    events.until(lambda e: e.state is JobState.RUNNING, "the follow-up started")
    question = events.until(waiting(), "the question")
    assert "Allow edit to second.txt?" in question.reason

    argv = dispatcher.attach_command(job_id)
    person = pexpect.spawn(
        argv[0], argv[1:], env={**os.environ, "TERM": "xterm"}, dimensions=(40, 120), timeout=20
    )
    try:
        person.expect(re.escape("[y/n]"))
        person.send("y")
        person.expect("Turn 2 done")
        person.sendcontrol("b")
        person.send("d")
        person.expect(pexpect.EOF)
    finally:
        person.close(force=True)
    events.until(idle("waiting at its prompt"), "the answered turn ended")
    assert "follow-up" in (agent_repo / "second.txt").read_text()

    dispatcher.send_input(job_id, "exit 4")
    job = dispatcher.wait_for_job(job_id, timeout=30)
    assert (job.state, job.exit_code) == (JobState.FAILED, 4)
    log = dispatcher.read_log(job_id, plain=True).decode()
    assert "Allow edit to second.txt?" in log

    diff = dispatcher.diff_job(job_id)
    assert "+hello from the agent" in diff and "+follow-up" in diff
    sha = dispatcher.commit_job(job_id, branch=f"luzia/{job_id}")
    committed = subprocess.run(
        ["git", "-C", str(agent_repo), "show", "--name-only", "--format=%B", sha],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "hello.txt" in committed and "second.txt" in committed and job_id in committed
    dispatcher.revert_job(job_id)
    assert not (agent_repo / "hello.txt").exists() and not (agent_repo / "second.txt").exists()


def test_a_question_before_the_first_prompt_waits_for_a_person(
    dispatcher: ResponsiveDispatcher, agent_repo: Path
) -> None:
    job_id = dispatcher.dispatch_task(
        "edit trusted.txt: yes",
        workdir=agent_repo,
        backend="local",
        agent="asks-first",
        env=AGENT_ENV,
    )
    events = Events(dispatcher, job_id)
    question = events.until(waiting(), "the start-up question")
    assert "Trust the files in this folder? [y/n]" in question.reason
    assert not (agent_repo / "trusted.txt").exists(), "the task went in before the answer"
    dispatcher.send_input(job_id, "y")
    events.until(idle("waiting at its prompt"), "the task's turn ended")
    assert (agent_repo / "trusted.txt").read_text() == "yes\n"


def test_input_reaches_an_agent_whose_prompt_never_showed(
    dispatcher: ResponsiveDispatcher, agent_repo: Path
) -> None:
    """luzia says so and looks on for the prompt; what a person sends meanwhile is typed."""
    job_id = dispatcher.dispatch_task("x", workdir=agent_repo, backend="local", agent="no-prompt")
    Events(dispatcher, job_id).until(idle("showed no prompt within 1 s"), "giving up")
    dispatcher.send_input(job_id, "echo typed > sent.txt; exit 3")
    job = dispatcher.wait_for_job(job_id, timeout=30)
    assert (job.state, job.exit_code) == (JobState.FAILED, 3)
    assert (agent_repo / "sent.txt").read_text() == "typed\n"


def test_question_answered_no_skips_the_edit(
    dispatcher: ResponsiveDispatcher, agent_repo: Path
) -> None:
    job_id = dispatcher.dispatch_task(
        "ask: Allow edit to nope.txt?\nedit nope.txt: should not exist",
        workdir=agent_repo,
        backend="local",
        agent="fake",
        env=AGENT_ENV,
    )
    events = Events(dispatcher, job_id)
    events.until(waiting(), "the question")
    dispatcher.send_input(job_id, "n", enter=False)
    events.until(idle("waiting at its prompt"), "the turn ended")
    assert not (agent_repo / "nope.txt").exists()
    dispatcher.send_input(job_id, "/exit")
    assert dispatcher.wait_for_job(job_id, timeout=30).state is JobState.COMPLETED


def test_long_silent_stretch_is_not_a_turn_end(
    dispatcher: ResponsiveDispatcher, agent_repo: Path
) -> None:
    job_id = dispatcher.dispatch_task(
        "silent 1.5\nedit late.txt: after the silence",
        workdir=agent_repo,
        backend="local",
        agent="fake",
        env=AGENT_ENV,
    )
    events = Events(dispatcher, job_id)
    events.until(idle("waiting at its prompt"), "the turn ended")
    assert (agent_repo / "late.txt").exists(), "idle was reported during the silent stretch"
    dispatcher.kill_job(job_id)
    assert dispatcher.wait_for_job(job_id, timeout=10).state is JobState.KILLED


def test_command_mode_rejects_an_interactive_agent(dispatcher: ResponsiveDispatcher) -> None:
    with pytest.raises(
        UsageError, match="is interactive and has no exec_command; it cannot run in command mode"
    ):
        dispatcher.dispatch_task("x", agent="fake", mode="command", workdir="/tmp")
