"""luzia: run coding agents (or any terminal program) in tmux panes inside containers.

Dispatch a task and get a job id at once; any process can ask what every job is doing.

>>> from luzia import ResponsiveDispatcher, JobState   # doctest: +SKIP

The names below are imported on first use, not with the package: ``import luzia`` must stay
cheap, because the ``luzia`` command imports it on every run and most runs need only a little of
it (the store, never Docker or rich).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controllers.lazy import lazy_exports

if TYPE_CHECKING:
    from luzia.config import Config, Defaults, ProjectConfig
    from luzia.dispatcher import ResponsiveDispatcher
    from luzia.errors import (
        AmbiguousJobId,
        ConfigError,
        JobNotFound,
        LuziaError,
        ProjectNotFound,
        StoreError,
        UsageError,
        WaitTimeout,
    )
    from luzia.jobs import Job, JobEvent, JobState
    from luzia.store import JobStore

__all__ = [
    "AmbiguousJobId",
    "Config",
    "ConfigError",
    "Defaults",
    "Job",
    "JobEvent",
    "JobNotFound",
    "JobState",
    "JobStore",
    "LuziaError",
    "ProjectConfig",
    "ProjectNotFound",
    "ResponsiveDispatcher",
    "StoreError",
    "UsageError",
    "WaitTimeout",
]

_HOMES = {
    "ResponsiveDispatcher": "luzia.dispatcher",
    "Job": "luzia.jobs",
    "JobEvent": "luzia.jobs",
    "JobState": "luzia.jobs",
    "JobStore": "luzia.store",
    "Config": "luzia.config",
    "Defaults": "luzia.config",
    "ProjectConfig": "luzia.config",
    "LuziaError": "luzia.errors",
    "UsageError": "luzia.errors",
    "JobNotFound": "luzia.errors",
    "AmbiguousJobId": "luzia.errors",
    "ProjectNotFound": "luzia.errors",
    "ConfigError": "luzia.errors",
    "StoreError": "luzia.errors",
    "WaitTimeout": "luzia.errors",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
