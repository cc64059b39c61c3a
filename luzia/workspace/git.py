"""Running git on a workspace: one function, fixed settings, a clean environment.

No hook, fsmonitor or external diff of the user's ever runs, and the caller's ``GIT_*`` variables
(``GIT_DIR``, ``GIT_INDEX_FILE``...) never leak in. A failure becomes a ``WorkspaceError`` that
quotes what git said.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from luzia.errors import LuziaError

SAFE_CONFIG: tuple[str, ...] = (
    "core.hooksPath=/dev/null",  # no hook runs: reference-transaction, post-index-change, ...
    "core.fsmonitor=false",  # no fsmonitor hook or daemon is started on the user's behalf
    "core.splitIndex=false",  # a temporary index never writes shared-index files into .git
    "core.safecrlf=false",  # a line-ending warning must not make a snapshot fail
    "core.quotePath=false",  # paths in diffs and messages as they are, not octal escapes
    "submodule.recurse=false",  # never reach into a submodule's working tree
    "color.ui=never",
    "i18n.commitEncoding=UTF-8",
    "gc.auto=0",
    "maintenance.auto=false",
)
"""``-c`` settings on every git call: they override whatever the user's config says."""

_KEPT_GIT_VARIABLES = frozenset(
    {
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "GIT_CEILING_DIRECTORIES",
        "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    }
)
_GLOBS = {"GIT_LITERAL_PATHSPECS": "0"}  # check-ignore refuses literal pathspecs


class WorkspaceError(LuziaError):
    """git failed on a workspace, or a workspace operation cannot be done; the message says why."""


class NotAGitWorkspace(WorkspaceError):
    """The workspace is not in a git repository, so luzia has no snapshots of it."""

    def __init__(self, workspace: Path, reason: str, action: str) -> None:
        super().__init__(
            f"{workspace} {reason}: luzia snapshots only git workspaces, so there is nothing to "
            f"{action}"
        )
        self.workspace = workspace


def _environment(extra: dict[str, str] | None, index: Path | None) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in _KEPT_GIT_VARIABLES
    }
    env.pop("LANGUAGE", None)
    env.update(
        LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", GIT_LITERAL_PATHSPECS="1"
    )
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    if extra:
        env.update(extra)
    return env


def run_git(
    cwd: Path,
    args: Sequence[str],
    *,
    index: Path | None = None,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    ok: Collection[int] = (0,),
) -> subprocess.CompletedProcess[bytes]:
    """Run one git command in ``cwd`` with the safe settings; raise unless it exits in ``ok``."""
    command = ["git", "--no-pager"]
    for setting in SAFE_CONFIG:
        command += ["-c", setting]
    command += ["-C", str(cwd), *args]
    try:
        proc = subprocess.run(
            command,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            env=_environment(env, index),
            check=False,
        )
    except FileNotFoundError as exc:
        raise WorkspaceError("git is not installed (or not on PATH); luzia needs it") from exc
    if proc.returncode not in ok:
        raise git_error(cwd, args, proc)
    return proc


def git_error(
    cwd: Path, args: Sequence[str], proc: subprocess.CompletedProcess[bytes]
) -> WorkspaceError:
    lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    said = [ln for ln in lines if ln.startswith(("fatal:", "error:"))] or lines[-3:]
    detail = "; ".join(ln.strip() for ln in said[:3]) or f"exit status {proc.returncode}"
    return WorkspaceError(f"git {args[0]} failed in {cwd}: {detail}")


@dataclass(frozen=True, slots=True)
class Repo:
    """A workspace known to be in a git working tree; ``prefix`` is its path from the top.

    ``work_tree``: the files are read from there instead (:meth:`elsewhere`)."""

    workspace: Path
    top: Path
    git_dir: Path
    index: Path
    prefix: str
    work_tree: Path | None = None

    def elsewhere(self, top: Path) -> Repo:
        """This repository with its files read from ``top`` (a copy of the working tree, the
        workspace at ``top/prefix``): a snapshot of a workspace that lives on another machine,
        recorded here."""
        return dataclasses.replace(self, workspace=top / self.prefix, top=top, work_tree=top)

    def run(
        self,
        *args: str,
        index: Path | None = None,
        env: dict[str, str] | None = None,
        input: bytes | None = None,
        ok: Collection[int] = (0,),
    ) -> subprocess.CompletedProcess[bytes]:
        if self.work_tree is not None:
            env = {**(env or {}), "GIT_DIR": str(self.git_dir), "GIT_WORK_TREE": str(self.top)}
        return run_git(self.workspace, args, index=index, env=env, input=input, ok=ok)

    def out(
        self,
        *args: str,
        index: Path | None = None,
        env: dict[str, str] | None = None,
        input: bytes | None = None,
    ) -> str:
        proc = self.run(*args, index=index, env=env, input=input)
        return proc.stdout.decode("utf-8", "surrogateescape").strip()


def find_repo(workspace: Path) -> Repo | str:
    """The workspace's repository, or why it has none (a phrase that follows the path)."""
    path = Path(os.path.abspath(workspace))
    if not path.is_dir():
        return "does not exist" if not path.exists() else "is not a directory"
    args = ("rev-parse", "--show-toplevel", "--absolute-git-dir")
    proc = run_git(path, (*args, "--git-path", "index", "--show-prefix"), ok=(0, 128))
    if proc.returncode:
        said = proc.stderr.decode("utf-8", "replace")
        if "not a git repository" in said:
            return "is not in a git repository"
        if "must be run in a work tree" in said:
            return "is not in a git working tree"
        raise git_error(path, args, proc)
    lines = proc.stdout.decode("utf-8", "surrogateescape").split("\n")
    top, git_dir, index, prefix = lines[:4]
    if prefix and run_git(path, ("check-ignore", "-q", "."), env=_GLOBS, ok=(0, 1)).returncode == 0:
        return f"is ignored by the git repository at {top}"
    return Repo(path, Path(top), Path(git_dir), path / index, prefix)


def require_repo(workspace: Path, action: str) -> Repo:
    repo = find_repo(workspace)
    if isinstance(repo, str):
        raise NotAGitWorkspace(Path(os.path.abspath(workspace)), repo, action)
    return repo


def head_and_branch(repo: Repo) -> tuple[str | None, str | None]:
    sym = repo.run("symbolic-ref", "-q", "HEAD", ok=(0, 1))
    branch = sym.stdout.decode().strip() if sym.returncode == 0 else None
    return resolve_commit(repo, "HEAD"), branch


def resolve_commit(repo: Repo, name: str) -> str | None:
    proc = repo.run("rev-parse", "-q", "--verify", f"{name}^{{commit}}", ok=(0, 1))
    return proc.stdout.decode().strip() if proc.returncode == 0 else None
