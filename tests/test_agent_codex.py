"""Codex CLI in luzia: the scripted Responses server, the profile's seed and outcome, and the
real Codex 0.147 driven by luzia on both backends against that server."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import stat
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from luzia.agents import SeedContext
from luzia.agents.codex import KIND, PROFILE, dump_toml, exec_outcome
from luzia.config import Config
from luzia.dispatcher import ResponsiveDispatcher
from luzia.jobs import JobState
from tests.agent_bins import AGENT_WAIT, agent_program
from tests.conftest import Events, idle, turn_usage, waiting
from tests.model_servers import openai_responses
from tests.model_servers.harness import OUTPUT_TOKENS, Server, input_tokens
from tests.support import agent_pid

pytestmark = pytest.mark.timeout(2 * AGENT_WAIT)  # real agents under load: see AGENT_WAIT


@pytest.fixture
def server() -> Iterator[Server]:
    with openai_responses.start() as running:
        yield running


def post(server: Server, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(
        server.url + "/v1/responses",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sse_data(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


CONTEXT = user("<environment_context>\n  <cwd>/workspace</cwd>\n</environment_context>")
CUSTOM_TOOLS = [{"type": "custom", "name": "apply_patch"}, {"type": "function", "name": "x"}]


# The scripted server


def test_server_writes_with_apply_patch_then_says_so(server: Server) -> None:
    body = {"model": "m", "stream": True, "tools": CUSTOM_TOOLS}
    status, text = post(server, {**body, "input": [CONTEXT, user("write a.txt hi there")]})
    events = sse_data(text)
    assert status == 200
    assert [e["type"] for e in events] == [
        "response.created",
        "response.output_item.added",
        "response.output_item.done",
        "response.completed",
    ]
    call = events[2]["item"]
    assert call["type"] == "custom_tool_call" and call["name"] == "apply_patch"
    assert call["input"] == "*** Begin Patch\n*** Add File: a.txt\n+hi there\n*** End Patch\n"
    assert events[3]["response"]["usage"]["output_tokens"] > 0

    result = {"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "ok"}
    status, text = post(server, {**body, "input": [CONTEXT, user("write a.txt hi"), call, result]})
    deltas = [e["delta"] for e in sse_data(text) if e["type"] == "response.output_text.delta"]
    assert deltas == ["wrote a.txt"]
    assert len(server.requests) == 2


def test_server_falls_back_to_exec_command(server: Server) -> None:
    tools = [{"type": "function", "name": "exec_command"}]
    _, text = post(server, {"tools": tools, "input": [user("write b.txt it's")]})
    call = sse_data(text)[2]["item"]
    assert call["type"] == "function_call" and call["name"] == "exec_command"
    assert json.loads(call["arguments"]) == {"cmd": "printf '%s\\n' 'it'\"'\"'s' > b.txt"}


def test_server_fails_a_failing_task_with_a_400(server: Server) -> None:
    status, text = post(server, {"input": [user("please fail")]})
    assert status == 400
    assert json.loads(text)["error"]["message"].startswith("scripted failure")


def test_server_lists_models(server: Server) -> None:
    with urllib.request.urlopen(server.url + "/v1/models", timeout=10) as reply:
        assert json.load(reply)["data"][0]["id"] == openai_responses.MODEL


# What `codex exec --json` printed, as a pane's pipe-pane log holds it


def log_of(*records: dict[str, Any], noise: str = "") -> str:
    lines = [json.dumps(r) for r in records]
    return "\x1b[?2004l\r$ codex exec --json 'task'\r\n" + noise + "\r\n".join(lines) + "\r\n"


STARTED = {"type": "thread.started", "thread_id": "t1"}
WARNING = {"type": "item.completed", "item": {"id": "i0", "type": "error", "message": "metadata"}}


def test_outcome_of_a_completed_turn_keeps_tokens_and_last_words() -> None:
    log = log_of(
        STARTED,
        WARNING,
        {"type": "turn.started"},
        {"type": "error", "message": "Reconnecting... 2/5 (stream disconnected)"},
        {"type": "item.completed", "item": {"type": "agent_message", "text": "wrote a.txt"}},
        {"type": "turn.completed", "usage": {"input_tokens": 200, "output_tokens": 20}},
        noise="\x1b[33mWARNING: proceeding\x1b[0m\r\n",
    )
    outcome = exec_outcome(log)
    assert outcome is not None
    assert not outcome.failed
    assert outcome.message == "wrote a.txt"
    assert outcome.usage == {"input_tokens": 200, "output_tokens": 20}


def test_outcome_of_a_failed_turn_is_its_error_message() -> None:
    body = json.dumps({"error": {"message": "scripted failure", "type": "invalid_request_error"}})
    outcome = KIND.outcome(
        log_of(
            STARTED,
            {"type": "turn.started"},
            {"type": "error", "message": body},
            {"type": "turn.failed", "error": {"message": body}},
        )
    )
    assert outcome is not None and outcome.failed
    assert outcome.message == "scripted failure"


def test_outcome_of_a_fatal_error_without_a_turn() -> None:
    outcome = exec_outcome(log_of(STARTED, {"type": "error", "message": "unauthorized"}))
    assert outcome is not None and outcome.failed and outcome.message == "unauthorized"


def test_no_outcome_without_codex_records() -> None:
    assert exec_outcome("$ codex exec --json 'x'\r\nbash: codex: command not found\r\n") is None
    assert exec_outcome(log_of(STARTED, {"type": "turn.started"})) is None


# The first-run HOME of a job's container


def seeded(tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    home = tmp_path / "job-home"
    home.mkdir()
    KIND.seed_home(home, SeedContext(user_home=tmp_path / "user", env=env or {}))
    config = home / ".codex" / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    return tomllib.loads(config.read_text())


def test_seed_without_user_config_turns_sandbox_off_and_trusts_the_workspace(
    tmp_path: Path,
) -> None:
    config = seeded(tmp_path)
    assert config["sandbox_mode"] == "danger-full-access"
    assert config["approval_policy"] == "never"
    assert config["projects"]["/workspace"] == {"trust_level": "trusted"}
    assert config["check_for_update_on_startup"] is False
    assert config["analytics"] == {"enabled": False}
    assert "model_provider" not in config
    assert not (tmp_path / "job-home" / ".codex" / "auth.json").exists()


def test_seed_merges_the_users_config_and_copies_auth(tmp_path: Path) -> None:
    user_codex = tmp_path / "user" / ".codex"
    user_codex.mkdir(parents=True)
    (user_codex / "config.toml").write_text(
        'model = "gpt-5.5"\nmodel_provider = "proxy"\nsandbox_mode = "workspace-write"\n'
        "[analytics]\nenabled = true\n"
        '[projects."/home/me/src"]\ntrust_level = "trusted"\n'
        '[model_providers.proxy]\nname = "proxy"\nbase_url = "http://host.docker.internal:4000/v1"\n'
        'wire_api = "responses"\nenv_key = "OPENAI_API_KEY"\n'
        "[tui]\nnotifications = true\n"
    )
    (user_codex / "auth.json").write_text('{"OPENAI_API_KEY": "sk-user"}')
    env = {"OPENAI_BASE_URL": "http://elsewhere/v1"}
    config = seeded(tmp_path, env)
    assert config["model"] == "gpt-5.5"
    assert config["sandbox_mode"] == "danger-full-access"
    assert config["analytics"] == {"enabled": True}
    assert config["tui"] == {"notifications": True, "show_tooltips": False, "animations": False}
    assert set(config["projects"]) == {"/home/me/src", "/workspace"}
    assert config["model_provider"] == "proxy"  # the user's choice beats OPENAI_BASE_URL
    assert config["model_providers"]["proxy"]["base_url"] == "http://host.docker.internal:4000/v1"
    auth = tmp_path / "job-home" / ".codex" / "auth.json"
    assert auth.read_text() == '{"OPENAI_API_KEY": "sk-user"}'
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600


def test_seed_makes_openai_base_url_a_provider(tmp_path: Path) -> None:
    config = seeded(tmp_path, {"OPENAI_BASE_URL": "http://host.docker.internal:4000/v1"})
    provider = config["model_providers"][config["model_provider"]]
    assert provider["base_url"] == "http://host.docker.internal:4000/v1"
    assert provider["wire_api"] == "responses"
    assert provider["env_key"] == "OPENAI_API_KEY"


def test_seed_ignores_a_broken_user_config(tmp_path: Path) -> None:
    (tmp_path / "user" / ".codex").mkdir(parents=True)
    (tmp_path / "user" / ".codex" / "config.toml").write_text("model = \n")
    assert seeded(tmp_path)["approval_policy"] == "never"


def test_toml_writer_round_trips() -> None:
    data: dict[str, Any] = {
        'quote"d key': 'a "b" \\ \x7f \x01 é 🎉\nline',
        "n": -3,
        "f": 1.5e100,
        "inf": float("inf"),
        "t": True,
        "when": datetime(2026, 11, 29, 21, 0, tzinfo=UTC),
        "list": [1, "two", [3.0], {"inline": "table", "x y": False}],
        "empty": {},
        "a": {"b": {"c": 1}, "d": "e"},
        "projects": {"/workspace": {"trust_level": "trusted"}},
    }
    assert tomllib.loads(dump_toml(data)) == data


# The profile against today's screens (bottom lines of capture-pane, trailing spaces dropped)

IDLE = """• wrote a.txt
────────────────────────────────────────
\u203a Explain this codebase
  gpt-5.5 default · /workspace"""

BUSY = """\u203a write a.txt hi
• Working (0s • esc to interrupt)
\u203a Explain this codebase
  gpt-5.5 default · /workspace"""

TRUST = """> You are in /workspace
  Do you trust the contents of this directory? Working with untrusted contents
\u203a 1. Yes, continue
  2. No, quit
  Press enter to continue"""

EDITS = """    1 +again f
  Would you like to make the following edits?
\u203a 1. Yes, proceed (y)
  2. Yes, and don't ask again for these files (a)
  3. No, and tell Codex what to do differently (esc)
  Press enter to confirm or esc to cancel"""


def first_question(screen: str) -> str | None:
    for pattern in PROFILE.questions:
        if match := re.search(pattern, screen):
            return next(line for line in screen.splitlines() if match.group(0) in line).strip()
    return None


def test_profile_patterns_read_todays_screens() -> None:
    assert PROFILE.prompt and PROFILE.busy
    assert re.search(PROFILE.prompt, IDLE) and not re.search(PROFILE.busy, IDLE)
    assert first_question(IDLE) is None
    assert re.search(PROFILE.busy, BUSY) and first_question(BUSY) is None
    assert not re.search(PROFILE.prompt, TRUST)
    assert (first_question(TRUST) or "").startswith("Do you trust the contents of this directory?")
    assert first_question(EDITS) == "Would you like to make the following edits?"


# The real Codex 0.147, driven by luzia against the scripted server

MODEL = "gpt-5.5"
"""A model Codex 0.147 knows: it offers ``apply_patch`` and asks no model-migration question."""


def user_config(base_url: str, trusted: str | None) -> str:
    """The ``~/.codex/config.toml`` of a user who pointed Codex at a proxy and runs it unsandboxed
    (this host has no bubblewrap)."""
    trust = f'[projects."{trusted}"]\ntrust_level = "trusted"\n' if trusted else ""
    return (
        f'model = "{MODEL}"\nmodel_provider = "scripted"\napproval_policy = "never"\n'
        'sandbox_mode = "danger-full-access"\ncheck_for_update_on_startup = false\n'
        f"{trust}"
        f'[model_providers.scripted]\nname = "scripted"\nbase_url = "{base_url}/v1"\n'
        'wire_api = "responses"\nenv_key = "OPENAI_API_KEY"\n'
    )


def local_env(tmp_path: Path, server: Server, *, trusted: Path | None) -> dict[str, str]:
    """The job's environment on this host: Codex on PATH and a HOME of a configured user."""
    user_home = tmp_path / "user"
    (user_home / ".codex").mkdir(parents=True)
    (user_home / ".codex" / "config.toml").write_text(
        user_config(server.url, str(trusted) if trusted else None)
    )
    program = agent_program("codex")
    return {
        "PATH": f"{program.parent}:{os.environ['PATH']}",
        "HOME": str(user_home),
        "CODEX_HOME": str(user_home / ".codex"),
        "OPENAI_API_KEY": "sk-test",
    }


def two_turns(d: ResponsiveDispatcher, job_id: str, repo: Path, label: str) -> None:
    """The task's turn and a follow-up's, both edits in the job's diff."""
    started = time.monotonic()
    events = Events(d, job_id)
    events.until(idle("done"), "the first turn ended")
    print(f"codex {label}: dispatch -> first idle {time.monotonic() - started:.2f} s")
    assert (repo / "first.txt").read_text() == "one\n"
    d.send_input(job_id, "write second.txt two")
    events.until(lambda e: e.state is JobState.RUNNING, "the follow-up started")
    events.until(idle("done"), "the follow-up ended")
    assert (repo / "second.txt").read_text() == "two\n"
    diff = d.diff_job(job_id)
    assert "+one" in diff and "+two" in diff


def test_local_interactive_two_turns(
    dispatcher: ResponsiveDispatcher, server: Server, repo: Path, tmp_path: Path
) -> None:
    env = local_env(tmp_path, server, trusted=repo)
    job_id = dispatcher.dispatch_task(
        "write first.txt one", workdir=repo, backend="local", agent="codex", env=env
    )
    assert dispatcher.get_status(job_id).mode == "interactive"
    two_turns(dispatcher, job_id, repo, "local interactive")


def test_local_untrusted_workspace_waits_with_the_trust_question(
    dispatcher: ResponsiveDispatcher, server: Server, repo: Path, tmp_path: Path
) -> None:
    env = local_env(tmp_path, server, trusted=None)
    job_id = dispatcher.dispatch_task(
        "write first.txt one", workdir=repo, backend="local", agent="codex", env=env
    )
    events = Events(dispatcher, job_id)
    question = events.until(waiting(), "the trust question")
    assert "Do you trust the contents of this directory?" in question.reason
    assert not server.requests and not (repo / "first.txt").exists()
    dispatcher.send_input(job_id, "")  # "Press enter to continue": 1. Yes, continue
    events.until(idle("done"), "the task's turn ended")
    assert (repo / "first.txt").read_text() == "one\n"


def test_local_command_mode_completes(
    dispatcher: ResponsiveDispatcher, server: Server, repo: Path, tmp_path: Path
) -> None:
    env = local_env(tmp_path, server, trusted=repo)
    job_id = dispatcher.dispatch_task(
        "write first.txt one", workdir=repo, backend="local", agent="codex", mode="command", env=env
    )
    job = dispatcher.wait_for_job(job_id, timeout=AGENT_WAIT)
    assert (job.state, job.exit_code) == (JobState.COMPLETED, 0), job
    assert (repo / "first.txt").read_text() == "one\n"


def test_local_command_mode_fails_with_the_agents_message(
    dispatcher: ResponsiveDispatcher, server: Server, repo: Path, tmp_path: Path
) -> None:
    env = local_env(tmp_path, server, trusted=repo)
    job_id = dispatcher.dispatch_task(
        "please fail", workdir=repo, backend="local", agent="codex", mode="command", env=env
    )
    job = dispatcher.wait_for_job(job_id, timeout=AGENT_WAIT)
    assert job.state is JobState.FAILED
    assert "scripted failure: the task asked for it" in (job.message or "")


@pytest.fixture(scope="session")
def codex_image(agents_image: str) -> str:
    """The suite's image holding the pinned agents (``luzia image build --agent``'s code)."""
    return agents_image


def container_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str) -> None:
    """The dispatching user: their HOME holds ``config``; the job's agent HOME is seeded from it."""
    user_home = tmp_path / "user"
    (user_home / ".codex").mkdir(parents=True)
    (user_home / ".codex" / "config.toml").write_text(config)
    monkeypatch.setenv("HOME", str(user_home))


@pytest.mark.docker
def test_docker_interactive_two_turns(
    dispatcher: ResponsiveDispatcher,
    server: Server,
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    codex_image: str,
) -> None:
    container_user(tmp_path, monkeypatch, user_config(server.container_url, trusted=None))
    job_id = dispatcher.dispatch_task(
        "write first.txt one",
        workdir=repo,
        backend="docker",
        image=codex_image,
        agent="codex",
        env={"OPENAI_API_KEY": "sk-test"},
    )
    two_turns(dispatcher, job_id, repo, "docker interactive")


@pytest.mark.docker
def test_docker_command_mode_with_openai_base_url(
    dispatcher: ResponsiveDispatcher,
    server: Server,
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    codex_image: str,
) -> None:
    container_user(tmp_path, monkeypatch, f'model = "{MODEL}"\n')
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": server.container_url + "/v1"}
    ids = [
        dispatcher.dispatch_task(
            task,
            workdir=repo,
            backend="docker",
            image=codex_image,
            agent="codex",
            mode="command",
            env=env,
        )
        for task in ("write first.txt one", "please fail")
    ]
    done, failed = (dispatcher.wait_for_job(job_id, timeout=AGENT_WAIT) for job_id in ids)
    assert (done.state, done.exit_code) == (JobState.COMPLETED, 0), done
    assert (repo / "first.txt").read_text() == "one\n"
    assert failed.state is JobState.FAILED
    assert "scripted failure: the task asked for it" in (failed.message or "")


# -- its state, from its own hooks ----------------------------------------------------------

ASKING = dataclasses.replace(
    PROFILE, name="codex-ask", command="codex -c approval_policy='\"untrusted\"'"
)
"""Codex that asks before it runs a command (a job's seeded config says never)."""


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def where(
    request: pytest.FixtureRequest,
    server: Server,
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """How a job runs Codex on each backend, against the scripted server."""
    if request.param == "local":
        return {"backend": "local", "env": local_env(tmp_path, server, trusted=repo)}
    container_user(tmp_path, monkeypatch, user_config(server.container_url, trusted=None))
    image = str(request.getfixturevalue("agents_image"))
    return {"backend": "docker", "image": image, "env": {"OPENAI_API_KEY": "sk-test"}}


@pytest.fixture
def asking(home: Path, dispatcher: ResponsiveDispatcher) -> Iterator[ResponsiveDispatcher]:
    """A dispatcher that knows ``codex-ask``; the engine is the suite's."""
    d = ResponsiveDispatcher(home=home, config=Config(agents={ASKING.name: ASKING}))
    yield d
    d.close()


def test_turn_ends_by_its_stop_hook_with_the_turns_tokens(
    dispatcher: ResponsiveDispatcher, repo: Path, where: dict[str, Any]
) -> None:
    task = "write a.txt one"
    job_id = dispatcher.dispatch_task(task, workdir=repo, agent="codex", **where)
    end = Events(dispatcher, job_id).until(idle("done: wrote a.txt"), "the Stop hook's turn end")
    # Two responses (the tool call, then the answer), each 100 + len(task) tokens in.
    expected = {"input_tokens": 2 * input_tokens(task), "output_tokens": 2 * OUTPUT_TOKENS}
    assert turn_usage(dispatcher, end) == expected
    assert dispatcher.get_status(job_id).usage == expected
    dispatcher.kill_job(job_id)


def test_approval_question_waits_for_a_person_and_an_answer_goes_on(
    asking: ResponsiveDispatcher, repo: Path, where: dict[str, Any]
) -> None:
    job_id = asking.dispatch_task("run touch made.txt", workdir=repo, agent="codex-ask", **where)
    events = Events(asking, job_id)
    events.until(waiting("touch made.txt"), "the approval question")
    assert asking.get_status(job_id).state is JobState.WAITING
    assert not (repo / "made.txt").exists()
    asking.send_input(job_id, "")  # Enter: "1. Yes, proceed"
    events.until(lambda e: e.state is JobState.RUNNING, "the approved turn going on")
    events.until(idle("done: ran it"), "the turn's end")
    assert (repo / "made.txt").exists()
    asking.kill_job(job_id)


def test_an_api_error_mid_turn_ends_the_turn_by_the_screen(
    dispatcher: ResponsiveDispatcher, repo: Path, where: dict[str, Any]
) -> None:
    """Codex fires no hook for a failed turn: the screen ends it."""
    job_id = dispatcher.dispatch_task("please break", workdir=repo, agent="codex", **where)
    events = Events(dispatcher, job_id)
    events.until(idle("waiting at its prompt"), "the broken turn's end, by the screen")
    dispatcher.send_input(job_id, "write after.txt fine")
    events.until(lambda e: e.state is JobState.RUNNING, "the next turn")
    events.until(idle("done: wrote after.txt"), "the next turn's end")
    assert (repo / "after.txt").read_text() == "fine\n"
    dispatcher.kill_job(job_id)


def test_a_killed_agent_ends_the_job(
    dispatcher: ResponsiveDispatcher, repo: Path, where: dict[str, Any]
) -> None:
    job_id = dispatcher.dispatch_task("say hi", workdir=repo, agent="codex", **where)
    Events(dispatcher, job_id).until(idle("done"), "the turn's end")
    os.kill(agent_pid(dispatcher.get_status(job_id), "codex"), signal.SIGKILL)
    ended = dispatcher.wait_for_job(job_id, timeout=AGENT_WAIT)
    assert (ended.state, ended.exit_code) == (JobState.FAILED, 128 + signal.SIGKILL), ended
