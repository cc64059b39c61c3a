"""Where luzia keeps its state and finds its configuration (XDG base directories).

Layout under ``luzia_home()``::

    luzia.db            the job store (SQLite, WAL; plus luzia.db-wal, luzia.db-shm)
    jobs/<id>/task.txt  the task text, as dispatched
    jobs/<id>/output.log  everything the pane printed
    jobs/<id>/exit_code   the command's exit status, written by the pane's wrapper
"""

from __future__ import annotations

import contextlib
import os
import stat
import zlib
from pathlib import Path

DB_NAME = "luzia.db"
JOBS_DIR = "jobs"
TASK_FILE = "task.txt"
LOG_FILE = "output.log"
EXIT_CODE_FILE = "exit_code"


def _xdg_dir(variable: str, fallback: str) -> Path:
    """An XDG base directory; the spec says relative values are invalid and must be ignored."""
    value = os.environ.get(variable, "")
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def luzia_home() -> Path:
    """``$LUZIA_HOME``, else ``$XDG_STATE_HOME/luzia``, else ``~/.local/state/luzia``."""
    explicit = os.environ.get("LUZIA_HOME", "")
    if explicit:
        return Path(explicit).expanduser().absolute()
    return _xdg_dir("XDG_STATE_HOME", ".local/state") / "luzia"


def config_path() -> Path:
    """``$LUZIA_CONFIG``, else ``$XDG_CONFIG_HOME/luzia/config.toml``, else ``~/.config/...``."""
    explicit = os.environ.get("LUZIA_CONFIG", "")
    if explicit:
        return Path(explicit).expanduser().absolute()
    return _xdg_dir("XDG_CONFIG_HOME", ".config") / "luzia" / "config.toml"


def config_path_is_explicit() -> bool:
    """Whether the user named a config file; a named file that is missing is an error."""
    return bool(os.environ.get("LUZIA_CONFIG", ""))


def db_path(home: Path) -> Path:
    return home / DB_NAME


def jobs_root(home: Path) -> Path:
    return home / JOBS_DIR


def job_dir(home: Path, job_id: str) -> Path:
    return home / JOBS_DIR / job_id


class UnsafeRuntimeDir(OSError):
    """The directory for luzia's sockets is not private to this user; it is never used."""


def runtime_dir() -> Path:
    """A directory for this user's sockets, private (0700, ours), checked like tmux checks its own.

    ``$XDG_RUNTIME_DIR/luzia`` when that is set, else ``$TMPDIR/luzia-<uid>`` (``/tmp``). Another
    user could create the ``/tmp`` one first and swap our sockets for theirs; a directory that is
    not ours, is a symlink, or is open to group or others is refused with
    :class:`UnsafeRuntimeDir`, naming it.
    """
    uid = os.getuid()
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg) and os.path.isdir(xdg):
        path = Path(xdg) / "luzia"
    else:
        path = Path(os.environ.get("TMPDIR") or "/tmp") / f"luzia-{uid}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    problem = None
    if not stat.S_ISDIR(st.st_mode):
        problem = "it is not a directory"
    elif st.st_uid != uid:
        problem = f"it belongs to uid {st.st_uid}, not {uid}"
    elif st.st_mode & 0o077:
        problem = f"its mode is {stat.S_IMODE(st.st_mode):04o}, not 0700"
    if problem:
        raise UnsafeRuntimeDir(
            f"refusing the socket directory {path}: {problem}; remove it (another user may "
            "have created it) and try again"
        )
    return path


def home_tag(home: Path) -> str:
    """A short name unique to ``home`` for its sockets (AF_UNIX paths: ~107 bytes at most)."""
    return f"{zlib.crc32(str(home.resolve()).encode()):08x}"
