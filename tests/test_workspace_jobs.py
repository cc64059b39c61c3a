"""Workspace safety through the engine and the CLI: an agent edits a real git workspace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from luzia.cli import cli
from luzia.config import Config, Defaults, ProjectConfig
from luzia.dispatcher import ResponsiveDispatcher
from luzia.jobs import JobState
from tests.support import git
from tests.test_interactive import AGENT_ENV, PROFILE


@pytest.fixture
def repo(agent_repo: Path) -> Path:
    """The agent's repository with history, and the user's own uncommitted work in progress."""
    (agent_repo / "old.txt").write_text("to be deleted by the agent\n")
    (agent_repo / "notes.txt").write_text("committed notes\n")
    git(agent_repo, "add", ".")
    git(agent_repo, "commit", "-q", "-m", "notes")
    (agent_repo / "notes.txt").write_text("committed notes\nthe user's unsaved idea\n")
    (agent_repo / "scratch.txt").write_text("the user's untracked scratch\n")
    return agent_repo


def make_dispatcher(home: Path, repo: Path, commit: str | None = None) -> ResponsiveDispatcher:
    project = ProjectConfig(name="app", path=repo, commit=commit)  # type: ignore[arg-type]
    config = Config(defaults=Defaults(), projects={"app": project}, agents={"fake": PROFILE})
    return ResponsiveDispatcher(home=home, config=config)


@pytest.fixture
def dispatcher(home: Path, repo: Path) -> Iterator[ResponsiveDispatcher]:
    d = make_dispatcher(home, repo)
    engine = d.start_background_monitor()
    yield d
    d.clean(all=True)
    engine.stop()


def luzia(home: Path, d: ResponsiveDispatcher, *args: str) -> str:
    """Run the CLI in-process against the same home and config as ``d``."""
    runner = CliRunner()
    config = home / "config.toml"
    project = d.config.projects["app"]
    config.write_text(
        f'[projects.app]\npath = "{project.path}"\n'
        "[agents.fake]\ncommand = \"bash ./fake-agent\"\nprompt = '(?m)^>\\s*$'\n"
    )
    result = runner.invoke(cli, ["--home", str(home), "--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_diff_commit_and_revert_an_agents_change(
    dispatcher: ResponsiveDispatcher, home: Path, repo: Path, backend: str
) -> None:
    job_id = dispatcher.dispatch_task(
        "edit feature.txt: the agent's feature\ndelete old.txt\nexit 0",
        project="app",
        backend=backend,
        agent="fake",
        env=AGENT_ENV,
    )
    job = dispatcher.wait_for_job(job_id, timeout=60)
    assert (job.state, job.exit_code) == (JobState.COMPLETED, 0)

    diff = luzia(home, dispatcher, "diff", job_id)
    assert "+the agent's feature" in diff and "old.txt" in diff
    assert "unsaved idea" not in diff and "scratch" not in diff
    assert "feature.txt" in luzia(home, dispatcher, "diff", job_id, "--stat")

    out = luzia(home, dispatcher, "commit", job_id, "-b")
    assert f"luzia/{job_id}" in out
    files = git(repo, "show", "--name-status", "--format=%s%n%b", f"luzia/{job_id}")
    assert f"Luzia-Job: {job_id}" in files
    assert "A\tfeature.txt" in files and "D\told.txt" in files and "notes.txt" not in files
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"

    luzia(home, dispatcher, "revert", job_id)
    assert not (repo / "feature.txt").exists()
    assert (repo / "old.txt").read_text() == "to be deleted by the agent\n"
    assert "unsaved idea" in (repo / "notes.txt").read_text()
    assert (repo / "scratch.txt").exists()


def test_revert_refuses_when_the_workspace_changed_after_the_job(
    dispatcher: ResponsiveDispatcher, home: Path, repo: Path
) -> None:
    job_id = dispatcher.dispatch_task(
        "echo agent > made.txt", project="app", backend="local", agent="sh -c {task}"
    )
    assert dispatcher.wait_for_job(job_id, timeout=30).state is JobState.COMPLETED
    dispatcher.diff_job(job_id)  # the post snapshot exists (or is taken) by now
    (repo / "made.txt").write_text("edited by a person afterwards\n")
    with pytest.raises(Exception, match="changed"):
        dispatcher.revert_job(job_id)
    assert (repo / "made.txt").read_text() == "edited by a person afterwards\n"


def test_project_commit_protocol_commits_a_successful_job(
    home: Path, repo: Path, tmp_path: Path
) -> None:
    d = make_dispatcher(home, repo, commit="branch")
    engine = d.start_background_monitor()
    try:
        job_id = d.dispatch_task(
            "echo generated > gen.txt", project="app", backend="local", agent="sh -c {task}"
        )
        assert d.wait_for_job(job_id, timeout=30).state is JobState.COMPLETED
        for _ in range(200):  # the commit follows the final state
            if "committed" in (d.get_status(job_id).message or ""):
                break
            engine._stop.wait(0.05)
        assert f"on luzia/{job_id}" in (d.get_status(job_id).message or "")
        assert "gen.txt" in git(repo, "show", "--name-only", "--format=", f"luzia/{job_id}")
        assert "unsaved idea" in (repo / "notes.txt").read_text()
        assert git(repo, "status", "--porcelain", "notes.txt").strip() == "M notes.txt"
    finally:
        d.clean(all=True)
        engine.stop()


def test_agent_jobs_take_turns_in_one_workspace(
    dispatcher: ResponsiveDispatcher, repo: Path
) -> None:
    first = dispatcher.dispatch_task(
        "sleep 1", project="app", backend="local", agent="sh -c {task}"
    )
    second = dispatcher.dispatch_task("true", project="app", backend="local", agent="sh -c {task}")
    a = dispatcher.wait_for_job(first, timeout=30)
    b = dispatcher.wait_for_job(second, timeout=30)
    assert a.finished_at is not None and b.started_at is not None
    assert b.started_at >= a.finished_at
    notes = [e.reason for e in dispatcher.store.events(second)]
    assert notes[:2] == ["dispatched", "starting"]


def test_agents_in_two_folders_of_one_repository_take_turns(
    dispatcher: ResponsiveDispatcher, repo: Path
) -> None:
    """They share HEAD and the branch that commit and revert move: one working tree."""
    (repo / "src").mkdir()
    (repo / "docs").mkdir()
    first = dispatcher.dispatch_task("sleep 1", workdir=repo / "src", backend="local",
                                     agent="sh -c {task}")  # fmt: skip
    second = dispatcher.dispatch_task("true", workdir=repo / "docs", backend="local",
                                      agent="sh -c {task}")  # fmt: skip
    a = dispatcher.wait_for_job(first, timeout=30)
    b = dispatcher.wait_for_job(second, timeout=30)
    assert a.finished_at is not None and b.started_at is not None
    assert b.started_at >= a.finished_at


def test_diff_of_a_workspace_that_is_not_a_repository(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    d = ResponsiveDispatcher(home=home, config=Config())
    engine = d.start_background_monitor()
    try:
        job_id = d.dispatch_task("echo hi > a.txt", workdir=plain, backend="local")
        assert d.wait_for_job(job_id, timeout=30).state is JobState.COMPLETED
        with pytest.raises(Exception, match="not in a git repository"):
            d.diff_job(job_id)
    finally:
        d.clean(all=True)
        engine.stop()
