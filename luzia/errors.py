"""One exception hierarchy for the ``luzia`` package.

Every error a person can meet carries a one-line message that says what went wrong and how to
fix it, and the exit code the CLI should end with (click's habit: usage errors exit 2). The CLI
prints ``str(exc)`` and exits with ``exc.exit_code``; it never shows a traceback for these.
``LuziaError`` is also the base of ``controllers.errors.ControllerError``, so catching it catches
everything luzia and its controllers raise; it lives in ``controllers.errors`` for that reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from controllers.errors import LuziaError as LuziaError

if TYPE_CHECKING:
    from luzia.jobs import Job


class UsageError(LuziaError, ValueError):
    """Bad input from the caller (empty task, task too large, bad option); nothing was recorded."""

    exit_code = 2


class JobNotFound(LuziaError):
    """No job has this id or id prefix."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job matches {job_id!r}; `luzia jobs` lists the known ones")
        self.job_id = job_id


class AmbiguousJobId(LuziaError):
    """An id prefix matches more than one job; the caller must type more of it."""

    def __init__(self, prefix: str, candidates: Sequence[str]) -> None:
        shown = ", ".join(candidates[:10]) + (", ..." if len(candidates) > 10 else "")
        super().__init__(f"job id {prefix!r} is ambiguous: it matches {shown}; type more of it")
        self.prefix = prefix
        self.candidates = tuple(candidates)


class ProjectNotFound(LuziaError):
    """A project name that the configuration does not define."""

    def __init__(self, name: str, known: Sequence[str], config_path: str) -> None:
        listed = ", ".join(sorted(known)) or "none"
        super().__init__(
            f"unknown project {name!r} (configured: {listed}); add [projects.{name}] to "
            f"{config_path} or give a workdir"
        )
        self.name = name


class ConfigError(LuziaError):
    """The config file cannot be read or holds a bad value; the message names file and line."""


class StoreError(LuziaError):
    """The job store cannot be opened or written (e.g. ``LUZIA_HOME`` is not writable)."""


class WaitTimeout(LuziaError, TimeoutError):
    """A job did not reach a final state (or the state waited for) in time; it keeps running."""

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(f"job {job.id} is still {job.state} after {timeout:g} s")
        self.job = job


class BackendError(LuziaError):
    """A job's backend cannot do what was asked: Docker unreachable, a process that survives
    SIGKILL. Nothing was changed that the message does not say."""
