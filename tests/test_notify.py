"""``on_state``: the user's command, run by the engine when a job's turn ends, when it asks a
person something and when it ends, told what happened in its environment."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from luzia.agents import BUILTIN_PROFILES
from luzia.config import Config, Defaults, ProjectConfig
from luzia.dispatcher import ResponsiveDispatcher
from luzia.engine import Engine
from luzia.jobs import JobState
from tests.conftest import Events, idle, waiting

PROFILE = dataclasses.replace(
    BUILTIN_PROFILES["fake-agent"], name="fake", command="bash ./fake-agent", start_timeout=30
)
AGENT_ENV = {"FAKE_AGENT_THINK": "0.2"}
BOUND = 30.0


def record_to(path: Path) -> str:
    return (
        'printf "%s|%s|%s|%s|%s\\n" "$LUZIA_JOB_ID" "$LUZIA_PROJECT" "$LUZIA_STATE" '
        f'"${{LUZIA_QUESTION-}}" "${{LUZIA_EXIT_CODE-}}" >> {path}'
    )


def lines(path: Path, count: int) -> list[str]:
    """The first ``count`` lines the command wrote; it runs after the record, on its own."""
    deadline = time.monotonic() + BOUND
    while True:
        text = path.read_text() if path.exists() else ""
        if text.count("\n") >= count or time.monotonic() > deadline:
            return text.splitlines()
        time.sleep(0.02)


@pytest.fixture
def told(tmp_path: Path, home: Path) -> Iterator[tuple[ResponsiveDispatcher, Path, Path]]:
    """A dispatcher whose engine runs ``on_state``: [defaults] writes to one file, project
    ``web`` to another."""
    default_file, web_file = tmp_path / "told.txt", tmp_path / "web.txt"
    config = Config(
        defaults=Defaults(on_state=record_to(default_file)),
        projects={
            "web": ProjectConfig("web", tmp_path, on_state=record_to(web_file)),
        },
        agents={"fake": PROFILE},
    )
    engine = Engine(home, config).start()
    d = ResponsiveDispatcher(home=home, config=config)
    yield d, default_file, web_file
    d.clean(all=True)
    d.close()
    engine.stop()


def test_the_end_of_a_job_is_told_with_its_exit_code(
    told: tuple[ResponsiveDispatcher, Path, Path], workspace: Path
) -> None:
    d, told_file, web_file = told
    job_id = d.dispatch_task("exit 3", workdir=workspace, backend="local")
    assert d.wait_for_job(job_id, timeout=BOUND).state is JobState.FAILED
    assert lines(told_file, 1) == [f"{job_id}||failed||3"]

    web_job = d.dispatch_task("true", project="web", workdir=workspace, backend="local")
    d.wait_for_job(web_job, timeout=BOUND)
    assert lines(web_file, 1) == [f"{web_job}|web|completed||0"], "the project's own command"
    assert len(lines(told_file, 1)) == 1


def test_a_question_a_turn_end_and_a_kill_are_told(
    told: tuple[ResponsiveDispatcher, Path, Path], agent_repo: Path
) -> None:
    d, told_file, _ = told
    job_id = d.dispatch_task(
        "ask: Allow edit to a.txt?\nedit a.txt: yes",
        workdir=agent_repo,
        backend="local",
        agent="fake",
        env=AGENT_ENV,
    )
    events = Events(d, job_id)
    events.until(waiting(), "the question")
    assert lines(told_file, 1) == [f"{job_id}||waiting|Allow edit to a.txt? [y/n]|"]
    d.send_input(job_id, "y", enter=False)
    events.until(idle("waiting at its prompt"), "the turn's end")
    assert lines(told_file, 2)[1] == f"{job_id}||idle||"
    d.kill_job(job_id)
    assert lines(told_file, 3)[2] == f"{job_id}||killed||"


def test_on_state_is_read_from_the_config(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    file.write_text(
        '[defaults]\non_state = "notify-send luzia"\n'
        f'[projects.a]\npath = "{tmp_path}"\non_state = "printf \'\\\\a\'"\n'
        f'[projects.b]\npath = "{tmp_path}"\n'
    )
    config = Config.load(file)
    assert config.on_state_for("a") == "printf '\\a'"
    assert config.on_state_for("b") == config.on_state_for(None) == "notify-send luzia"
