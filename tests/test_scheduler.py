"""The scheduling rules and the end-of-job rule, on plain values (no store, no pane)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from luzia.jobs import Job, JobState
from luzia.scheduler import expired, plan_starts
from luzia.verdict import Evidence, decide
from tests.conftest import sample_job


def job(job_id: str, **fields: object) -> Job:
    return sample_job(id=job_id, **fields)


def same_path(workdir: Path, busy: Mapping[Path, str]) -> Path | None:
    return workdir if workdir in busy else None


def ids(jobs: list[Job]) -> list[str]:
    return [j.id for j in jobs]


def test_the_global_limit_starts_the_oldest_first() -> None:
    queued = [job(f"q{i}") for i in range(5)]
    running = [job("r0", state=JobState.RUNNING)]
    plan = plan_starts(
        queued, running, max_concurrent=3, project_limit=lambda _: None, busy_with=same_path
    )
    assert ids(plan.start) == ["q0", "q1"]


def test_a_full_project_waits_while_others_start() -> None:
    queued = [job("a1", project="a"), job("b1", project="b"), job("a2", project="a")]
    running = [job("a0", project="a", state=JobState.RUNNING)]
    plan = plan_starts(
        queued,
        running,
        max_concurrent=10,
        project_limit=lambda p: 1 if p == "a" else None,
        busy_with=same_path,
    )
    assert ids(plan.start) == ["b1"]


def test_one_agent_per_workspace_and_plain_commands_are_not_held() -> None:
    queued = [
        job("agent2", agent="claude", workdir=Path("/repo")),
        job("cmd", workdir=Path("/repo")),
        job("agent3", agent="claude", workdir=Path("/other")),
        job("agent4", agent="claude", workdir=Path("/other")),
    ]
    running = [job("agent1", agent="claude", workdir=Path("/repo"), state=JobState.RUNNING)]
    plan = plan_starts(
        queued, running, max_concurrent=10, project_limit=lambda _: None, busy_with=same_path
    )
    assert ids(plan.start) == ["cmd", "agent3"]
    assert plan.waiting == {
        "agent2": "waiting: job agent1 has an agent in this workspace",
        "agent4": "waiting: job agent3 has an agent in this workspace",
    }


def test_swarm_agents_work_on_copies_and_share_a_workspace_with_anyone() -> None:
    queued = [
        job("swarm2", agent="claude", workdir=Path("/repo"), backend="swarm"),
        job("local2", agent="claude", workdir=Path("/repo")),
        job("swarm3", agent="claude", workdir=Path("/repo"), backend="swarm"),
    ]
    running = [job("swarm1", agent="claude", workdir=Path("/repo"), backend="swarm")]
    plan = plan_starts(
        queued, running, max_concurrent=10, project_limit=lambda _: None, busy_with=same_path
    )
    assert ids(plan.start) == ["swarm2", "local2", "swarm3"]


def test_retention_picks_only_old_jobs_that_still_hold_a_pane() -> None:
    jobs = [
        job("old", finished_at=100.0, container_id="c1"),
        job("new", finished_at=950.0, container_id="c2"),
        job("cleaned", finished_at=100.0),
    ]
    assert ids(expired(jobs, now=1000.0, retention=60.0)) == ["old"]
    assert expired(jobs, now=1000.0, retention=None) == []


def test_a_recorded_status_ends_a_job_whatever_else_is_seen() -> None:
    verdict = decide(Evidence(alive=True, exit_code=3))
    assert (verdict.ended, verdict.exit_code, verdict.reason) == (True, 3, "exited with code 3")


def test_a_live_process_is_never_ended_by_what_it_printed() -> None:
    assert not decide(Evidence(alive=True, exit_code=None)).ended
    assert decide(Evidence(alive=True, exit_code=None, stopped=True)).paused
    assert not decide(Evidence(alive=None, exit_code=None)).ended  # cannot tell: look again


def test_no_process_and_no_status_is_an_end_with_its_cause() -> None:
    verdict = decide(Evidence(alive=False, exit_code=None, gone="container 1a2b removed"))
    assert (verdict.ended, verdict.exit_code, verdict.reason) == (
        True,
        None,
        "container 1a2b removed",
    )
    assert "without recording" in decide(Evidence(alive=False, exit_code=None)).reason
