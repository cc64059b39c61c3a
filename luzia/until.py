"""What a wait waits for: a job's end, the end of its turn, or a question for a person.

One predicate, ``reached``, decides it from a ``Job``, so that a finer state model changes this
module alone.
"""

from __future__ import annotations

from typing import Literal

from luzia.errors import UsageError
from luzia.jobs import Job, JobState

Until = Literal["end", "idle", "input"]
"""``end``: the job is final. ``idle``: its turn has ended (at its prompt, or asking).
``input``: it waits for a person's answer. A final job has reached every one of them."""

UNTILS: tuple[Until, ...] = ("end", "idle", "input")


def check_until(value: str) -> Until:
    """``value`` as an ``Until``; ``UsageError`` for anything else."""
    if value not in UNTILS:
        raise UsageError(f"cannot wait for {value!r}: use one of {', '.join(UNTILS)}")
    return value


def reached(job: Job, until: Until) -> bool:
    """Whether a wait for ``until`` is over for ``job``: it is there, or it has ended."""
    if job.state.is_final:
        return True
    if until == "idle":
        return job.state in (JobState.IDLE, JobState.WAITING)
    if until == "input":
        return job.state is JobState.WAITING
    return False


def ended_instead(job: Job, until: Until) -> bool:
    """Whether the wait is over only because the job ended before it got to ``until``."""
    return until != "end" and job.state.is_final
