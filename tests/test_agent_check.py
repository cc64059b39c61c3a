"""Is a job's agent where the job runs: dispatch refuses a docker job whose image is missing or
lacks the agent (with the exact build command), ``luzia doctor`` checks each configured agent,
and a job from the agents image runs the real agent."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from luzia.agent_check import build_command, image_problem, needed_agent
from luzia.agents import BUILTIN_PROFILES, AgentProfile
from luzia.config import Config, Defaults, ProjectConfig
from luzia.dispatcher import ResponsiveDispatcher
from luzia.doctor import check_agents, check_images
from luzia.errors import UsageError
from luzia.jobs import JobState
from tests.agent_bins import VERSIONS, agent_program

ABSENT = f"luzia-agent:absent-{uuid.uuid4().hex[:8]}"


def test_the_agent_a_job_runs() -> None:
    assert needed_agent("claude", BUILTIN_PROFILES["claude"]) == "claude"
    assert needed_agent("claude -p {task}", None) == "claude"
    assert needed_agent("/opt/bin/aider --message {task}", None) == "aider"
    mine = AgentProfile(name="mine", command="codex --full-auto")
    assert needed_agent("mine", mine) == "codex"
    assert needed_agent("echo {task}", None) is None
    assert needed_agent(None, None) is None
    assert needed_agent("fake-agent", BUILTIN_PROFILES["fake-agent"]) is None


def test_build_commands_name_the_tag_and_keep_the_agents_already_there() -> None:
    assert build_command("luzia-agent:latest", ["claude"]) == "luzia image build --agent claude"
    assert build_command("my:img", ["codex", "claude", "codex"]) == (
        "luzia image build --tag my:img --agent claude --agent codex"
    )
    ours = {"luzia.image": "agent", "luzia.agent.aider": "0.86.2"}
    assert image_problem(ours, "luzia-agent:latest", "claude") == (
        "image luzia-agent:latest has no claude (it holds aider)",
        "luzia image build --agent aider --agent claude",
    )
    assert image_problem(ours, "luzia-agent:latest", "aider") is None
    assert image_problem({"maintainer": "me"}, "their:img", "claude") is None  # taken on trust
    assert image_problem(None, "luzia-agent:latest", None) is None  # built on first use
    assert image_problem(None, "x:y", None) == (
        "image x:y does not exist",
        "luzia image build --tag x:y",
    )


def dispatcher_for(home: Path, image: str) -> ResponsiveDispatcher:
    return ResponsiveDispatcher(
        home=home, config=Config(defaults=Defaults(backend="docker", image=image))
    )


@pytest.mark.docker
def test_dispatch_refuses_a_missing_image_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_engine: object
) -> None:
    monkeypatch.setenv("LUZIA_NO_AUTOSTART", "1")
    d = dispatcher_for(tmp_path / "home", ABSENT)
    try:
        with pytest.raises(UsageError) as info:
            d.dispatch_task("hello", workdir=tmp_path, agent="claude")
        assert str(info.value) == (
            f"image {ABSENT} does not exist: build it with "
            f"`luzia image build --tag {ABSENT} --agent claude`"
        )
        with pytest.raises(UsageError, match=f"`luzia image build --tag {ABSENT}`"):
            d.dispatch_task("true", workdir=tmp_path)
        assert d.list_jobs() == []
    finally:
        d.close()


@pytest.mark.docker
def test_dispatch_refuses_an_image_without_the_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, agent_image: str, agents_image: str
) -> None:
    monkeypatch.setenv("LUZIA_NO_AUTOSTART", "1")
    d = dispatcher_for(tmp_path / "home", agent_image)
    try:
        with pytest.raises(UsageError, match=r"has no codex \(it holds no agents\)"):
            d.dispatch_task("hello", workdir=tmp_path, agent="codex exec {task}")
        assert d.list_jobs() == []
        job_id = d.dispatch_task("hello", workdir=tmp_path, agent="claude", image=agents_image)
        assert d.get_status(job_id).image == agents_image
    finally:
        d.close()


@pytest.mark.docker
def test_doctor_checks_each_configured_agent(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker_engine: object,
    agent_image: str,
    agents_image: str,
) -> None:
    monkeypatch.setenv("PATH", f"{agent_program('aider').parent}:/usr/bin:/bin")
    projects = {
        "full": ProjectConfig(
            "full", tmp_path, agent="claude", backend="docker", image=agents_image
        ),
        "bare": ProjectConfig("bare", tmp_path, agent="codex exec {task}", image=agent_image),
        "gone": ProjectConfig("gone", tmp_path, agent="aider", backend="docker", image=ABSENT),
        "here": ProjectConfig("here", tmp_path, agent="aider", backend="local"),
        "away": ProjectConfig("away", tmp_path, agent="claude", backend="local"),
        "tool": ProjectConfig("tool", tmp_path, agent="make {task}", backend="docker"),
    }
    config = Config(defaults=Defaults(backend="auto", image=agent_image), projects=projects)
    checks = {c.name: c for c in check_agents(docker_engine, config)}
    full = checks[f"agent claude (image {agents_image})"]
    assert (full.status, full.detail) == ("ok", f"claude {VERSIONS['claude']} in {agents_image}")
    bare = checks[f"agent codex (image {agent_image})"]
    assert bare.status == "fail" and bare.fix == build_command(agent_image, ["codex"])
    gone = checks[f"agent aider (image {ABSENT})"]
    assert (gone.status, gone.fix) == ("fail", f"luzia image build --tag {ABSENT} --agent aider")
    assert checks["agent aider (local)"].status == "ok"
    away = checks["agent claude (local)"]
    assert away.status == "fail" and "install Claude Code" in (away.fix or "")
    assert len(checks) == 5  # make is no agent of ours
    images = {c.name: c for c in check_images(docker_engine, config, needed=True)}
    assert images[f"image {ABSENT}"].fix == f"luzia image build --tag {ABSENT} --agent aider"


@pytest.mark.docker
def test_a_docker_job_runs_the_agent_from_the_agents_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, agents_image: str
) -> None:
    monkeypatch.setenv("LUZIA_NO_AUTOSTART", "1")
    d = dispatcher_for(tmp_path / "home", agents_image)
    engine = d.start_background_monitor()
    try:
        job_id = d.dispatch_task(
            "bash -lc 'claude --version && codex --version && aider --version'",
            workdir=tmp_path,
        )
        job = d.wait_for_job(job_id, timeout=120)
        log = job.log_path.read_text(errors="replace")
        assert job.state is JobState.COMPLETED, (job.message, log)
        for name, version in VERSIONS.items():
            assert version in log, (name, log)
    finally:
        d.clean(all=True)
        engine.stop()
        d.close()


@pytest.mark.docker
def test_the_quick_probe_agrees_with_the_sdk(
    agents_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from controllers.engine_probe import image_labels as probe
    from controllers.errors import DockerUnavailable
    from controllers.image import image_labels as sdk

    assert probe(agents_image) == sdk(agents_image)
    assert probe(f"luzia-no-such-image:{uuid.uuid4().hex[:8]}") is None
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(DockerUnavailable, match=r"/nonexistent/docker\.sock"):
        probe(agents_image)
