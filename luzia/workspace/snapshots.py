"""Snapshots: the full state of a workspace recorded as a commit under ``refs/luzia/<job>/``.

A snapshot adds objects and one ref, nothing else: files are added to a temporary index
(``GIT_INDEX_FILE``) seeded from a copy of the real one, so the working tree, the index, HEAD and
the branches stay as they are. Also here: which workspace a path belongs to, for the engine's
one-active-job-per-workspace policy.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from luzia.errors import UsageError
from luzia.workspace.git import (
    Repo,
    WorkspaceError,
    find_repo,
    git_error,
    head_and_branch,
    require_repo,
)

REF_NAMESPACE = "refs/luzia"
"""Every ref luzia writes lives under here, one directory per job."""

SNAPSHOT_IDENTITY = {
    "GIT_AUTHOR_NAME": "luzia",
    "GIT_AUTHOR_EMAIL": "luzia@localhost",
    "GIT_COMMITTER_NAME": "luzia",
    "GIT_COMMITTER_EMAIL": "luzia@localhost",
}
"""Who snapshot commits are by: never the user, whose identity may not even be configured."""

_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_FIELD = re.compile(r"^Luzia-(Head|Branch|Index|Taken-At): (\S+)$", re.MULTILINE)
_NONE = "none"
_UNMERGED = "unmerged"
_NO_COMMIT = b"does not have a commit checked out"  # a nested repository git cannot record yet


class NoSnapshot(WorkspaceError):
    """A job has no snapshot of the kind an operation needs."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One recorded state of a workspace, as stored under ``ref``.

    ``commit`` is the snapshot commit; its ``tree`` holds every file of the working tree that git
    does not ignore, as ``git add -A`` would record it. ``head`` is the commit HEAD pointed at
    (``None`` in a repository with no commits yet), ``branch`` the branch HEAD was on (``None``
    when detached). ``index_commit`` is a commit whose tree is what the index held (staged
    changes), ``None`` when it had unmerged entries. ``taken_at`` is unix seconds.
    """

    ref: str
    commit: str
    head: str | None
    branch: str | None
    taken_at: float
    tree: str
    index_commit: str | None


@dataclass(frozen=True, slots=True)
class JobSnapshots:
    """The snapshots recorded for one job; either may be missing."""

    pre: Snapshot | None
    post: Snapshot | None


Fetch = Callable[[Path], None]
"""Writes the files of a workspace that lives elsewhere (a swarm job's copy on its node) into
an empty directory; a snapshot then records those files in the workspace's repository here."""


def snapshot(workspace: Path | str, ref: str, fetch: Fetch | None = None) -> Snapshot | None:
    """Record the full state of ``workspace`` under ``ref``, touching nothing of the user's;
    with ``fetch``, the state of the copy it brings (HEAD and the index are this one's).

    ``None`` when the workspace is not in a git repository (or git ignores it). Raises
    ``WorkspaceError`` when git fails, e.g. on a file it cannot read.
    """
    if not ref.startswith("refs/"):
        raise UsageError(f"snapshot ref {ref!r} must start with refs/")
    repo = find_repo(Path(workspace))
    if isinstance(repo, str):
        return None
    with fetched(repo, fetch) as source, capture(source) as state:
        index_commit = None
        if state.index_tree is not None:
            index_commit = repo.out(
                "commit-tree",
                state.index_tree,
                "-m",
                f"luzia index for {ref}",
                env=SNAPSHOT_IDENTITY,
            )
        taken_at = round(time.time(), 3)
        message = (
            f"luzia snapshot {ref}\n\n"
            f"Luzia-Head: {state.head or _NONE}\n"
            f"Luzia-Branch: {state.branch or _NONE}\n"
            f"Luzia-Index: {index_commit or _UNMERGED}\n"
            f"Luzia-Taken-At: {taken_at:.3f}\n"
        )
        parents = [p for sha in (state.head, index_commit) if sha for p in ("-p", sha)]
        commit = repo.out(
            "commit-tree",
            state.tree,
            *parents,
            "-F",
            "-",
            input=message.encode(),
            env=SNAPSHOT_IDENTITY,
        )
        repo.run("update-ref", "-m", "luzia snapshot", ref, commit)
    return Snapshot(
        ref=ref,
        commit=commit,
        head=state.head,
        branch=state.branch,
        taken_at=taken_at,
        tree=state.tree,
        index_commit=index_commit,
    )


def pre_task(workspace: Path | str, job_id: str) -> Snapshot | None:
    """Snapshot the workspace before job ``job_id`` starts, under ``refs/luzia/<job>/pre``."""
    return snapshot(workspace, job_ref(job_id, "pre"))


def post_task(workspace: Path | str, job_id: str, fetch: Fetch | None = None) -> Snapshot | None:
    """Snapshot the workspace after job ``job_id`` ended, under ``refs/luzia/<job>/post``."""
    return snapshot(workspace, job_ref(job_id, "post"), fetch)


def ensure_post_task(
    workspace: Path | str, job_id: str, fetch: Fetch | None = None
) -> Snapshot | None:
    """The job's post-task snapshot: the existing one, or one taken now (of the copy ``fetch``
    brings, for a job that changed a copy of the workspace).

    The engine takes it when a job ends; a command (``luzia commit``) may ask first. A lock
    per job in the git directory makes the two take turns, so the ref is written once and
    never read while another process replaces it.
    """
    repo = find_repo(Path(workspace))
    if isinstance(repo, str):
        return None
    with _job_lock(repo, job_id):
        existing = read_job_snapshots(repo, job_id).post
        return existing if existing is not None else post_task(workspace, job_id, fetch)


@contextmanager
def _job_lock(repo: Repo, job_id: str) -> Iterator[None]:
    """One lock file per repository (``.git/luzia.lock``), kept: removing a flock file would
    let a waiter and a newcomer each lock a different inode."""
    job_ref(job_id, "")  # validates the id
    fd = os.open(repo.git_dir / "luzia.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def job_ref(job_id: str, which: str) -> str:
    """The ref of one of a job's snapshots, e.g. ``refs/luzia/k3v9q0tz/pre``."""
    if not _JOB_ID.fullmatch(job_id):
        raise UsageError(f"job id {job_id!r} cannot name a git ref: use letters, digits, - and _")
    return f"{REF_NAMESPACE}/{job_id}/{which}"


def job_snapshots(workspace: Path | str, job_id: str) -> JobSnapshots:
    """The pre and post snapshots of a job; raises ``NotAGitWorkspace`` outside git."""
    return read_job_snapshots(require_repo(Path(workspace), "show"), job_id)


def forget(workspace: Path | str, job_id: str) -> bool:
    """Delete a job's refs (``luzia rm``); ``True`` if there were any. Silent outside git."""
    repo = find_repo(Path(workspace))
    if isinstance(repo, str):
        return False
    refs = repo.out("for-each-ref", "--format=%(refname)", job_ref(job_id, "")).split()
    if refs:
        repo.run("update-ref", "--stdin", input="".join(f"delete {r}\n" for r in refs).encode())
    return bool(refs)


def snapshot_jobs(workspace: Path | str) -> list[str]:
    """Ids of the jobs that have refs in the workspace's repository (to find leftovers)."""
    repo = find_repo(Path(workspace))
    if isinstance(repo, str):
        return []
    refs = repo.out("for-each-ref", "--format=%(refname)", f"{REF_NAMESPACE}/").split()
    return sorted({r.split("/")[2] for r in refs if r.count("/") >= 3})


def workspace_root(workspace: Path | str) -> Path:
    """The directory a job's workspace shares with any other: its git working tree's top, or
    the directory itself outside git. One git call."""
    path = Path(os.path.abspath(workspace))
    repo = find_repo(path)
    return path.resolve() if isinstance(repo, str) else repo.top


def workspace_busy(
    workspace: Path | str,
    active: Iterable[Path | str],
    *,
    root: Callable[[Path | str], Path] | None = None,
) -> Path | None:
    """The first of ``active`` (workdirs of running jobs) that shares a workspace with
    ``workspace``: same git working tree, or one directory inside the other. ``None`` if free.

    This is the engine's check for the one-active-job-per-workspace policy
    (``docs/workspace-safety.md``). Each path costs one git call through ``root`` (default
    :func:`workspace_root`); a caller checking many jobs passes a memoized one.
    """
    root = root or workspace_root
    mine = root(workspace)
    for other in active:
        theirs = root(other)
        if mine == theirs or mine.is_relative_to(theirs) or theirs.is_relative_to(mine):
            return Path(other)
    return None


@dataclass(frozen=True, slots=True)
class WorkspaceState:
    """The workspace now: trees of the working tree and index, HEAD, and the temporary index."""

    tree: str
    index_tree: str | None
    head: str | None
    branch: str | None
    index_file: Path


@contextmanager
def fetched(repo: Repo, fetch: Fetch | None) -> Iterator[Repo]:
    """``repo`` itself, or with ``fetch``: the repository with its files read from a temporary
    copy that ``fetch`` fills, laid out like the working tree (the workspace at its prefix,
    the ``.gitignore`` files of the directories above it copied, so the same files are ignored)."""
    if fetch is None:
        yield repo
        return
    with tempfile.TemporaryDirectory(prefix="luzia-copy-") as tmp:
        top = Path(tmp)
        here = top / repo.prefix
        here.mkdir(parents=True, exist_ok=True)
        for above in Path(repo.prefix).parents:
            ignore = repo.top / above / ".gitignore"
            if ignore.is_file() and not ignore.is_symlink():
                shutil.copyfile(ignore, top / above / ".gitignore")
        fetch(here)
        yield repo.elsewhere(top)


@contextmanager
def capture(repo: Repo) -> Iterator[WorkspaceState]:
    """Write the workspace's trees through a temporary index, which lives until the exit."""
    head, branch = head_and_branch(repo)
    with tempfile.TemporaryDirectory(prefix="luzia-index-") as tmp:
        index = Path(tmp, "index")
        if repo.index.is_file():
            shutil.copy2(repo.index, index)
        elif head is not None:
            repo.run("read-tree", head, index=index)
        index_tree = _write_tree(repo, index)
        added = repo.run("add", "--all", "--ignore-errors", "--", ".", index=index, ok=(0, 1))
        if added.returncode and any(
            ln.startswith(b"error:") and _NO_COMMIT not in ln for ln in added.stderr.splitlines()
        ):
            raise git_error(repo.workspace, ("add",), added)
        tree = _write_tree(repo, index)
        if tree is None:  # conflicts outside a subdirectory workspace: take those files as they are
            top = dataclasses.replace(repo, workspace=repo.top)
            listed = top.run("ls-files", "-u", "-z", index=index).stdout
            paths = {os.fsdecode(rec.split(b"\t", 1)[1]) for rec in listed.split(b"\0") if rec}
            top.run("add", "--all", "--", *sorted(paths), index=index)
            tree = repo.out("write-tree", index=index)
        yield WorkspaceState(tree, index_tree, head, branch, index)


def _write_tree(repo: Repo, index: Path) -> str | None:
    """The tree of an index, or ``None`` when it has unmerged entries (a conflict)."""
    written = repo.run("write-tree", index=index, ok=(0, 128))
    if written.returncode and b"unmerged" not in written.stderr:
        raise git_error(repo.workspace, ("write-tree",), written)
    return None if written.returncode else written.stdout.decode().strip()


def read_job_snapshots(repo: Repo, job_id: str) -> JobSnapshots:
    base = job_ref(job_id, "")
    fmt = "%(refname)%00%(objectname)%00%(tree)%00%(contents)%00"
    out = repo.run("for-each-ref", f"--format={fmt}", base).stdout.decode("utf-8", "replace")
    found: dict[str, Snapshot] = {}
    for record in out.split("\0\n"):
        if record.strip():
            ref, sha, tree, text = record.lstrip("\n").split("\0", 3)
            found[ref] = _parse(ref, sha, tree, text)
    return JobSnapshots(found.get(base + "pre"), found.get(base + "post"))


def _parse(ref: str, sha: str, tree: str, text: str) -> Snapshot:
    fields = dict(_FIELD.findall(text))
    if not {"Head", "Branch", "Index", "Taken-At"} <= fields.keys():
        raise WorkspaceError(f"{ref} ({sha[:12]}) is not a luzia snapshot; delete it with git")

    def opt(key: str, empty: str) -> str | None:
        return None if fields[key] == empty else fields[key]

    return Snapshot(
        ref=ref,
        commit=sha,
        head=opt("Head", _NONE),
        branch=opt("Branch", _NONE),
        taken_at=float(fields["Taken-At"]),
        tree=tree,
        index_commit=opt("Index", _UNMERGED),
    )


def finished_snapshots(repo: Repo, job_id: str, action: str) -> tuple[Snapshot, Snapshot]:
    snaps = read_job_snapshots(repo, job_id)
    if snaps.pre is None:
        raise NoSnapshot(
            f"job {job_id} has no pre-task snapshot in {repo.workspace}: cannot {action}"
        )
    if snaps.post is None:
        raise NoSnapshot(
            f"job {job_id} has no post-task snapshot in {repo.workspace} (is it still running?): "
            f"cannot {action} it before it ends"
        )
    return snaps.pre, snaps.post
