"""Workspace safety: git snapshots of a job's workspace, and the diff, commit and revert they allow.

Before a job starts and after it ends, luzia records the full state of the workspace (HEAD, the
staged and unstaged changes, the untracked files that ``.gitignore`` does not exclude) as a
commit object under ``refs/luzia/<job>/pre`` and ``refs/luzia/<job>/post``. It does so without
touching the working tree, the index, HEAD or any branch: files are added to a temporary index
(``GIT_INDEX_FILE``) seeded from a copy of the real one. The agent's change is then exactly the
difference between the two snapshots, however dirty the workspace was when the job began.

Only two operations ever write the user's state, and only when a person asks: ``commit`` (one new
commit holding the agent's change, on the current branch or a new one) and ``revert`` (back to the
pre-task state). Both refuse, with a message saying why, when the workspace moved on in a way that
would make them lose or mix up somebody's work.

The unit is the workspace directory. When it is a subdirectory of a repository, only the files
under it are recorded, shown, committed and reverted; HEAD and the branches are the repository's.

One concept per module: ``git`` runs git safely, ``snapshots`` records and reads the snapshots,
``trees`` is the tree plumbing, ``changes`` holds diff, commit, apply and revert. Callers use this
package's names (``workspace.pre_task``, ``workspace.commit``...). See
``docs/workspace-safety.md`` for the snapshot format and the exact rules.
"""

from luzia.workspace.changes import (
    ChangesOverlap,
    NothingToCommit,
    WorkspaceChanged,
    apply,
    commit,
    diff,
    revert,
)
from luzia.workspace.git import (
    SAFE_CONFIG,
    NotAGitWorkspace,
    WorkspaceError,
)
from luzia.workspace.snapshots import (
    REF_NAMESPACE,
    SNAPSHOT_IDENTITY,
    Fetch,
    JobSnapshots,
    NoSnapshot,
    Snapshot,
    ensure_post_task,
    forget,
    job_ref,
    job_snapshots,
    post_task,
    pre_task,
    snapshot,
    snapshot_jobs,
    workspace_busy,
    workspace_root,
)

__all__ = [
    "REF_NAMESPACE",
    "SAFE_CONFIG",
    "SNAPSHOT_IDENTITY",
    "ChangesOverlap",
    "Fetch",
    "JobSnapshots",
    "NoSnapshot",
    "NotAGitWorkspace",
    "NothingToCommit",
    "Snapshot",
    "WorkspaceChanged",
    "WorkspaceError",
    "apply",
    "commit",
    "diff",
    "ensure_post_task",
    "forget",
    "job_ref",
    "job_snapshots",
    "post_task",
    "pre_task",
    "revert",
    "snapshot",
    "snapshot_jobs",
    "workspace_busy",
    "workspace_root",
]
