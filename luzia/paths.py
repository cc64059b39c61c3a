"""Where luzia keeps its state and finds its configuration (XDG base directories).

Layout under ``luzia_home()``::

    luzia.db            the job store (SQLite, WAL; plus luzia.db-wal, luzia.db-shm)
    jobs/<id>/task.txt  the task text, as dispatched
    jobs/<id>/output.log  everything the pane printed
    jobs/<id>/exit_code   the command's exit status, written by the pane's wrapper

The home holds task texts, logs and the store, which other users must not read: luzia creates
its directories 0700 and its files 0600 (:func:`make_private_dir`, :func:`write_private`), and
:func:`home_warning` tells about a home someone opened up.
"""

from __future__ import annotations

import contextlib
import os
import stat
import zlib
from pathlib import Path

from controllers.errors import LuziaError

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


def make_private_dir(path: Path, *, parents: bool = False) -> None:
    """Create ``path`` 0700 unless it exists (one that does is left alone: see
    :func:`home_warning`); parents, if asked for, get the usual mode."""
    path.mkdir(mode=0o700, parents=parents, exist_ok=True)


def private_opener(path: str, flags: int) -> int:
    """An ``opener`` for :func:`open` creating the file 0600 (an existing one keeps its mode)."""
    return os.open(path, flags | os.O_CLOEXEC, 0o600)


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path``'s content with ``data``, creating it 0600: only its owner reads it."""
    with open(path, "wb", opener=private_opener) as f:
        f.write(data)


def home_warning(home: Path) -> str | None:
    """One line when ``home`` is open to group or others (an older luzia, or a person, made it
    so): its logs, task texts and store are then readable by other users. One ``stat``."""
    try:
        mode = stat.S_IMODE(os.stat(home).st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"warning: {home} is open to other users (mode {mode:04o}); they can read its jobs "
        f"and logs: chmod 700 {home}"
    )


class UnsafeRuntimeDir(LuziaError, OSError):
    """The directory for luzia's sockets is not private to this user; it is never used.

    A ``LuziaError`` (the engine logs it and runs on, the CLI prints one line) and an ``OSError``
    (what a socket that cannot be made raises)."""


def runtime_dir() -> Path:
    """A directory for this user's sockets, private (0700, ours), checked like tmux checks its own.

    ``$XDG_RUNTIME_DIR/luzia`` when that is set, else ``$TMPDIR/luzia-<uid>`` (``/tmp``). Another
    user could create the ``/tmp`` one first and swap our sockets for theirs; a directory that is
    not ours, is a symlink, or is open to group or others is refused with
    :class:`UnsafeRuntimeDir`, naming it.
    """
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg) and os.path.isdir(xdg):
        path = Path(xdg) / "luzia"
    else:
        path = Path(os.environ.get("TMPDIR") or "/tmp") / f"luzia-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    check_private_dir(path)
    return path


def check_private_dir(path: Path) -> None:
    """Raise :class:`UnsafeRuntimeDir` unless ``path`` is a directory (not a symlink) of this
    user's that no one else may enter: a socket in it is ours."""
    uid = os.getuid()
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise UnsafeRuntimeDir(f"cannot use the socket directory {path}: {exc.strerror}") from exc
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


def home_tag(home: Path) -> str:
    """A short name unique to ``home`` for its sockets (AF_UNIX paths: ~107 bytes at most)."""
    return f"{zlib.crc32(str(home.resolve()).encode()):08x}"
