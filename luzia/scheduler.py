"""Which queued jobs start now, and which finished jobs' containers go: pure functions.

The engine gathers the jobs and calls these; nothing here reads the store or touches a pane,
so every rule (the global limit, per-project limits, one agent per workspace, retention) is
tested on plain values.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from luzia.jobs import Job

BusyCheck = Callable[[Path, Mapping[Path, str]], Path | None]
"""``(workdir, busy)`` -> the busy workspace ``workdir`` shares (same git working tree), if any."""


@dataclass(frozen=True, slots=True)
class Plan:
    """Jobs to start now, oldest first, and a note for each job that waits for a reason."""

    start: list[Job]
    waiting: dict[str, str]


def plan_starts(
    queued_oldest_first: Sequence[Job],
    active: Iterable[Job],
    *,
    max_concurrent: int,
    project_limit: Callable[[str | None], int | None],
    busy_with: BusyCheck,
) -> Plan:
    """Start what fits: under ``max_concurrent`` in all, under each project's limit, and at most
    one agent per workspace (agents in one git working tree share its HEAD and branch), swarm
    jobs aside."""
    active = list(active)
    running = len(active)
    per_project = collections.Counter(job.project for job in active)
    busy: dict[Path, str] = {job.workdir: job.id for job in active if _in_workspace(job)}
    start: list[Job] = []
    waiting: dict[str, str] = {}
    for job in queued_oldest_first:
        if running >= max_concurrent:
            break
        limit = project_limit(job.project)
        if limit is not None and per_project[job.project] >= limit:
            continue
        if _in_workspace(job) and (other := busy_with(job.workdir, busy)):
            waiting[job.id] = f"waiting: job {busy[other]} has an agent in this workspace"
            continue
        start.append(job)
        running += 1
        per_project[job.project] += 1
        if _in_workspace(job):
            busy[job.workdir] = job.id
    return Plan(start, waiting)


def _in_workspace(job: Job) -> bool:
    """An agent that works in the workdir itself; a swarm job's works on a copy on its node,
    so any number of them may share one workdir (their changes come back as snapshots)."""
    return bool(job.agent) and job.backend != "swarm"


def expired(finished: Iterable[Job], *, now: float, retention: float | None) -> list[Job]:
    """Finished jobs whose container or tmux server is kept longer than ``retention`` seconds."""
    if retention is None:
        return []
    return [
        job
        for job in finished
        if job.finished_at is not None
        and now - job.finished_at > retention
        and (job.container_id or job.tmux_target)
    ]
