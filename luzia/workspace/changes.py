"""The agent's change: what it is (``diff``), keeping it (``commit``), undoing it (``revert``).

Only ``commit`` and ``revert`` ever write the user's state, and only when a person asks. Both
refuse, with a message saying why, when the workspace moved on in a way that would make them lose
or mix up somebody's work.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from luzia.errors import UsageError
from luzia.workspace.git import (
    Repo,
    WorkspaceError,
    git_error,
    head_and_branch,
    require_repo,
    resolve_commit,
)
from luzia.workspace.snapshots import (
    Fetch,
    NoSnapshot,
    Snapshot,
    WorkspaceState,
    capture,
    fetched,
    finished_snapshots,
    read_job_snapshots,
)
from luzia.workspace.trees import (
    Entry,
    diff_trees,
    empty_tree,
    index_info,
    merge_file,
    parse_raw_diff,
    tree_with,
    trees_agree,
)

_IN_PROGRESS = ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "rebase-merge", "rebase-apply")
_SHOWN_PATHS = 5


class WorkspaceChanged(WorkspaceError):
    """Refused: the workspace or its branch moved on since the snapshot the operation relies on."""


class ChangesOverlap(WorkspaceError):
    """Refused: the agent's change cannot be separated from the user's own uncommitted changes."""


class NothingToCommit(WorkspaceError):
    """The job changed nothing that a commit could hold."""


def diff(
    workspace: Path | str, job_id: str, *, stat: bool = False, fetch: Fetch | None = None
) -> str:
    """Exactly what job ``job_id`` changed in the workspace, as a git diff.

    Pre against post snapshot; while the job has no post snapshot yet, pre against the workspace
    as it is now (a temporary snapshot, stored under no ref), or against the copy ``fetch``
    brings for a job that works on a copy. Renames are detected; binary files
    show as ``Binary files ... differ``. ``stat`` gives ``git diff --stat --summary`` instead.
    Bytes that are not UTF-8 come out as U+FFFD.
    """
    repo = require_repo(Path(workspace), "diff")
    snaps = read_job_snapshots(repo, job_id)
    if snaps.pre is None:
        raise NoSnapshot(
            f"job {job_id} has no pre-task snapshot in {repo.workspace}, so luzia cannot tell "
            "what it changed (it ran before the workspace was a git repository, or was forgotten)"
        )
    if snaps.post is not None:
        after = snaps.post.tree
    else:
        with fetched(repo, fetch) as source, capture(source) as state:
            after = state.tree
    shape = ["--stat=120", "--summary"] if stat else []
    out = repo.run(
        "-c",
        "diff.relative=false",
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--find-renames",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        *shape,
        snaps.pre.tree,
        after,
        "--",
        ".",
    ).stdout
    return out.decode("utf-8", "replace")


def commit(
    workspace: Path | str,
    job_id: str,
    *,
    message: str | None = None,
    branch: str | None = None,
    task: str | None = None,
    copied: bool = False,
) -> str:
    """Commit exactly the agent's change (post minus pre snapshot); return the new commit's sha.

    ``copied``: the job changed a copy of the workspace (a swarm job). On the current branch its
    change is then first brought into the workspace (:func:`apply`), so the working tree holds
    what was committed as after any other job, and taken back out if the commit is refused.

    With ``branch=None`` the commit goes on the current branch (or detached HEAD), which must
    not have moved since the pre snapshot, and the working tree must still equal the post
    snapshot; the index entries of the committed paths are set to the committed content, so the
    user's own uncommitted changes stay uncommitted. Otherwise a new branch ``branch`` is created
    from the pre snapshot's HEAD and nothing else changes. The default message is
    ``luzia job <id>: <first line of task>`` with a ``Luzia-Job: <id>`` trailer.

    A file both the user (before the job) and the agent changed is merged line by line so that
    only the agent's lines are committed; if that fails, ``ChangesOverlap`` is raised.
    """
    if copied and branch is None and apply(workspace, job_id):
        try:
            return commit(workspace, job_id, message=message, task=task)
        except WorkspaceError:
            revert(workspace, job_id)
            raise
    repo = require_repo(Path(workspace), "commit")
    pre, post = finished_snapshots(repo, job_id, "commit")
    target = _branch_ref(repo, branch) if branch is not None else None
    if target is None:
        _check_on_pre_head(repo, job_id, pre)
        with capture(repo) as state:
            _check_unchanged(repo, job_id, post, state, "commit it on the current branch")
    head_tree = repo.out("rev-parse", f"{pre.head}^{{tree}}") if pre.head else empty_tree(repo)
    new_tree = _agent_change_onto(repo, job_id, head_tree, pre, post)
    text = _commit_message(job_id, message, task)
    sign = ["-S"] if _config_true(repo, "commit.gpgSign") else []
    parents = ["-p", pre.head] if pre.head else []
    sha = repo.out("commit-tree", new_tree, *parents, *sign, "-F", "-", input=text.encode())
    reflog = f"luzia commit: job {job_id}"
    if target is not None:
        _update_ref(repo, target, sha, "", reflog, f"branch {target.removeprefix('refs/heads/')}")
        return sha
    if pre.branch is not None:
        _update_ref(repo, pre.branch, sha, pre.head or "", reflog, pre.branch)
    else:
        _update_ref(repo, "HEAD", sha, pre.head or "", reflog, "HEAD", no_deref=True)
    committed = diff_trees(repo, head_tree, new_tree, scoped=False)
    info = index_info([(c.path, c.new) for c in committed], like=sha)
    repo.run("update-index", "-z", "--index-info", input=info)
    return sha


def apply(workspace: Path | str, job_id: str) -> bool:
    """Bring job ``job_id``'s change into the workspace: the mirror of :func:`revert`, for a
    job that changed a copy (a swarm job) or whose change was reverted. ``False`` when the
    workspace already holds it.

    Refuses with ``WorkspaceChanged`` unless the workspace is as it was before the job (files,
    HEAD and branch), since a change made since could be lost or mixed in; refuses over
    ignored files where the job created files.
    """
    repo = require_repo(Path(workspace), "apply")
    pre, post = finished_snapshots(repo, job_id, "apply")
    with capture(repo) as state:
        if _holds(repo, state, post):
            return False
        _turn(repo, job_id, state, pre, post, "apply")
    _point_at(repo, state, post, f"luzia apply: job {job_id}")
    return True


def revert(workspace: Path | str, job_id: str) -> None:
    """Put the workspace back as it was before job ``job_id``: files, index, HEAD and branch.

    Files the agent created are removed, files it deleted come back, the user's uncommitted
    changes (staged and unstaged) and untracked files are as they were; ignored files are never
    touched. If the agent committed, the branch goes back to its pre-task commit (the agent's
    commits stay reachable from ``refs/luzia/<job>/post``). Refuses with ``WorkspaceChanged``
    when the workspace differs from the post snapshot, since that change would be lost. Doing it
    twice is harmless: a workspace already in its pre-task state is left alone.
    """
    repo = require_repo(Path(workspace), "revert")
    pre, post = finished_snapshots(repo, job_id, "revert")
    with capture(repo) as state:
        if _holds(repo, state, pre):
            return
        _turn(repo, job_id, state, post, pre, "revert")
    _point_at(repo, state, pre, f"luzia revert: job {job_id}")


def _holds(repo: Repo, state: WorkspaceState, snap: Snapshot) -> bool:
    """Whether the workspace is exactly as ``snap`` recorded it: files, HEAD and branch."""
    same_head = (state.head, state.branch) == (snap.head, snap.branch)
    return same_head and trees_agree(repo, state.tree, snap.tree)


def _turn(
    repo: Repo, job_id: str, state: WorkspaceState, now: Snapshot, goal: Snapshot, action: str
) -> None:
    """Make the working tree's files those of ``goal`` (under the workspace only), refusing
    unless they are those of ``now`` (the other snapshot) and no ignored file is in the way."""
    since = "started" if action == "apply" else "ended"
    _check_unchanged(repo, job_id, now, state, f"{action} it", since=since)
    changes = diff_trees(repo, state.tree, goal.tree)
    _check_nothing_in_the_way(repo, job_id, [c.path for c in changes if c.old is None], action)
    if repo.prefix:
        tree = tree_with(repo, state.tree, [(c.path, c.new) for c in changes])
    else:
        tree = goal.tree
    repo.run("read-tree", "-m", "-u", state.tree, tree, index=state.index_file)


def _point_at(repo: Repo, state: WorkspaceState, goal: Snapshot, reflog: str) -> None:
    """Put HEAD, its branch and the index where ``goal`` recorded them."""
    _move_head(repo, state, goal, reflog)
    if goal.index_commit is not None:
        _restore_index(repo, goal.index_commit)


def _move_head(repo: Repo, state: WorkspaceState, goal: Snapshot, reflog: str) -> None:
    """Put HEAD and its branch where ``goal`` recorded them."""
    if goal.branch is None:
        if goal.head is not None and (state.branch is not None or state.head != goal.head):
            repo.run("update-ref", "--no-deref", "-m", reflog, "HEAD", goal.head)
        return
    if state.branch != goal.branch:
        repo.run("symbolic-ref", "-m", reflog, "HEAD", goal.branch)
    now = resolve_commit(repo, goal.branch)
    if now != goal.head:
        if goal.head is None:
            repo.run("update-ref", "-m", reflog, "-d", goal.branch, now or "")
        else:
            _update_ref(repo, goal.branch, goal.head, now or "", reflog, goal.branch)


def _agent_change_onto(
    repo: Repo, job_id: str, head_tree: str, pre: Snapshot, post: Snapshot
) -> str:
    """``head_tree`` plus the agent's change (pre -> post) and nothing of the user's."""
    agent = diff_trees(repo, pre.tree, post.tree, renames=True)
    if not agent:
        raise NothingToCommit(
            f"job {job_id} changed nothing in {repo.workspace}: nothing to commit"
        )
    user = {c.path: c for c in diff_trees(repo, head_tree, pre.tree)}
    result: list[tuple[bytes, Entry | None]] = []
    tangled: list[bytes] = []
    for change in agent:
        mine = user.get(change.source)
        if change.source != change.path:
            if change.path in user or (mine is not None and mine.old is None):
                tangled.append(change.path)
                continue
            result.append((change.source, None))
        if mine is None:
            result.append((change.path, change.new))
        elif change.new is None:
            if mine.old is not None:
                result.append((change.path, None))
        elif mine.old != change.new:
            merged = merge_file(repo, ours=mine.old, base=change.old, theirs=change.new)
            if merged is None:
                tangled.append(change.path)
            else:
                result.append((change.path, merged))
    if tangled:
        raise ChangesOverlap(
            f"job {job_id} changed {_paths(tangled)}, where your own uncommitted changes were, "
            "and its lines cannot be told apart from yours; commit by hand (git add -p)"
        )
    if not result:
        raise NothingToCommit(f"job {job_id} only undid uncommitted changes: nothing to commit")
    tree = tree_with(repo, head_tree, result)
    expected = {path for path, _ in result}
    stray = [c.path for c in diff_trees(repo, head_tree, tree, scoped=False)]
    if not set(stray) <= expected:
        raise ChangesOverlap(
            f"job {job_id}'s change to {_paths(sorted(expected))} would also change "
            f"{_paths(sorted(set(stray) - expected))}, which you replaced before the job; "
            "commit by hand"
        )
    return tree


def _check_on_pre_head(repo: Repo, job_id: str, pre: Snapshot) -> None:
    for name in _IN_PROGRESS:
        if (repo.git_dir / name).exists():
            raise WorkspaceChanged(
                f"a merge, rebase, cherry-pick or revert is in progress in {repo.top} "
                f"({name}); finish it first, or commit job {job_id} to a new branch"
            )
    head, branch = head_and_branch(repo)
    if branch != pre.branch:
        raise WorkspaceChanged(
            f"HEAD is on {_where(branch, head)} but job {job_id} started on "
            f"{_where(pre.branch, pre.head)}; switch back or commit it to a new branch"
        )
    if head != pre.head:
        raise WorkspaceChanged(
            f"branch {(branch or 'HEAD').removeprefix('refs/heads/')} moved since job {job_id} "
            f"started (from {_short(pre.head)} "
            f"to {_short(head)}: the agent or someone else committed); commit it to a new branch "
            "instead"
        )


def _check_unchanged(
    repo: Repo,
    job_id: str,
    snap: Snapshot,
    state: WorkspaceState,
    action: str,
    *,
    since: str = "ended",
) -> None:
    """Refuse when the workspace is no longer what ``snap`` (taken when the job ``since``)
    recorded."""
    if (state.head, state.branch) != (snap.head, snap.branch):
        raise WorkspaceChanged(
            f"HEAD is at {_where(state.branch, state.head)}, but was at "
            f"{_where(snap.branch, snap.head)} when job {job_id} {since}; refusing to {action}"
        )
    if not trees_agree(repo, state.tree, snap.tree):
        changed = [c.path for c in diff_trees(repo, snap.tree, state.tree)]
        after = "after" if since == "ended" else "since"
        raise WorkspaceChanged(
            f"{_paths(changed)} changed in {repo.workspace} {after} job {job_id} {since}; "
            f"refusing to {action}, which would lose or mix in those changes (see git status)"
        )


def _check_nothing_in_the_way(
    repo: Repo, job_id: str, coming: Sequence[bytes], action: str
) -> None:
    """Refuse to write files over ignored ones: ``read-tree -u`` would silently overwrite them."""
    blocked = []
    for path in coming:
        target = repo.top / os.fsdecode(path)
        parents = [p for p in target.parents if p.is_relative_to(repo.top) and p != repo.top]
        if os.path.lexists(target) or any(p.is_symlink() or p.is_file() for p in parents):
            blocked.append(path)
    if blocked:
        raise WorkspaceChanged(
            f"{_paths(blocked)} must {'come back' if action == 'revert' else 'be created'} to "
            f"{action} job {job_id}, but ignored files are in the way; move them elsewhere and "
            f"{action} again"
        )


def _branch_ref(repo: Repo, name: str) -> str:
    ref = name if name.startswith("refs/heads/") else f"refs/heads/{name}"
    if repo.run("check-ref-format", ref, ok=(0, 1)).returncode:
        raise UsageError(f"{name!r} is not a valid branch name")
    if resolve_commit(repo, ref) is not None:
        raise WorkspaceChanged(f"branch {name} already exists; pick another name")
    return ref


def _update_ref(
    repo: Repo, ref: str, new: str, old: str, reflog: str, what: str, *, no_deref: bool = False
) -> None:
    """Move ``ref`` from ``old`` ('' = must not exist) to ``new``, or refuse if it moved."""
    flags = ["--no-deref"] if no_deref else []
    proc = repo.run("update-ref", *flags, "-m", reflog, ref, new, old, ok=(0, 1, 128))
    if proc.returncode:
        raise WorkspaceChanged(
            f"{what} changed while luzia was updating it; nothing was changed "
            f"({git_error(repo.workspace, ('update-ref',), proc)})"
        )


def _restore_index(repo: Repo, index_commit: str) -> None:
    """Set the real index's entries under the workspace back to those of the snapshot's index."""
    raw = repo.run("diff-index", "--cached", "-z", "--no-renames", index_commit, "--", ".").stdout
    changes = parse_raw_diff(raw)
    entries: list[tuple[bytes, Entry | None]] = [(c.path, c.old) for c in changes if c.old]
    unmerged = [c.path for c in changes if not c.old and not c.new]
    entries += [(c.path, None) for c in changes if not c.old and c.new]
    if unmerged:
        listing = repo.run(
            "ls-tree", "-z", "--full-tree", index_commit, "--", *(os.fsdecode(p) for p in unmerged)
        ).stdout
        known: dict[bytes, Entry] = {}
        for line in listing.split(b"\0"):
            if line:
                meta, path = line.split(b"\t", 1)
                mode, _kind, sha = meta.decode().split()
                known[path] = (mode, sha)
        entries += [(p, None) for p in unmerged]
        entries += [(p, known[p]) for p in unmerged if p in known]
    if entries:
        repo.run("update-index", "-z", "--index-info", input=index_info(entries, like=index_commit))


def _config_true(repo: Repo, key: str) -> bool:
    proc = repo.run("config", "--type=bool", "--get", key, ok=(0, 1))
    return proc.stdout.strip() == b"true"


def _commit_message(job_id: str, message: str | None, task: str | None) -> str:
    if message is None or not message.strip():
        first = next((ln.strip() for ln in (task or "").splitlines() if ln.strip()), "")
        subject = f"luzia job {job_id}: {first}" if first else f"luzia job {job_id}"
        message = subject if len(subject) <= 72 else subject[:69] + "..."
    text = message.rstrip()
    if f"Luzia-Job: {job_id}" not in text:
        text += f"\n\nLuzia-Job: {job_id}"
    return text + "\n"


def _paths(paths: Sequence[bytes]) -> str:
    shown = ", ".join(os.fsdecode(p) for p in paths[:_SHOWN_PATHS])
    more = len(paths) - _SHOWN_PATHS
    return shown + (f" and {more} more" if more > 0 else "")


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "no commit"


def _where(branch: str | None, head: str | None) -> str:
    """``branch main (3f2a9c1)``, or ``detached 3f2a9c1``: the commit too, since the same
    branch at another commit is exactly what a person needs to see."""
    if branch is not None:
        return f"branch {branch.removeprefix('refs/heads/')} ({_short(head)})"
    return f"detached {_short(head)}"
