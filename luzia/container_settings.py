"""What a docker job's container gets besides the workspace: bind mounts, limits and its user.

Each setting comes from the job (CLI flag or ``dispatch_task`` argument), else its project, else
``[defaults]``; mounts add up, a later one replacing an earlier one at the same destination. They
are checked and resolved at dispatch and carried in the job's launch record, so a job runs with
what was valid when it was dispatched, never with what an engine's config says later.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from luzia.errors import UsageError

DEFAULT_MEMORY = "2g"
DEFAULT_PIDS = 512
MIN_MEMORY = 6 * 1024**2
"""Docker refuses a memory limit below 6 MiB."""

RESERVED_TARGETS = ("/workspace", "/luzia/job", "/home/agent")
"""Where luzia mounts the workspace, the job's directory and the agent's home: no mount may go
there or below."""

_MEMORY = r"(\d+(?:\.\d+)?)([bkmg]?)b?"
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_USER = r"\d{1,10}(?::\d{1,10})?"
_T = TypeVar("_T")


class Mount(NamedTuple):
    """A host path bound into the job's container (``SRC:DST[:ro]``); a ``ContainerSpec`` mount."""

    source: str
    target: str
    read_only: bool = False

    def __str__(self) -> str:
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


@dataclass(frozen=True, slots=True)
class ContainerSettings:
    """One layer of settings (``None``/empty: not set here) or, resolved, a job's own."""

    mounts: tuple[Mount, ...] = ()
    memory: str | None = None
    cpus: float | None = None
    pids: int | None = None
    user: str | None = None

    def given(self) -> list[str]:
        """The names of the settings this layer sets, for errors."""
        names = ["mounts"] if self.mounts else []
        return names + [n for n in ("memory", "cpus", "pids", "user") if getattr(self, n)]

    def over(self, base: ContainerSettings) -> ContainerSettings:
        """These settings where set, else ``base``'s; mounts join, ours winning per target."""
        by_target = {m.target: m for m in base.mounts}
        by_target.update({m.target: m for m in self.mounts})
        return ContainerSettings(
            mounts=tuple(by_target.values()),
            memory=self.memory or base.memory,
            cpus=self.cpus or base.cpus,
            pids=self.pids or base.pids,
            user=self.user or base.user,
        )

    def resolved(self, workspace: Path) -> ContainerSettings:
        """With the built-in memory and pids limits, and the workspace's owner as the user."""
        from controllers.container import default_user

        return replace(
            self,
            memory=self.memory or DEFAULT_MEMORY,
            pids=self.pids or DEFAULT_PIDS,
            user=self.user or default_user(workspace),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "mounts": [str(m) for m in self.mounts],
            "memory": self.memory,
            "cpus": self.cpus,
            "pids": self.pids,
            "user": self.user,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContainerSettings:
        """From ``to_dict``'s output (a launch record: already checked at dispatch)."""
        mounts = tuple(_split_mount(m) for m in data.get("mounts") or () if isinstance(m, str))
        return cls(
            mounts=tuple(m for m in mounts if m is not None),
            memory=_typed(data.get("memory"), str),
            cpus=_typed(data.get("cpus"), float),
            pids=_typed(data.get("pids"), int),
            user=_typed(data.get("user"), str),
        )


def settings(
    *,
    mounts: Iterable[str] = (),
    memory: str | None = None,
    cpus: float | str | None = None,
    pids: int | str | None = None,
    user: str | None = None,
    base: Path | None = None,
) -> ContainerSettings:
    """Checked settings from their written form; ``UsageError`` (one line) for a bad one.

    A relative mount source is taken from ``base`` (the config file's directory), else from the
    current directory.
    """
    if isinstance(mounts, str):
        raise UsageError("mounts must be a list of SRC:DST[:ro]")
    checked = [parse_mount(spec, base) for spec in mounts]
    targets = [m.target for m in checked]
    for target in targets:
        if targets.count(target) > 1:
            raise UsageError(f"mounts: two mounts at {target}")
    return ContainerSettings(
        mounts=tuple(checked),
        memory=None if memory is None else check_memory(memory),
        cpus=None if cpus is None else check_cpus(cpus),
        pids=None if pids is None else check_pids(pids),
        user=None if user is None else check_user(user),
    )


def parse_mount(spec: str, base: Path | None = None) -> Mount:
    """``SRC:DST[:ro|:rw]``: SRC an existing host path, DST absolute and clear of luzia's own."""
    mount = _split_mount(spec) if isinstance(spec, str) else None
    if mount is None:
        raise UsageError(f"mount must be SRC:DST or SRC:DST:ro, not {spec!r}")
    source = Path(os.path.expanduser(mount.source))
    if not source.is_absolute():
        source = (base or Path.cwd()) / source
    source = Path(os.path.normpath(source))
    if not source.exists():
        raise UsageError(f"mount {spec}: {source} does not exist on this host")
    if not mount.target.startswith("/"):
        raise UsageError(f"mount {spec}: the destination must be an absolute path")
    target = os.path.normpath(mount.target)
    if target == "/":
        raise UsageError(f"mount {spec}: cannot mount over the container's root")
    for reserved in RESERVED_TARGETS:
        if target == reserved or target.startswith(reserved + "/"):
            raise UsageError(f"mount {spec}: {reserved} is luzia's own; choose another destination")
    return Mount(str(source), target, mount.read_only)


def check_memory(value: str) -> str:
    """A memory limit such as ``512m`` or ``2g`` (bytes without a unit), at least 6 MiB."""
    match = re.fullmatch(_MEMORY, value.strip().lower()) if isinstance(value, str) else None
    if match is None:
        raise UsageError(f'memory must be a size like "512m" or "2g", not {value!r}')
    if float(match.group(1)) * _UNITS[match.group(2)] < MIN_MEMORY:
        raise UsageError(f"memory must be at least 6m (Docker's minimum), not {value!r}")
    return match.group(1) + match.group(2)


def check_cpus(value: float | str) -> float:
    """A number of CPUs such as ``1.5``, at least 0.01 (Docker's granularity)."""
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except ValueError:
        number = math.nan
    if not number >= 0.01 or math.isinf(number):
        raise UsageError(f"cpus must be a number of CPUs >= 0.01, like 1.5, not {value!r}")
    return number


def check_pids(value: int | str) -> int:
    """The most processes the container may hold at once, at least 1."""
    try:
        number = int(value) if not isinstance(value, bool | float) else 0
    except ValueError:
        number = 0
    if number < 1:
        raise UsageError(f"pids must be a whole number >= 1, not {value!r}")
    return number


def check_user(value: str) -> str:
    """``UID[:GID]``, numbers: luzia gives that user the job's directory before the container
    starts, and a name would mean nothing outside the image."""
    if not isinstance(value, str) or not re.fullmatch(_USER, value):
        raise UsageError(f'user must be UID or UID:GID, like "1000:1000", not {value!r}')
    return value


def _split_mount(spec: str) -> Mount | None:
    parts = spec.split(":")
    mode = parts.pop() if len(parts) == 3 else "rw"
    if len(parts) != 2 or not all(parts) or mode not in ("ro", "rw"):
        return None
    return Mount(parts[0], parts[1], mode == "ro")


def _typed(value: object, kind: type[_T]) -> _T | None:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None
