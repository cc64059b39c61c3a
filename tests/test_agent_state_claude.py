"""Claude Code's state from its own hooks, on this host and in a container: a turn's end (the
``Stop`` hook, with the turn's tokens from its transcript), a permission question
(``--permission-mode default``) answered with ``luzia send``, an API error mid-turn, and the
agent killed under luzia."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from luzia import ResponsiveDispatcher
from luzia.agents.claude import PROFILE
from luzia.config import Config
from luzia.jobs import JobState
from tests.agent_bins import AGENT_WAIT
from tests.conftest import Events, idle, running, turn_usage, waiting
from tests.model_servers import anthropic
from tests.model_servers.harness import OUTPUT_TOKENS, Server, input_tokens
from tests.support import agent_pid, claude_env
from tests.test_agent_claude import local_env

pytestmark = [
    pytest.mark.timeout(2 * AGENT_WAIT),
    pytest.mark.xdist_group("claude"),
]

ASKING = dataclasses.replace(PROFILE, name="claude-ask", command="claude --permission-mode default")
"""Claude Code that asks before it runs a command (a job's seeded HOME says bypass)."""


@pytest.fixture
def model() -> Iterator[Server]:
    with anthropic.start() as server:
        yield server


@pytest.fixture
def d(home: Path, dispatcher: ResponsiveDispatcher) -> Iterator[ResponsiveDispatcher]:
    """A dispatcher that knows ``claude-ask``; the engine is the suite's."""
    asking = ResponsiveDispatcher(home=home, config=Config(agents={ASKING.name: ASKING}))
    yield asking
    asking.close()


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def where(
    request: pytest.FixtureRequest, tmp_path: Path, model: Server, repo: Path
) -> dict[str, Any]:
    """How a job runs Claude Code on each backend, against the scripted server."""
    if request.param == "local":
        return {"backend": "local", "env": local_env(tmp_path, model, trusted=str(repo))}
    image = str(request.getfixturevalue("agents_image"))
    return {"backend": "docker", "image": image, "env": claude_env(model.container_url)}


def test_turns_end_by_the_stop_hook_with_their_usage(
    d: ResponsiveDispatcher, repo: Path, where: dict[str, Any]
) -> None:
    task = "write a.txt one"
    job_id = d.dispatch_task(task, workdir=repo, agent="claude", **where)
    events = Events(d, job_id)
    end = events.until(idle("done: wrote a.txt"), "the Stop hook's turn end")
    assert (repo / "a.txt").read_text() == "one"
    # Two model calls in the turn (the tool call, then the answer), each 100 + len(task) in.
    assert turn_usage(d, end) == {
        "input_tokens": 2 * input_tokens(task),
        "output_tokens": 2 * OUTPUT_TOKENS,
    }

    d.send_input(job_id, "say hi")
    events.until(running, "the second turn")
    second = events.until(idle("done: ok"), "the second turn's end")
    usage = turn_usage(d, second)
    assert usage == {"input_tokens": input_tokens("say hi"), "output_tokens": OUTPUT_TOKENS}
    job = d.get_status(job_id)
    assert job.usage["output_tokens"] == 3 * OUTPUT_TOKENS
    d.kill_job(job_id)


def test_permission_question_waits_for_a_person_and_an_answer_goes_on(
    d: ResponsiveDispatcher, repo: Path, where: dict[str, Any]
) -> None:
    job_id = d.dispatch_task("run touch made.txt", workdir=repo, agent="claude-ask", **where)
    events = Events(d, job_id)
    # The hook's words, whether the dialog on the screen was seen first or not.
    events.until(waiting("Allow Bash: touch made.txt?"), "the permission question")
    assert d.get_status(job_id).state is JobState.WAITING
    assert not (repo / "made.txt").exists()

    d.send_input(job_id, "")  # Enter: "1. Yes"
    events.until(running, "the answered turn going on")
    events.until(idle("done: ran it"), "the turn's end")
    assert (repo / "made.txt").exists()
    d.kill_job(job_id)


def test_an_api_error_mid_turn_ends_the_turn(
    d: ResponsiveDispatcher, repo: Path, where: dict[str, Any]
) -> None:
    job_id = d.dispatch_task("please break", workdir=repo, agent="claude", **where)
    events = Events(d, job_id)
    events.until(idle("the turn failed: API Error: 400"), "the StopFailure hook's turn end")
    d.send_input(job_id, "write after.txt fine")
    events.until(running, "the next turn")
    events.until(idle("done: wrote after.txt"), "the next turn's end")
    assert (repo / "after.txt").read_text() == "fine"
    d.kill_job(job_id)


def test_a_killed_agent_ends_the_job(
    d: ResponsiveDispatcher, repo: Path, where: dict[str, Any]
) -> None:
    job_id = d.dispatch_task("say hi", workdir=repo, agent="claude", **where)
    events = Events(d, job_id)
    events.until(idle("done"), "the turn's end")
    os.kill(agent_pid(d.get_status(job_id), "claude"), signal.SIGKILL)
    ended = d.wait_for_job(job_id, timeout=AGENT_WAIT)
    assert ended.state is JobState.FAILED, ended
    assert ended.exit_code == 128 + signal.SIGKILL
