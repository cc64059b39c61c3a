"""Claude Code in luzia: the profile, first-run HOME and outcome, and the real CLI (2.1.332)
driven end to end against the scripted Anthropic server, on both backends and in both modes."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from luzia.agents import BUILTIN_PROFILES, agent_kind
from luzia.agents.claude import KIND
from luzia.agents.kind import SeedContext
from luzia.dispatcher import ResponsiveDispatcher
from luzia.jobs import JobState
from tests.agent_bins import AGENT_WAIT, agent_program
from tests.conftest import Events, idle, running, waiting
from tests.model_servers import anthropic
from tests.model_servers.harness import Server
from tests.support import CLAUDE_KEY, claude_env

pytestmark = pytest.mark.timeout(2 * AGENT_WAIT)  # real agents under load: see AGENT_WAIT


# -- outcome --------------------------------------------------------------------------------


def result(**fields: object) -> str:
    base: dict[str, object] = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "wrote a.txt",
        "permission_denials": [],
        "total_cost_usd": 0.25,
        "usage": {"input_tokens": 20, "output_tokens": 42, "cache_read_input_tokens": 5},
    }
    return json.dumps({**base, **fields})


def terminal(*lines: str) -> str:
    """What pipe-pane writes: the shell's escapes around the agent's lines, CRLF ends."""
    return "".join(f"\x1b[0m{line}\r\n" for line in ["$ claude -p 'x'", *lines, "\x1b]133;D\x07$"])


def test_outcome_of_a_success_keeps_usage_and_final_words() -> None:
    log = terminal(json.dumps({"type": "system", "subtype": "init"}), result())
    outcome = KIND.outcome(log)
    assert outcome is not None and not outcome.failed
    assert outcome.message == "wrote a.txt"
    assert outcome.usage == {"input_tokens": 20, "output_tokens": 42, "cost_usd": 0.25}


def test_outcome_of_an_api_error_is_a_failure_with_its_message() -> None:
    record = result(is_error=True, result="API Error: 400 no such model", total_cost_usd=0)
    outcome = KIND.outcome(terminal(record))
    assert outcome is not None and outcome.failed
    assert outcome.message == "API Error: 400 no such model"


def test_outcome_of_an_error_subtype_names_it() -> None:
    outcome = KIND.outcome(terminal(result(subtype="error_max_turns", result=None)))
    assert outcome is not None and outcome.failed
    assert "error_max_turns" in outcome.message


def test_outcome_of_a_refused_tool_call_is_a_failure() -> None:
    denial = {"tool_name": "Write", "tool_input": {"file_path": "/w/a.txt", "content": "x"}}
    outcome = KIND.outcome(terminal(result(permission_denials=[denial])))
    assert outcome is not None and outcome.failed
    assert "Write /w/a.txt" in outcome.message


def test_outcome_reads_a_record_the_terminal_broke_over_lines() -> None:
    record = result(result="the last words")
    broken = [record[i : i + 50] for i in range(0, len(record), 50)]
    outcome = KIND.outcome(terminal(result(result="an earlier run"), *broken))
    assert outcome is not None and outcome.message == "the last words"


def test_no_result_record_is_no_outcome() -> None:
    assert KIND.outcome(terminal("Error: claude: command not found", '{"type": "system"}')) is None


def test_the_builtin_profile_is_this_kind() -> None:
    assert agent_kind(BUILTIN_PROFILES["claude"]) is KIND


# -- seed_home ------------------------------------------------------------------------------


def read_json(path: Path) -> dict[str, object]:
    value = json.loads(path.read_text())
    assert isinstance(value, dict)
    return value


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


def test_seed_home_answers_every_setup_screen(tmp_path: Path) -> None:
    home = tmp_path / "job-home"
    home.mkdir()
    KIND.seed_home(home, SeedContext(user_home=tmp_path / "nobody", env={}, workspace="/workspace"))
    state = read_json(home / ".claude.json")
    assert state["hasCompletedOnboarding"] is True
    assert state["projects"] == {"/workspace": {"hasTrustDialogAccepted": True}}
    assert "customApiKeyResponses" not in state
    settings = read_json(home / ".claude" / "settings.json")
    assert settings == {
        "permissions": {"defaultMode": "bypassPermissions"},
        "skipDangerousModePermissionPrompt": True,
        "prefersReducedMotion": True,
        "env": {"IS_SANDBOX": "1"},
    }
    assert private(home / ".claude.json") and private(home / ".claude" / "settings.json")


def test_seed_home_approves_the_environments_key_by_its_suffix_only(tmp_path: Path) -> None:
    home = tmp_path / "job-home"
    home.mkdir()
    ctx = SeedContext(user_home=tmp_path / "nobody", env={"ANTHROPIC_API_KEY": CLAUDE_KEY})
    KIND.seed_home(home, ctx)
    text = (home / ".claude.json").read_text()
    assert CLAUDE_KEY not in text
    assert read_json(home / ".claude.json")["customApiKeyResponses"] == {
        "approved": [CLAUDE_KEY[-20:]],
        "rejected": [],
    }


def test_seed_home_copies_the_users_login_and_merges_their_settings(tmp_path: Path) -> None:
    user = tmp_path / "user"
    (user / ".claude").mkdir(parents=True)
    (user / ".claude" / ".credentials.json").write_text('{"claudeAiOauth": {"accessToken": "t"}}')
    (user / ".claude" / "settings.json").write_text(
        json.dumps({"model": "sonnet", "permissions": {"allow": ["Bash(ls)"]}})
    )
    (user / ".claude.json").write_text(json.dumps({"oauthAccount": {"emailAddress": "me@x"}}))
    home = tmp_path / "job-home"
    home.mkdir()
    KIND.seed_home(home, SeedContext(user_home=user, env={}))
    credentials = home / ".claude" / ".credentials.json"
    assert credentials.read_text() == '{"claudeAiOauth": {"accessToken": "t"}}'
    assert private(credentials) and not credentials.is_symlink()
    settings = read_json(home / ".claude" / "settings.json")
    assert settings["model"] == "sonnet"
    assert settings["permissions"] == {"allow": ["Bash(ls)"], "defaultMode": "bypassPermissions"}
    assert read_json(home / ".claude.json")["oauthAccount"] == {"emailAddress": "me@x"}


# -- the real Claude Code -------------------------------------------------------------------


@pytest.fixture
def model() -> Iterator[Server]:
    with anthropic.start() as server:
        yield server


def local_env(tmp_path: Path, model: Server, trusted: str) -> dict[str, str]:
    """A person's HOME who has set up Claude Code and trusts ``trusted``; the pinned CLI first
    on PATH. (The kind's seed: bypass mode, as in a container.)"""
    home = tmp_path / "person"
    home.mkdir()
    KIND.seed_home(
        home,
        SeedContext(
            user_home=tmp_path / "nobody", env={"ANTHROPIC_API_KEY": CLAUDE_KEY}, workspace=trusted
        ),
    )
    bindir = agent_program("claude").parent
    return {
        **claude_env(model.url),
        "HOME": str(home),
        "PATH": f"{bindir}:{os.environ['PATH']}",
    }


def log_tail(d: ResponsiveDispatcher, job_id: str) -> str:
    return d.read_log(job_id, plain=True).decode(errors="replace")[-2000:]


def command_mode_outcomes(d: ResponsiveDispatcher, repo: Path, **dispatch: object) -> None:
    done = d.dispatch_task("write notes/a.txt hello from claude", workdir=repo, **dispatch)  # type: ignore[arg-type]
    job = d.wait_for_job(done, timeout=AGENT_WAIT)
    assert job.state is JobState.COMPLETED, (job.message, log_tail(d, done))
    assert (repo / "notes" / "a.txt").read_text() == "hello from claude"
    assert job.usage.get("output_tokens", 0) > 0

    failing = d.dispatch_task("please fail", workdir=repo, **dispatch)  # type: ignore[arg-type]
    job = d.wait_for_job(failing, timeout=AGENT_WAIT)
    assert job.state is JobState.FAILED
    assert job.message is not None and "scripted failure" in job.message


def interactive_two_turns(d: ResponsiveDispatcher, repo: Path, **dispatch: object) -> None:
    job_id = d.dispatch_task("write first.txt one", workdir=repo, agent="claude", **dispatch)  # type: ignore[arg-type]
    assert d.get_status(job_id).mode == "interactive"
    events = Events(d, job_id)
    events.until(idle("done"), "the first turn ended")
    assert (repo / "first.txt").read_text() == "one"

    d.send_input(job_id, "write second.txt two")
    events.until(running, "the second turn started")
    events.until(idle("done"), "the second turn ended")
    diff = d.diff_job(job_id)
    assert "+one" in diff and "+two" in diff
    d.kill_job(job_id)


def test_local_command_mode(
    dispatcher: ResponsiveDispatcher, repo: Path, model: Server, tmp_path: Path
) -> None:
    env = local_env(tmp_path, model, trusted=str(repo))
    command_mode_outcomes(
        dispatcher, repo, backend="local", agent="claude", mode="command", env=env
    )


def test_local_command_mode_refused_write_is_a_failure(
    dispatcher: ResponsiveDispatcher, repo: Path, model: Server, tmp_path: Path
) -> None:
    env = local_env(tmp_path, model, trusted=str(repo))
    (Path(env["HOME"]) / ".claude" / "settings.json").write_text("{}")  # asks: -p cannot
    job_id = dispatcher.dispatch_task(
        "write a.txt x", workdir=repo, backend="local", agent="claude", mode="command", env=env
    )
    job = dispatcher.wait_for_job(job_id, timeout=AGENT_WAIT)
    assert job.state is JobState.FAILED
    assert job.message is not None and f"Write {repo}/a.txt" in job.message
    assert not (repo / "a.txt").exists()


def test_local_interactive_two_turns(
    dispatcher: ResponsiveDispatcher, repo: Path, model: Server, tmp_path: Path
) -> None:
    env = local_env(tmp_path, model, trusted=str(repo))
    interactive_two_turns(dispatcher, repo, backend="local", env=env)


def test_local_untrusted_workspace_waits_for_a_person(
    dispatcher: ResponsiveDispatcher, repo: Path, model: Server, tmp_path: Path
) -> None:
    env = local_env(tmp_path, model, trusted="/somewhere/else")
    job_id = dispatcher.dispatch_task(
        "write t.txt trusted", workdir=repo, backend="local", agent="claude", env=env
    )
    events = Events(dispatcher, job_id)
    question = events.until(waiting(), "the trust question")
    assert "trust this folder" in question.reason
    dispatcher.send_input(job_id, "\x1b[B", enter=False)  # down to "Yes, I trust this folder"
    events.until(waiting(), "the moved selection")
    dispatcher.send_input(job_id, "")  # Enter: the task goes in once the prompt shows
    events.until(idle("done"), "the task's turn ended")
    assert (repo / "t.txt").read_text() == "trusted"
    dispatcher.kill_job(job_id)


# -- in a container -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def claude_image(agents_image: str) -> str:
    """The suite's image holding the pinned agents (``luzia image build --agent``'s code)."""
    return agents_image


@pytest.mark.docker
def test_docker_command_mode(
    dispatcher: ResponsiveDispatcher, repo: Path, model: Server, claude_image: str
) -> None:
    env = claude_env(model.container_url)
    command_mode_outcomes(
        dispatcher,
        repo,
        backend="docker",
        image=claude_image,
        agent="claude",
        mode="command",
        env=env,
    )


@pytest.mark.docker
def test_docker_interactive_two_turns(
    dispatcher: ResponsiveDispatcher, repo: Path, model: Server, claude_image: str
) -> None:
    env = claude_env(model.container_url)
    interactive_two_turns(dispatcher, repo, backend="docker", image=claude_image, env=env)
