"""Waiting for a turn's end or a question (``wait_for_job(until=...)``, ``luzia wait --for``),
with the fake agent on the local backend."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from luzia.agents import BUILTIN_PROFILES
from luzia.config import Config
from luzia.dispatcher import ResponsiveDispatcher
from luzia.errors import UsageError, WaitTimeout
from luzia.jobs import JobState
from tests.test_cli_e2e import AGENT_ENV as CLI_AGENT_ENV
from tests.test_cli_e2e import BOUND, Luzia, assert_one_error_line
from tests.test_cli_e2e import luzia as luzia  # the fixture

AGENT_ENV = {"FAKE_AGENT_THINK": "0.2", "FAKE_AGENT_DROP_FAST_ENTER": "1"}
PROFILE = dataclasses.replace(
    BUILTIN_PROFILES["fake-agent"], name="fake", command="bash ./fake-agent", start_timeout=30
)


@pytest.fixture
def dispatcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ResponsiveDispatcher]:
    monkeypatch.setenv("LUZIA_NO_AUTOSTART", "1")
    d = ResponsiveDispatcher(home=tmp_path / "home", config=Config(agents={"fake": PROFILE}))
    engine = d.start_background_monitor()
    yield d
    d.clean(all=True)
    engine.stop()
    d.close()


def _agent(d: ResponsiveDispatcher, repo: Path, task: str) -> str:
    return d.dispatch_task(task, workdir=repo, backend="local", agent="fake", env=AGENT_ENV)


# ------------------------------------------------------------------------------ the API


def test_wait_until_idle_then_until_input(
    dispatcher: ResponsiveDispatcher, agent_repo: Path
) -> None:
    job_id = _agent(dispatcher, agent_repo, "edit a.txt: hi")
    job = dispatcher.wait_for_job(job_id, timeout=BOUND, until="idle")
    assert (job.state, job.message) == (JobState.IDLE, "waiting at its prompt")
    assert (agent_repo / "a.txt").read_text() == "hi\n"

    with pytest.raises(WaitTimeout):  # at its prompt: nobody is asked anything
        dispatcher.wait_for_job(job_id, timeout=0.3, until="input")

    dispatcher.send_input(job_id, "ask: Allow edit to b.txt?\nedit b.txt: yes")
    job = dispatcher.wait_for_job(job_id, timeout=BOUND, until="input")
    assert job.state is JobState.WAITING
    assert job.message == "Allow edit to b.txt? [y/n]"
    assert dispatcher.wait_for_job(job_id, timeout=BOUND, until="idle") == job


def test_a_wait_for_idle_right_after_send_waits_for_the_new_turn(
    dispatcher: ResponsiveDispatcher, agent_repo: Path
) -> None:
    """Not the idle of the turn before: send records the job running before it returns."""
    job_id = _agent(dispatcher, agent_repo, "edit a.txt: one")
    dispatcher.wait_for_job(job_id, timeout=BOUND, until="idle")
    for turn in range(3):
        dispatcher.send_input(job_id, f"think 0.5\nedit b.txt: {turn}")
        job = dispatcher.wait_for_job(job_id, timeout=BOUND, until="idle")
        assert job.message == "waiting at its prompt"
        assert (agent_repo / "b.txt").read_text().splitlines()[-1] == str(turn)


def test_wait_until_input_returns_a_job_that_ended_without_asking(
    dispatcher: ResponsiveDispatcher, agent_repo: Path
) -> None:
    job_id = _agent(dispatcher, agent_repo, "exit 5")
    job = dispatcher.wait_for_job(job_id, timeout=BOUND, until="input")
    assert (job.state, job.exit_code) == (JobState.FAILED, 5)


def test_wait_until_something_else_is_a_usage_error(
    dispatcher: ResponsiveDispatcher, workspace: Path
) -> None:
    job_id = dispatcher.dispatch_task("true", workdir=workspace, backend="local")
    with pytest.raises(UsageError, match="cannot wait for 'done'"):
        dispatcher.wait_for_job(job_id, timeout=BOUND, until="done")


# ------------------------------------------------------------------------------ the CLI


def test_cli_wait_for_idle_input_and_timeout(luzia: Luzia, agent_repo: Path) -> None:
    job_id = luzia.dispatch(
        "--backend", "local", "--agent", "fake",
        "--workdir", str(agent_repo), *CLI_AGENT_ENV, "edit a.txt: hi",
    )  # fmt: skip
    done = luzia.run("wait", "--for", "idle", job_id)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stdout.startswith(f"{job_id} idle ") and "waiting at its prompt" in done.stdout
    assert (agent_repo / "a.txt").read_text() == "hi\n"

    done = luzia.run("wait", "--for", "input", "--timeout", "0.3", job_id)
    assert done.returncode == 124, (done.stdout, done.stderr)
    assert f"job {job_id} is still idle; it goes on" in done.stderr

    luzia.ok("send", job_id, "ask: Allow edit to b.txt?\nedit b.txt: yes")
    done = luzia.run("wait", "--for", "input", "--json", job_id)
    assert done.returncode == 0, (done.stdout, done.stderr)
    [job] = json.loads(done.stdout)
    assert (job["id"], job["state"]) == (job_id, "waiting")
    assert job["message"] == "Allow edit to b.txt? [y/n]"


def test_cli_wait_for_input_on_a_job_that_ends_instead(
    luzia: Luzia,
    agent_repo: Path,
) -> None:
    job_id = luzia.dispatch(
        "--backend", "local", "--agent", "fake",
        "--workdir", str(agent_repo), *CLI_AGENT_ENV, "exit 0",
    )  # fmt: skip
    done = luzia.run("wait", "--for", "input", job_id)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert done.stdout.startswith(f"{job_id} completed (exit 0)"), done.stdout
    assert done.stderr == f"luzia: ended before waiting for a person: {job_id} completed\n"
    assert luzia.run("wait", job_id).returncode == 0  # --for end: the job's own code


def test_cli_wait_for_a_bad_value_is_one_line(luzia: Luzia, workspace: Path) -> None:
    job_id = luzia.dispatch("--backend", "local", "--workdir", str(workspace), "true")
    done = luzia.run("wait", "--for", "done", job_id)
    assert_one_error_line(done, "cannot wait for 'done'", "end, idle, input", code=2)
