"""A container job's agent HOME: seeded by the agent's kind from the caller's HOME and the
job's variables, seen as ``$HOME`` in the container, owned by the container's user, gone at
the job's end. And variables a profile forwards from the dispatching shell, kept secret."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from luzia import agents
from luzia.agents import AgentKind, AgentProfile, Outcome, SeedContext
from luzia.agents.home import HOME_DIR
from luzia.config import Config
from luzia.dispatcher import ResponsiveDispatcher
from luzia.engine import Engine
from luzia.jobs import JobState

TOKEN = "sk-probe-0123456789abcdef"


class ProbeKind(AgentKind):
    """Seeds what a real kind would: a first-run file from the job's variables and a copy of
    the user's own config."""

    name = "probe"
    program = "probe"
    profile = AgentProfile(name="probe", command="probe {task}", delivery="argument")

    def seed_home(self, home: Path, ctx: SeedContext) -> None:
        (home / "first-run").write_text(f"key ends {ctx.env['PROBE_TOKEN'][-4:]}\n")
        (home / "first-run").chmod(0o600)
        agents.kind.copy_private(ctx.user_home / ".probe.conf", home / ".probe.conf")

    def outcome(self, log: str) -> Outcome | None:
        return None


PROBE = AgentProfile(
    name="probe",
    command="cat ~/first-run ~/.probe.conf; echo HOME=$HOME; stat -c %u {task}",
    delivery="argument",
    forward_env=("PROBE_*",),
    kind="probe",
)


@pytest.fixture
def probe_dispatcher(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ResponsiveDispatcher]:
    monkeypatch.setitem(agents.KINDS, "probe", ProbeKind())
    user_home = tmp_path / "user"
    user_home.mkdir()
    (user_home / ".probe.conf").write_text("the user's own config\n")
    monkeypatch.setenv("HOME", str(user_home))
    monkeypatch.setenv("PROBE_TOKEN", TOKEN)
    config = Config(agents={"probe": PROBE})
    engine = Engine(home, config).start()
    d = ResponsiveDispatcher(home=home, config=config)
    yield d
    d.clean(all=True)
    d.close()
    engine.stop()


def test_forwarded_variables_are_secret_and_reach_the_job(
    probe_dispatcher: ResponsiveDispatcher, workspace: Path
) -> None:
    profile = dataclasses.replace(PROBE, command="printf %s $PROBE_TOKEN > out # {task}")
    probe_dispatcher.config = Config(agents={"probe": profile})
    job_id = probe_dispatcher.dispatch_task("x", agent="probe", workdir=workspace, backend="local")
    job = probe_dispatcher.wait_for_job(job_id, timeout=30)
    assert job.state is JobState.COMPLETED, job.message
    assert (workspace / "out").read_text() == TOKEN
    assert job.env == {"PROBE_TOKEN": None}
    assert probe_dispatcher.get_status(job_id).to_dict()["env"] == {"PROBE_TOKEN": "***"}


@pytest.mark.docker
def test_a_container_job_gets_a_seeded_home_of_its_own(
    agent_image: str, probe_dispatcher: ResponsiveDispatcher, workspace: Path
) -> None:
    job_id = probe_dispatcher.dispatch_task(
        "/home/agent/first-run", agent="probe", workdir=workspace, backend="docker"
    )
    job = probe_dispatcher.wait_for_job(job_id, timeout=60)
    assert job.state is JobState.COMPLETED, job.message
    output = probe_dispatcher.read_log(job_id, plain=True).decode()
    assert "key ends cdef" in output
    assert "the user's own config" in output
    assert "HOME=/home/agent" in output
    assert f"{workspace.stat().st_uid}" in output.splitlines()[-1]
    assert not (job.job_dir / HOME_DIR).exists(), "copied credentials outlive the job"
