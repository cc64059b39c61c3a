"""A container job's agent HOME: a directory of the job's own, seeded by the agent's kind, that
the container sees as ``$HOME``.

Each job gets a fresh copy, never a host file bind-mounted writable: what the agent writes
there (sessions, caches, a refreshed token) cannot change the user's own files, and one job
cannot see another's. It lives in the job's private directory and goes with it.
"""

from __future__ import annotations

import os
from pathlib import Path

from luzia.agents.kind import AgentKind, SeedContext
from luzia.jobenv import read_env_file

HOME_DIR = "home"
"""In the job directory: the agent's HOME."""


def prepare_home(job_dir: Path, kind: AgentKind, user_home: Path, owner: tuple[int, int]) -> Path:
    """Create and seed ``job_dir/home`` for ``kind``; ``owner`` (uid, gid; -1: unchanged), the
    container's user, gets every file of it (root can give them; anyone else runs containers
    as themselves)."""
    home = job_dir / HOME_DIR
    home.mkdir(mode=0o700, exist_ok=True)
    kind.seed_home(home, SeedContext(user_home=user_home, env=read_env_file(job_dir)))
    if os.getuid() == 0 and owner != (0, 0):
        for path in (home, *home.rglob("*")):
            os.chown(path, *owner, follow_symlinks=False)
    return home
