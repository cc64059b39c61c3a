"""The job model: one state enum, one immutable record per job, one record per state change.

A ``Job`` is a snapshot read from the store; it never changes under the caller. Ask the store (or
the dispatcher) again for fresh data.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from luzia.jobenv import shown_env

Backend = Literal["auto", "docker", "local", "swarm"]
"""Where a job runs. ``auto`` is only ever seen on a queued job: the engine picks docker when an
engine is reachable, else local, when it starts the job, and records its choice."""

Mode = Literal["command", "interactive"]

BACKENDS: frozenset[str] = frozenset({"auto", "docker", "local", "swarm"})
MODES: frozenset[str] = frozenset({"command", "interactive"})


class JobState(StrEnum):
    """The lifecycle: ``queued -> starting -> running -> completed | failed | killed``.

    An interactive agent moves between ``running`` (working on a turn), ``idle`` (its turn is
    over, at its prompt) and ``waiting`` (it asked a person something: the message holds the
    question) until it exits.
    """

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    IDLE = "idle"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    KILLED = "killed"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


ACTIVE_STATES: frozenset[JobState] = frozenset(
    {JobState.STARTING, JobState.RUNNING, JobState.IDLE, JobState.WAITING}
)
"""States that hold a slot: they count against concurrency limits, and after a crash the engine
must find each such job's container or pane again. ``queued`` is neither active nor final."""

FINAL_STATES: frozenset[JobState] = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.KILLED}
)
"""States a job never leaves."""


def iso_utc(at: float | None) -> str | None:
    """A unix time as ISO-8601 UTC with milliseconds, e.g. ``2025-01-31T12:00:00.250Z``."""
    if at is None:
        return None
    seconds = int(at // 1)
    millis = int((at - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


@dataclass(frozen=True, slots=True)
class Job:
    """One job as the store last recorded it.

    ``agent`` is the command template (``{task}`` marks where the task goes); ``None`` means the
    task is itself a shell command. ``tmux_target`` is whatever the engine needs to find the pane
    again (e.g. socket path and session). ``message`` says, for a person, why the job is in its
    state. Times are unix seconds; ``None`` where the moment has not come yet. ``env`` holds
    the job's variables as the store keeps them: ``None`` for a secret one's value, which only
    the job's env file holds (``luzia.jobenv``).
    """

    id: str
    project: str | None
    task: str
    state: JobState
    backend: Backend
    mode: Mode
    agent: str | None
    workdir: Path
    image: str | None
    container_id: str | None
    tmux_target: str | None
    exit_code: int | None
    message: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    log_path: Path
    job_dir: Path
    env: Mapping[str, str | None] = field(default_factory=dict, hash=False)
    usage: Mapping[str, float] = field(default_factory=dict, hash=False)
    """What the agent reported it used (``input_tokens``, ``output_tokens``, ``cost_usd``)."""

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or to now while it runs; ``None`` before it starts."""
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else time.time()
        return max(0.0, end - self.started_at)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; its keys are the stable ``--json`` schema."""
        duration = self.duration
        return {
            "id": self.id,
            "project": self.project,
            "state": str(self.state),
            "task": self.task,
            "backend": self.backend,
            "mode": self.mode,
            "agent": self.agent,
            "workdir": str(self.workdir),
            "image": self.image,
            "container_id": self.container_id,
            "tmux_target": self.tmux_target,
            "exit_code": self.exit_code,
            "message": self.message,
            "env": shown_env(self.env),
            "usage": dict(self.usage),
            "created_at": iso_utc(self.created_at),
            "started_at": iso_utc(self.started_at),
            "finished_at": iso_utc(self.finished_at),
            "updated_at": iso_utc(self.updated_at),
            "duration": None if duration is None else round(duration, 3),
            "log_path": str(self.log_path),
            "job_dir": str(self.job_dir),
        }


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One state change of one job; ``seq`` counts from 1 per job, ``reason`` is for a person."""

    job_id: str
    seq: int
    at: float
    state: JobState
    reason: str
    usage: Mapping[str, float] = field(default_factory=dict, hash=False)
    """What the turn this event ends used (an ``idle`` or ``waiting`` after a turn)."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "job_id": self.job_id,
            "seq": self.seq,
            "at": iso_utc(self.at),
            "state": str(self.state),
            "reason": self.reason,
        }
        if self.usage:
            data["usage"] = dict(self.usage)
        return data


@dataclass(frozen=True, slots=True)
class FeedEvent(JobEvent):
    """An event read from the feed of every job's events (``luzia events``): its job's
    ``project`` too, and ``num``, its place in the order the store recorded all events."""

    project: str | None = None
    num: int = 0

    def to_dict(self) -> dict[str, Any]:
        """``JobEvent.to_dict`` plus ``project``."""
        return {**JobEvent.to_dict(self), "project": self.project}
