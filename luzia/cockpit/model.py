"""What the cockpit shows, decided from ``Job`` records alone: the state a person sees, the order
of the list, and the text of each column. No Textual here, so it is tested without a screen."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from luzia.jobs import Job, JobState

WAITING = "waiting"
"""The state shown for an agent that waits for a person's answer."""

GROUPS: tuple[str, ...] = (WAITING, "running", "idle", "starting", "queued", "finished")
"""The list's order: who needs a person first, then who works, then the rest."""

COLOURS: Mapping[str, str] = {
    WAITING: "bold magenta",
    "running": "bold green",
    "idle": "cyan",
    "starting": "yellow",
    "queued": "yellow",
    "completed": "green",
    "failed": "bold red",
    "killed": "red",
}


def question(job: Job) -> str | None:
    """What the agent asked, when it waits for a person; else ``None``."""
    if job.state is not JobState.WAITING:
        return None
    return job.message or "(the agent waits for an answer)"


def group(job: Job) -> int:
    """The job's place in ``GROUPS``."""
    state = str(job.state)
    if job.state.is_final:
        return GROUPS.index("finished")
    return GROUPS.index(state) if state in GROUPS else GROUPS.index("running")


def ordered(jobs: Iterable[Job]) -> list[Job]:
    """Waiting first, then running, idle, starting, queued, finished; newest first in a group."""
    return sorted(jobs, key=lambda job: (group(job), -job.created_at, job.id))


def matches(job: Job, text: str) -> bool:
    """Whether the filter ``text`` (case-insensitive) is in the job's id, project, agent, state
    or task."""
    if not text:
        return True
    needle = text.lower()
    fields = (job.id, job.project or "", job.agent or "", str(job.state), job.task)
    return any(needle in field.lower() for field in fields)


def usage_cell(usage: Mapping[str, float]) -> str:
    """Tokens and cost in a few characters: ``12.3k/850 $0.04``; ``-`` when none reported."""
    parts = []
    tokens_in, tokens_out = usage.get("input_tokens"), usage.get("output_tokens")
    if tokens_in is not None or tokens_out is not None:
        parts.append(f"{_count(tokens_in or 0)}/{_count(tokens_out or 0)}")
    if "cost_usd" in usage:
        parts.append(f"${usage['cost_usd']:.2f}")
    return " ".join(parts) or "-"


def _count(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return str(int(value))


COLUMNS: tuple[str, ...] = ("state", "job", "project", "agent", "age", "active", "usage", "task")


def row(job: Job, now: float | None = None) -> tuple[str, ...]:
    """The list's cells for one job, in ``COLUMNS`` order (the state uncoloured)."""
    now = time.time() if now is None else now
    agent = (job.agent or "shell").split()[0] if (job.agent or "").strip() else "shell"
    task = " ".join(job.task.split())
    return (
        str(job.state),
        job.id,
        job.project or "-",
        agent,
        coarse_span(now - job.created_at),
        coarse_span(now - job.updated_at),
        usage_cell(job.usage),
        task[:60] + ("…" if len(task) > 60 else ""),
    )


def coarse_span(seconds: float) -> str:
    """A time span that changes at most once a minute (a cell redrawn every second costs CPU for
    nothing a person needs): ``<1m``, ``12m``, ``3h05m``, ``2d04h``."""
    whole = int(max(0.0, seconds))
    if whole < 60:
        return "<1m"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def counts(jobs: Sequence[Job]) -> str:
    """A one-line census, e.g. ``2 waiting · 3 running · 10 idle · 4 finished``."""
    tally: dict[str, int] = {}
    for job in jobs:
        name = GROUPS[group(job)]
        tally[name] = tally.get(name, 0) + 1
    return " · ".join(f"{tally[name]} {name}" for name in GROUPS if name in tally) or "no jobs"
