"""aider in luzia: the built-in profile, first-run HOME and outcome, and the real aider 0.86.2
driven end to end against the scripted chat-completions server, in both modes."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from luzia.agents import BUILTIN_PROFILES, AgentProfile, SeedContext, agent_kind
from luzia.agents.aider import FLAGS, KIND, PRICES
from luzia.config import Config
from luzia.dispatcher import ResponsiveDispatcher
from luzia.jobs import Backend, JobState
from tests.agent_bins import AGENT_WAIT, agent_program
from tests.conftest import Events, idle, turn_usage, waiting
from tests.model_servers import openai_chat
from tests.model_servers.harness import Server
from tests.support import agent_pid

pytestmark = pytest.mark.timeout(2 * AGENT_WAIT)  # real agents under load: see AGENT_WAIT

# A log as tmux's pipe-pane writes it: colours, \r\n, the spinner drawn over with \b and \r.
FAILED_LOG = (
    "\x1b[0mAider v0.86.2\r\nModel: openai/scripted with whole edit format\r\n\r\n"
    "\u2591\u2588\x08\x08  \x08\x08\r\x1b[2K\u2588\u2591  Waiting for openai/scripted\r\x1b[2K"
    "\x1b[1;31mlitellm.BadRequestError: OpenAIException - scripted failure: the task asked \r\n"
    "for it\x1b[0m\r\n\r\n$ "
)


def test_outcome_reads_the_last_api_error() -> None:
    outcome = KIND.outcome(FAILED_LOG)
    assert outcome is not None and outcome.failed
    assert outcome.message == (
        "litellm.BadRequestError: OpenAIException - scripted failure: the task asked for it"
    )


def test_outcome_reads_an_error_printed_over_the_spinner() -> None:
    # As aider 0.86.2 printed it in a tmux pane (pipe-pane output).
    log = (
        "Repo-map: using 1024 tokens, auto refresh\r\n\r\n\u2591\u2588\x08\x08  \x08\x08"
        "\x1b[38;5;196mlitellm.BadRequestError: OpenAIException - scripted failure: the task "
        "asked for it\x1b[0m\r\n\r\n"
    )
    outcome = KIND.outcome(log)
    assert outcome is not None and outcome.failed
    assert outcome.message.startswith("litellm.BadRequestError: OpenAIException - scripted")


def test_outcome_keeps_the_hint_aider_adds_to_an_error() -> None:
    log = (
        "litellm.AuthenticationError: AuthenticationError: OpenAIException - bad key\r\n"
        "The API provider is not able to authenticate you. Check your API key.\r\n\r\n"
    )
    outcome = KIND.outcome(log)
    assert outcome is not None and outcome.failed
    assert outcome.message.endswith("Check your API key.")


def test_outcome_sums_usage_and_keeps_the_session_cost() -> None:
    log = (
        "hello.txt\r\nTokens: 596 sent, 10 received.\r\nApplied edit to hello.txt\r\n"
        "Tokens: 2.5k sent, 1.2k cache write, 12k received. Cost: $0.01 message, $0.03 session.\r\n"
    )
    outcome = KIND.outcome(log)
    assert outcome is not None and not outcome.failed
    assert outcome.usage == {"input_tokens": 3096, "output_tokens": 12010, "cost_usd": 0.03}


def test_outcome_retried_error_then_answer_is_a_success() -> None:
    log = (
        "litellm.InternalServerError: InternalServerError: OpenAIException - busy\r\n"
        "The API provider's servers are down or overloaded.\r\nRetrying in 0.2 seconds...\r\n"
        "Tokens: 100 sent, 5 received.\r\n"
    )
    outcome = KIND.outcome(log)
    assert outcome is not None and not outcome.failed


def test_outcome_without_a_model_says_what_to_set() -> None:
    log = (
        "No LLM model was specified and no API keys were provided.\r\n"
        "OpenRouter provides free and paid access to many LLMs.\r\n"
        "Waiting up to 5 minutes for you to finish in the browser...\r\n"
    )
    outcome = KIND.outcome(log)
    assert outcome is not None and outcome.failed and "AIDER_MODEL" in outcome.message
    waiting = "Waiting up to 5 minutes for you to finish in the browser...\nUse Control-C"
    assert any(re.search(q, waiting) for q in BUILTIN_PROFILES["aider"].questions)


def test_outcome_of_a_run_without_a_record_is_none() -> None:
    assert KIND.outcome("bash: aider: command not found\r\n") is None


def test_profile_prompt_matches_each_input_line_but_not_a_typed_task() -> None:
    profile = BUILTIN_PROFILES["aider"]
    assert agent_kind(profile) is KIND
    prompt = profile.prompt or ""
    for screen in ("\u2500\u2500\u2500\n>", "\u2500\nhello.txt\ndiff>", "ask>", "diff multi>"):
        assert re.search(prompt, screen), screen
    for screen in (
        "> write a.txt x",
        "> a pasted task\n>\n> with a blank line",
        "Add .aider* to .gitignore? (Y)es/(N)o [Yes]:",
    ):
        assert not re.search(prompt, screen), screen


def test_profile_question_is_an_unanswered_one() -> None:
    question = BUILTIN_PROFILES["aider"].questions[0]
    asked = "Open documentation url for more info? (Y)es/(N)o/(D)on't ask again [Yes]:"
    assert re.search(question, f"Warning for x\n{asked}")
    assert not re.search(question, f"{asked} n\nAider v0.86.2")
    assert not re.search(question, f"{asked}\nAider v0.86.2\n>")


def test_seed_home_copies_the_users_config_privately_and_turns_off_first_run(
    tmp_path: Path,
) -> None:
    user, home = tmp_path / "user", tmp_path / "job-home"
    (user / ".aider").mkdir(parents=True)
    (user / ".aider.conf.yml").write_text("model: openai/gpt-4o\n")
    (user / ".aider" / "oauth-keys.env").write_text("OPENROUTER_API_KEY=k\n")
    home.mkdir()
    KIND.seed_home(home, SeedContext(user_home=user, env={}))
    assert (home / ".aider.conf.yml").read_text() == "model: openai/gpt-4o\n"
    assert (home / ".aider" / "oauth-keys.env").read_text() == "OPENROUTER_API_KEY=k\n"
    analytics = json.loads((home / ".aider" / "analytics.json").read_text())
    assert analytics["permanently_disable"] and analytics["asked_opt_in"]
    assert json.loads((home / PRICES).read_text()), "an empty price list is fetched again"
    files = [p for p in home.rglob("*") if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)


def test_seed_home_without_user_config_writes_only_first_run_state(tmp_path: Path) -> None:
    home = tmp_path / "job-home"
    home.mkdir()
    KIND.seed_home(home, SeedContext(user_home=tmp_path / "nobody", env={}))
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()) == [
        ".aider/analytics.json",
        str(PRICES),
    ]


# The scripted server, over HTTP.


def _post(server: Server, body: Mapping[str, object]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"{server.url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


WHOLE_SYSTEM = {"role": "system", "content": "Return the entire file in a *file listing*."}
DIFF_SYSTEM = {"role": "system", "content": "Every edit must use a *SEARCH/REPLACE block*."}


def test_server_streams_a_whole_file_listing(model: Server) -> None:
    task = {"role": "user", "content": "write notes/a.txt hello there\n\nreminder text"}
    status, raw = _post(model, {"messages": [WHOLE_SYSTEM, task], "stream": True})
    assert status == 200
    events = [line[len("data: ") :] for line in raw.decode().splitlines() if line]
    assert events[-1] == "[DONE]"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == "notes/a.txt\n```\nhello there\n```\n"
    assert model.requests[-1]["messages"][-1] == task


def test_server_answers_a_search_replace_block_that_creates_the_file(model: Server) -> None:
    task = {"role": "user", "content": [{"type": "text", "text": "write b.txt two words"}]}
    status, raw = _post(model, {"messages": [DIFF_SYSTEM, task]})
    assert status == 200
    text = json.loads(raw)["choices"][0]["message"]["content"]
    assert text == "b.txt\n```\n<<<<<<< SEARCH\n=======\ntwo words\n>>>>>>> REPLACE\n```\n"


def test_server_says_ok_fails_on_request_and_lists_its_model(model: Server) -> None:
    hello = {"messages": [{"role": "user", "content": "hello"}]}
    assert json.loads(_post(model, hello)[1])["choices"][0]["message"]["content"] == "ok"
    status, raw = _post(model, {"messages": [{"role": "user", "content": "please fail"}]})
    assert status == 400 and "scripted failure" in json.loads(raw)["error"]["message"]
    with urllib.request.urlopen(f"{model.url}/v1/models", timeout=10) as response:
        assert json.load(response)["data"][0]["id"] == openai_chat.MODEL


# The real aider against the scripted server.


@pytest.fixture(scope="module")
def model() -> Iterator[Server]:
    with openai_chat.start() as server:
        yield server


def _on_host(profile: AgentProfile, program: Path, name: str) -> AgentProfile:
    """The built-in profile with the pinned aider's path for ``aider``."""

    def swap(command: str | None) -> str | None:
        return None if command is None else command.replace(" aider ", f" {program} ", 1)

    return dataclasses.replace(
        profile,
        name=name,
        command=swap(profile.command) or "",
        exec_command=swap(profile.exec_command),
        start_timeout=30,
    )


@pytest.fixture
def dispatcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Server
) -> Iterator[ResponsiveDispatcher]:
    program = agent_program("aider")
    local = _on_host(BUILTIN_PROFILES["aider"], program, "aider-host")
    # Without --yes-always, aider asks to add .aider* to .gitignore.
    asks = dataclasses.replace(
        local, name="aider-asks", command=local.command.replace(" --yes-always", "")
    )
    assert asks.command != local.command and FLAGS in local.command
    monkeypatch.setenv("LUZIA_NO_AUTOSTART", "1")
    monkeypatch.setenv("OPENAI_API_KEY", "scripted-key")
    monkeypatch.setenv("OPENAI_API_BASE", f"{model.url}/v1")
    monkeypatch.setenv("AIDER_MODEL", f"openai/{openai_chat.MODEL}")
    builtin = BUILTIN_PROFILES["aider"]
    asks_in_container = dataclasses.replace(
        builtin, name="aider-asks-docker", command=builtin.command.replace(" --yes-always", "")
    )
    config = Config(agents={p.name: p for p in (local, asks, asks_in_container)})
    d = ResponsiveDispatcher(home=tmp_path / "home", config=config)
    engine = d.start_background_monitor()
    yield d
    d.clean(all=True)
    engine.stop()
    d.close()


@dataclasses.dataclass(frozen=True)
class Where:
    """Where a job runs aider: the backend, the profile's name there, the job's image and env."""

    backend: Backend
    agent: str
    image: str | None
    env: dict[str, str]


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def where(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Server
) -> Where:
    """The pinned aider on this host (with a HOME of its own: the real user's is not the tests'
    to touch), or the built-in profile in the image holding the agents, where the model server
    is the host's."""
    if request.param == "local":
        home = tmp_path / "aider-home"
        home.mkdir()
        return Where("local", "aider-host", None, {"HOME": str(home)})
    image = str(request.getfixturevalue("agents_image"))
    monkeypatch.setenv("OPENAI_API_BASE", f"{model.container_url}/v1")
    return Where("docker", "aider", image, {})


def test_command_mode_writes_the_file_and_completes(
    dispatcher: ResponsiveDispatcher, agent_repo: Path, where: Where
) -> None:
    job_id = dispatcher.dispatch_task(
        "write made.txt made by aider",
        workdir=agent_repo,
        backend=where.backend,
        image=where.image,
        agent=where.agent,
        mode="command",
        env=where.env,
    )
    job = dispatcher.wait_for_job(job_id, timeout=AGENT_WAIT)
    assert job.state is JobState.COMPLETED, (job, dispatcher.read_log(job_id, plain=True))
    assert (agent_repo / "made.txt").read_text() == "made by aider\n"
    assert "+made by aider" in dispatcher.diff_job(job_id)
    assert job.usage.get("input_tokens", 0) > 0 and job.usage.get("output_tokens", 0) > 0


def test_command_mode_api_error_fails_with_its_message(
    dispatcher: ResponsiveDispatcher, agent_repo: Path, where: Where
) -> None:
    job_id = dispatcher.dispatch_task(
        "please fail",
        workdir=agent_repo,
        backend=where.backend,
        image=where.image,
        agent=where.agent,
        mode="command",
        env=where.env,
    )
    job = dispatcher.wait_for_job(job_id, timeout=AGENT_WAIT)
    assert job.state is JobState.FAILED, (job, dispatcher.read_log(job_id, plain=True))
    assert "scripted failure: the task asked for it" in (job.message or "")


def test_interactive_two_turns_both_edits_in_the_diff(
    dispatcher: ResponsiveDispatcher, agent_repo: Path, where: Where
) -> None:
    started = time.monotonic()
    job_id = dispatcher.dispatch_task(
        "write first.txt one\n\nand nothing else",  # a blank line shows as ">" when pasted
        workdir=agent_repo,
        backend=where.backend,
        image=where.image,
        agent=where.agent,
        env=where.env,
    )
    assert dispatcher.get_status(job_id).mode == "interactive"
    events = Events(dispatcher, job_id)
    events.until(idle("done"), "the first turn ended")
    print(f"aider {where.backend}: dispatch -> first idle {time.monotonic() - started:.1f} s")
    assert (agent_repo / "first.txt").read_text() == "one\n"

    dispatcher.send_input(job_id, "write second.txt two")
    events.until(lambda e: e.state is JobState.RUNNING, "the follow-up started")
    events.until(idle("done"), "the second turn ended")
    diff = dispatcher.diff_job(job_id, stat=True)
    assert "first.txt" in diff and "second.txt" in diff
    # aider's chat history and tags cache stay out: it put .aider* in .gitignore.
    assert ".gitignore" in diff and ".aider" not in diff.replace(".gitignore", "")
    diff = dispatcher.diff_job(job_id)
    assert "+one" in diff and "+two" in diff and "+.aider*" in diff


def test_a_start_up_question_waits_for_a_person(
    dispatcher: ResponsiveDispatcher, agent_repo: Path, where: Where
) -> None:
    asks = "aider-asks" if where.backend == "local" else "aider-asks-docker"
    job_id = start(dispatcher, agent_repo, dataclasses.replace(where, agent=asks), "hello")
    events = Events(dispatcher, job_id)
    question = events.until(waiting(), "the start-up question")
    assert "Add .aider* to .gitignore (recommended)? (Y)es/(N)o" in question.reason
    dispatcher.send_input(job_id, "n")
    events.until(idle("done"), "the task's turn ended")
    assert not (agent_repo / ".gitignore").exists()
    assert "ok" in dispatcher.read_log(job_id, plain=True).decode()


# -- its state, from its notifications ------------------------------------------------------


def start(d: ResponsiveDispatcher, repo: Path, where: Where, task: str) -> str:
    """An interactive aider job doing ``task``."""
    return d.dispatch_task(
        task, workdir=repo, backend=where.backend, image=where.image, agent=where.agent,
        env=where.env,
    )  # fmt: skip


def test_turn_ends_by_its_notification_with_the_replys_tokens(
    dispatcher: ResponsiveDispatcher, agent_repo: Path, where: Where
) -> None:
    job_id = start(dispatcher, agent_repo, where, "write a.txt one")
    end = Events(dispatcher, job_id).until(idle("done"), "the notification's turn end")
    assert (agent_repo / "a.txt").read_text() == "one\n"
    usage = turn_usage(dispatcher, end)  # read off its Tokens: line
    assert usage.get("input_tokens", 0) > 0 and usage.get("output_tokens", 0) > 0, usage
    dispatcher.kill_job(job_id)


def test_an_api_error_mid_turn_ends_the_turn(
    dispatcher: ResponsiveDispatcher, agent_repo: Path, where: Where
) -> None:
    job_id = start(dispatcher, agent_repo, where, "please break")
    events = Events(dispatcher, job_id)
    events.until(lambda e: e.state is JobState.IDLE, "the broken turn's end")
    dispatcher.send_input(job_id, "write after.txt fine")
    events.until(lambda e: e.state is JobState.RUNNING, "the next turn")
    events.until(idle("done"), "the next turn's end")
    assert (agent_repo / "after.txt").read_text() == "fine\n"
    dispatcher.kill_job(job_id)


def test_a_killed_agent_ends_the_job(
    dispatcher: ResponsiveDispatcher, agent_repo: Path, where: Where
) -> None:
    job_id = start(dispatcher, agent_repo, where, "say hi")
    Events(dispatcher, job_id).until(idle("done"), "the turn's end")
    os.kill(agent_pid(dispatcher.get_status(job_id), "aider"), signal.SIGKILL)
    ended = dispatcher.wait_for_job(job_id, timeout=AGENT_WAIT)
    assert (ended.state, ended.exit_code) == (JobState.FAILED, 128 + signal.SIGKILL), ended
