"""Workspace safety against real git repositories: snapshots, diff, commit, revert, forget."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from luzia import workspace as ws
from luzia.errors import LuziaError, UsageError

JOB = "k3v9q0tz"
ORIGINAL_APP = "".join(f"line {n}\n" for n in range(1, 41))
RENAMED = "".join(f"this file keeps its content when renamed, row {n}\n" for n in range(20))


@pytest.fixture(autouse=True)
def git_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No system or global git config of the machine; an identity for the user's commits."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{name}_NAME", "Ursula User")
        monkeypatch.setenv(f"GIT_{name}_EMAIL", "ursula@example.com")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)
    yield


def git(repo: Path, *args: str) -> str:
    """The test's own git: it never writes the index unasked, nor runs the user's fsmonitor."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    command = ["git", "-c", "core.fsmonitor=false", "-C", str(repo), *args]
    proc = subprocess.run(command, capture_output=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)


def make_repo(path: Path) -> Path:
    """A committed project with text, binary and ignored files."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    write(path / "README.md", "# Project\n\nRead me.\n")
    write(path / "src" / "app.py", ORIGINAL_APP)
    write(path / "src" / "util.py", "def util():\n    return 1\n")
    write(path / "docs" / "guide.md", "Guide\n")
    write(path / "data.bin", bytes(range(256)) * 4)
    write(path / "old_name.txt", RENAMED)
    write(path / "to_delete.txt", "doomed\n")
    write(path / ".gitignore", "*.log\nbuild/\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    write(path / "debug.log", "the user's ignored log\n")
    write(path / "build" / "out.o", b"\x7fELF user build")
    return path


def dirty(repo: Path) -> None:
    """The user's own work in progress: staged, unstaged and untracked."""
    write(repo / "docs" / "guide.md", "Guide\n\nA staged paragraph.\n")
    write(repo / "staged_new.txt", "staged and new\n")
    git(repo, "add", "docs/guide.md", "staged_new.txt")
    write(repo / "README.md", "# Project\n\nRead me, unstaged edit.\n")
    write(repo / "notes.txt", "untracked notes\n")


AGENT_HEADERS = {
    ("src/app.py", "src/app.py"),
    ("new_dir/deep/file.py", "new_dir/deep/file.py"),
    ("to_delete.txt", "to_delete.txt"),
    ("old_name.txt", "new_name.txt"),
    ("data.bin", "data.bin"),
    ("image.png", "image.png"),
}


def agent_edits(repo: Path) -> None:
    """Modify, create, delete, rename, a binary file, a file in a new directory, ignored files."""
    write(repo / "src" / "app.py", ORIGINAL_APP.replace("line 40\n", "line 40 by the agent\n"))
    write(repo / "new_dir" / "deep" / "file.py", "print('new')\n")
    (repo / "to_delete.txt").unlink()
    (repo / "old_name.txt").rename(repo / "new_name.txt")
    write(repo / "data.bin", bytes(reversed(range(256))) * 4)
    write(repo / "image.png", b"\x89PNG\r\n\x1a\n\x00\x00binary")
    write(repo / "agent.log", "ignored output\n")
    write(repo / "build" / "agent.o", b"ignored object")


def headers(patch: str) -> set[tuple[str, str]]:
    return set(re.findall(r"^diff --git a/(.+?) b/(.+)$", patch, flags=re.MULTILINE))


def tree_files(repo: Path, rev: str) -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", "-z", rev).split("\0")) - {""}


def fingerprint(repo: Path) -> dict[str, object]:
    """Everything a snapshot must leave alone: status, index bytes and times, every file's
    content and times, HEAD and the refs outside refs/luzia."""
    files = {}
    for root, dirs, names in os.walk(repo):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in [*names, *dirs]:
            path = Path(root, name)
            info = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            files[str(path.relative_to(repo))] = (info.st_mtime_ns, info.st_mode, digest)
    index = repo / ".git" / "index"
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return {
        "status": git(repo, "status", "--porcelain=v2", "--branch", "-uall", "--ignored"),
        "index": (hashlib.sha256(index.read_bytes()).hexdigest(), index.stat().st_mtime_ns)
        if index.exists()
        else None,
        "files": files,
        "HEAD": (repo / ".git" / "HEAD").read_text(),
        "refs": [r for r in refs.splitlines() if not r.startswith("refs/luzia/")],
    }


def contents(repo: Path) -> dict[str, bytes]:
    """Every file's bytes, outside .git."""
    found = {}
    for root, dirs, names in os.walk(repo):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            path = Path(root, name)
            found[str(path.relative_to(repo))] = path.read_bytes()
    return found


def exact_status(repo: Path) -> str:
    """Status that shows staged and unstaged separately, with object names and modes."""
    return git(repo, "status", "--porcelain=v2", "--branch", "-uall")


# --- snapshots and diff ------------------------------------------------------------------------


def test_clean_repo_diff_shows_the_agents_edits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    pre = ws.pre_task(repo, JOB)
    assert pre is not None
    assert pre.head == git(repo, "rev-parse", "HEAD").strip()
    assert pre.branch == "refs/heads/main"
    assert pre.ref == f"refs/luzia/{JOB}/pre"
    agent_edits(repo)
    post = ws.post_task(repo, JOB)
    assert post is not None
    patch = ws.diff(repo, JOB)
    assert headers(patch) == AGENT_HEADERS
    assert "rename from old_name.txt" in patch
    assert "deleted file mode" in patch
    assert "Binary files a/data.bin and b/data.bin differ" in patch
    summary = ws.diff(repo, JOB, stat=True)
    assert "6 files changed" in summary
    assert "create mode 100644 new_dir/deep/file.py" in summary


def test_dirty_repo_diff_shows_only_the_agent(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    dirty(repo)
    ws.pre_task(repo, JOB)
    agent_edits(repo)
    ws.post_task(repo, JOB)
    patch = ws.diff(repo, JOB)
    assert headers(patch) == AGENT_HEADERS
    for mine in ("README.md", "docs/guide.md", "staged_new.txt", "notes.txt", ".log", "build/"):
        assert mine not in patch


def test_snapshot_records_untracked_but_not_ignored_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    dirty(repo)
    pre = ws.pre_task(repo, JOB)
    assert pre is not None
    files = tree_files(repo, pre.commit)
    assert {"notes.txt", "staged_new.txt", "README.md", "src/app.py"} <= files
    assert not {f for f in files if f.endswith(".log") or f.startswith("build/")}
    assert git(repo, "show", f"{pre.commit}:README.md") == "# Project\n\nRead me, unstaged edit.\n"
    assert pre.index_commit is not None
    index_files = tree_files(repo, pre.index_commit)
    assert "staged_new.txt" in index_files
    assert "notes.txt" not in index_files


def test_snapshot_leaves_working_tree_index_and_refs_untouched(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    dirty(repo)
    before = fingerprint(repo)
    ws.pre_task(repo, JOB)
    assert fingerprint(repo) == before
    agent_edits(repo)
    before = fingerprint(repo)
    ws.post_task(repo, JOB)
    ws.diff(repo, JOB)
    ws.diff(repo, JOB, stat=True)
    assert fingerprint(repo) == before


def test_diff_before_the_post_snapshot_uses_the_live_workspace(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    ws.pre_task(repo, JOB)
    write(repo / "src" / "util.py", "def util():\n    return 2\n")
    before = fingerprint(repo)
    assert headers(ws.diff(repo, JOB)) == {("src/util.py", "src/util.py")}
    assert fingerprint(repo) == before
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/luzia/").split()
    assert refs == [f"refs/luzia/{JOB}/pre"]


def test_empty_repository_without_commits(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo / "mine.txt", "the user's untracked file\n")
    pre = ws.pre_task(repo, JOB)
    assert pre is not None
    assert pre.head is None
    assert pre.branch == "refs/heads/main"
    write(repo / "agent.txt", "by the agent\n")
    ws.post_task(repo, JOB)
    assert headers(ws.diff(repo, JOB)) == {("agent.txt", "agent.txt")}
    sha = ws.commit(repo, JOB, task="add a file")
    assert git(repo, "rev-parse", "HEAD").strip() == sha
    assert tree_files(repo, "HEAD") == {"agent.txt"}
    assert "?? mine.txt" in git(repo, "status", "--porcelain")


def test_revert_in_an_empty_repository(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo / "mine.txt", "the user's untracked file\n")
    before = contents(repo)
    ws.pre_task(repo, JOB)
    write(repo / "agent.txt", "by the agent\n")
    write(repo / "mine.txt", "changed by the agent\n")
    ws.post_task(repo, JOB)
    ws.revert(repo, JOB)
    assert contents(repo) == before
    assert git(repo, "status", "--porcelain") == "?? mine.txt\n"


def test_not_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    write(plain / "file.txt", "x\n")
    assert ws.pre_task(plain, JOB) is None
    assert ws.snapshot(tmp_path / "missing", "refs/luzia/x/pre") is None
    with pytest.raises(ws.NotAGitWorkspace) as caught:
        ws.diff(plain, JOB)
    assert isinstance(caught.value, LuziaError)
    assert caught.value.exit_code == 1
    assert "is not in a git repository" in str(caught.value)
    assert "nothing to diff" in str(caught.value)
    with pytest.raises(ws.NotAGitWorkspace, match="nothing to revert"):
        ws.revert(plain, JOB)
    assert ws.forget(plain, JOB) is False
    assert ws.snapshot_jobs(plain) == []


def test_no_snapshot_for_the_job(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(ws.NoSnapshot, match="no pre-task snapshot"):
        ws.diff(repo, JOB)
    ws.pre_task(repo, JOB)
    with pytest.raises(ws.NoSnapshot, match="still running"):
        ws.commit(repo, JOB)
    with pytest.raises(UsageError, match="cannot name a git ref"):
        ws.diff(repo, "../../HEAD")


def test_ignored_workspace_inside_a_repository_is_not_a_git_workspace(tmp_path: Path) -> None:
    home = make_repo(tmp_path / "home")
    write(home / ".gitignore", "*.log\nbuild/\nscratch/\n")
    scratch = home / "scratch"
    write(scratch / "play.py", "x = 1\n")
    assert ws.pre_task(scratch, JOB) is None
    with pytest.raises(ws.NotAGitWorkspace, match="is ignored by the git repository"):
        ws.diff(scratch, JOB)


def test_subdirectory_workspace_covers_only_its_own_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    sub = repo / "src"
    ws.pre_task(sub, JOB)
    write(sub / "app.py", "rewritten by the agent\n")
    write(repo / "README.md", "edited outside the workspace meanwhile\n")
    ws.post_task(sub, JOB)
    assert headers(ws.diff(sub, JOB)) == {("src/app.py", "src/app.py")}
    ws.revert(sub, JOB)
    assert (sub / "app.py").read_text() == ORIGINAL_APP
    assert (repo / "README.md").read_text() == "edited outside the workspace meanwhile\n"


def test_linked_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    other = tmp_path / "other tree"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(other))
    dirty(other)
    before = exact_status(other)
    ws.pre_task(other, JOB)
    agent_edits(other)
    ws.post_task(other, JOB)
    assert headers(ws.diff(other, JOB)) == AGENT_HEADERS
    ws.revert(other, JOB)
    assert exact_status(other) == before
    assert ws.snapshot_jobs(repo) == [JOB]


# --- commit ------------------------------------------------------------------------------------


def committed_paths(repo: Path, rev: str = "HEAD") -> set[str]:
    out = git(repo, "diff-tree", "-r", "--no-renames", "--name-only", "-z", f"{rev}^", rev)
    return set(out.split("\0")) - {""}


AGENT_PATHS = {
    "src/app.py",
    "new_dir/deep/file.py",
    "to_delete.txt",
    "old_name.txt",
    "new_name.txt",
    "data.bin",
    "image.png",
}


def test_commit_on_the_current_branch_keeps_the_users_changes_uncommitted(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    start = git(repo, "rev-parse", "HEAD").strip()
    dirty(repo)
    ws.pre_task(repo, JOB)
    agent_edits(repo)
    ws.post_task(repo, JOB)
    files_before = contents(repo)
    sha = ws.commit(repo, JOB, task="Fix the app\nand more details")
    assert git(repo, "rev-parse", "HEAD").strip() == sha
    assert git(repo, "rev-parse", "refs/heads/main").strip() == sha
    assert git(repo, "rev-parse", "HEAD^").strip() == start
    assert committed_paths(repo) == AGENT_PATHS
    assert git(repo, "log", "-1", "--format=%B") == (
        f"luzia job {JOB}: Fix the app\n\nLuzia-Job: {JOB}\n\n"
    )
    assert git(repo, "log", "-1", "--format=%an").strip() == "Ursula User"
    assert contents(repo) == files_before
    assert set(git(repo, "diff", "--cached", "--name-only").split()) == {
        "docs/guide.md",
        "staged_new.txt",
    }
    assert git(repo, "diff", "--name-only").split() == ["README.md"]
    assert git(repo, "ls-files", "--others", "--exclude-standard").split() == ["notes.txt"]


def test_commit_takes_only_the_agents_lines_of_a_file_the_user_also_changed(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    users = ORIGINAL_APP.replace("line 1\n", "line 1 by the user\n")
    write(repo / "src" / "app.py", users)
    ws.pre_task(repo, JOB)
    write(repo / "src" / "app.py", users.replace("line 40\n", "line 40 by the agent\n"))
    ws.post_task(repo, JOB)
    ws.commit(repo, JOB, message="Agent's tweak")
    committed = git(repo, "show", "HEAD:src/app.py")
    assert committed == ORIGINAL_APP.replace("line 40\n", "line 40 by the agent\n")
    unstaged = git(repo, "diff", "-U0", "src/app.py")
    assert "+line 1 by the user" in unstaged
    assert "agent" not in unstaged
    assert git(repo, "log", "-1", "--format=%B") == f"Agent's tweak\n\nLuzia-Job: {JOB}\n\n"


def test_commit_refuses_when_the_agent_edited_the_users_lines(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    write(repo / "src" / "app.py", ORIGINAL_APP.replace("line 5\n", "line 5 by the user\n"))
    ws.pre_task(repo, JOB)
    write(repo / "src" / "app.py", ORIGINAL_APP.replace("line 5\n", "line 5 by the agent\n"))
    ws.post_task(repo, JOB)
    head = git(repo, "rev-parse", "HEAD")
    with pytest.raises(ws.ChangesOverlap, match=r"src/app\.py"):
        ws.commit(repo, JOB)
    with pytest.raises(ws.ChangesOverlap):
        ws.commit(repo, JOB, branch="try")
    assert git(repo, "rev-parse", "HEAD") == head
    assert "try" not in git(repo, "branch")


def test_commit_on_a_new_branch_touches_nothing_else(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    start = git(repo, "rev-parse", "HEAD").strip()
    dirty(repo)
    ws.pre_task(repo, JOB)
    agent_edits(repo)
    ws.post_task(repo, JOB)
    write(repo / "README.md", "the user goes on working\n")
    before = fingerprint(repo)
    sha = ws.commit(repo, JOB, branch=f"luzia/{JOB}", task="Do it")
    after = fingerprint(repo)
    assert after.pop("refs") == [f"refs/heads/luzia/{JOB} {sha}", "refs/heads/main " + start]
    before.pop("refs")
    assert after == before
    assert git(repo, "rev-parse", f"luzia/{JOB}^").strip() == start
    assert committed_paths(repo, f"luzia/{JOB}") == AGENT_PATHS
    with pytest.raises(ws.WorkspaceChanged, match="already exists"):
        ws.commit(repo, JOB, branch=f"luzia/{JOB}")
    with pytest.raises(UsageError, match="not a valid branch name"):
        ws.commit(repo, JOB, branch="bad..name")


def test_commit_refuses_when_the_branch_moved(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    ws.pre_task(repo, JOB)
    agent_edits(repo)
    ws.post_task(repo, JOB)
    git(repo, "commit", "-q", "--allow-empty", "-m", "the user commits meanwhile")
    moved = git(repo, "rev-parse", "HEAD")
    with pytest.raises(ws.WorkspaceChanged, match="moved since job"):
        ws.commit(repo, JOB)
    assert git(repo, "rev-parse", "HEAD") == moved
    git(repo, "checkout", "-q", "-b", "elsewhere", "HEAD^")
    with pytest.raises(ws.WorkspaceChanged, match="switch back"):
        ws.commit(repo, JOB)


def test_commit_refuses_when_the_tree_changed_after_the_job(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    ws.pre_task(repo, JOB)
    agent_edits(repo)
    ws.post_task(repo, JOB)
    write(repo / "src" / "util.py", "edited after the job\n")
    with pytest.raises(ws.WorkspaceChanged, match=r"src/util.py changed .* after job"):
        ws.commit(repo, JOB)


def test_commit_with_nothing_changed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    dirty(repo)
    ws.pre_task(repo, JOB)
    write(repo / "agent.log", "only ignored output\n")
    ws.post_task(repo, JOB)
    assert ws.diff(repo, JOB) == ""
    with pytest.raises(ws.NothingToCommit):
        ws.commit(repo, JOB)


# --- revert ------------------------------------------------------------------------------------


def test_revert_restores_the_pre_task_state_exactly(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    dirty(repo)
    status = exact_status(repo)
    files = contents(repo)
    user_ignored = (repo / "debug.log").stat().st_mtime_ns
    ws.pre_task(repo, JOB)
    agent_edits(repo)
    write(repo / "docs" / "guide.md", "the agent rewrote the user's staged file\n")
    git(repo, "add", "new_dir", "src/app.py")
    ws.post_task(repo, JOB)
    ws.revert(repo, JOB)
    assert exact_status(repo) == status
    after = contents(repo)
    assert after.pop("agent.log") == b"ignored output\n"
    assert after.pop("build/agent.o") == b"ignored object"
    assert after == files
    assert not (repo / "new_dir").exists()
    assert (repo / "debug.log").stat().st_mtime_ns == user_ignored
    ws.revert(repo, JOB)
    assert exact_status(repo) == status


def test_revert_refuses_when_the_workspace_changed_after_the_job(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    dirty(repo)
    ws.pre_task(repo, JOB)
    agent_edits(repo)
    ws.post_task(repo, JOB)
    write(repo / "src" / "util.py", "the user edits after the agent finished\n")
    before = fingerprint(repo)
    with pytest.raises(ws.WorkspaceChanged) as caught:
        ws.revert(repo, JOB)
    assert caught.value.exit_code == 1
    assert "src/util.py changed" in str(caught.value)
    assert "refusing to revert" in str(caught.value)
    assert fingerprint(repo) == before


def test_revert_undoes_the_agents_own_commits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    start = git(repo, "rev-parse", "HEAD").strip()
    dirty(repo)
    status = exact_status(repo)
    ws.pre_task(repo, JOB)
    agent_edits(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the agent commits everything")
    git(repo, "checkout", "-q", "-b", "agent-branch")
    agents = git(repo, "rev-parse", "HEAD").strip()
    post = ws.post_task(repo, JOB)
    assert post is not None
    ws.revert(repo, JOB)
    assert git(repo, "rev-parse", "HEAD").strip() == start
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert exact_status(repo) == status
    assert git(repo, "rev-parse", f"{post.commit}^").strip() == agents


def test_revert_never_overwrites_an_ignored_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    write(repo / "settings.cfg", "the user's untracked settings\n")
    ws.pre_task(repo, JOB)
    write(repo / ".gitignore", "*.log\nbuild/\nsettings.cfg\n")
    write(repo / "settings.cfg", "rewritten once git ignores it\n")
    ws.post_task(repo, JOB)
    with pytest.raises(ws.WorkspaceChanged, match=r"settings\.cfg must come back"):
        ws.revert(repo, JOB)
    assert (repo / "settings.cfg").read_text() == "rewritten once git ignores it\n"
    (repo / "settings.cfg").unlink()
    ws.revert(repo, JOB)
    assert (repo / "settings.cfg").read_text() == "the user's untracked settings\n"
    assert (repo / ".gitignore").read_text() == "*.log\nbuild/\n"


def test_revert_refuses_when_head_moved_after_the_job(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    ws.pre_task(repo, JOB)
    agent_edits(repo)
    ws.post_task(repo, JOB)
    git(repo, "commit", "-q", "--allow-empty", "-m", "after the job")
    with pytest.raises(ws.WorkspaceChanged, match="HEAD is at branch main"):
        ws.revert(repo, JOB)


# --- hostile configuration, hooks, odd names ---------------------------------------------------


def failing_hook(path: Path, marker: Path) -> None:
    write(path, f"#!/bin/sh\necho \"$0\" >> '{marker}'\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


HOOKS = (
    "pre-commit",
    "commit-msg",
    "post-commit",
    "reference-transaction",
    "post-index-change",
    "post-checkout",
    "fsmonitor-watchman",
)


def test_user_hooks_and_config_never_run_or_interfere(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    dirty(repo)
    marker = tmp_path / "hooks-ran"
    for hook in HOOKS:
        failing_hook(repo / ".git" / "hooks" / hook, marker)
        failing_hook(tmp_path / "elsewhere" / hook, marker)
    for setting in (
        f"core.hooksPath={tmp_path / 'elsewhere'}",
        f"core.fsmonitor={tmp_path / 'elsewhere' / 'fsmonitor-watchman'}",
        "diff.external=false",
        "diff.noprefix=true",
        "color.ui=always",
        "diff.renames=false",
        "core.safecrlf=true",
        "commit.gpgSign=false",
    ):
        key, value = setting.split("=", 1)
        git(repo, "config", key, value)
    proc = subprocess.run(
        ["git", "-C", str(repo), "commit", "--allow-empty", "-m", "x"], capture_output=True
    )
    assert proc.returncode != 0
    marker.unlink()
    ws.pre_task(repo, JOB)
    agent_edits(repo)
    ws.post_task(repo, JOB)
    patch = ws.diff(repo, JOB)
    assert headers(patch) == AGENT_HEADERS
    assert "\x1b[" not in patch
    ws.commit(repo, JOB, branch="reviewed")
    ws.commit(repo, JOB)
    status = exact_status(repo)
    ws.pre_task(repo, "second")
    write(repo / "src" / "util.py", "the second job's edit\r\nwith mixed\nline endings\n")
    ws.post_task(repo, "second")
    ws.revert(repo, "second")
    assert exact_status(repo) == status
    ws.forget(repo, JOB)
    assert not marker.exists()


def test_caller_git_environment_does_not_leak_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    decoy = make_repo(tmp_path / "decoy")
    monkeypatch.setenv("GIT_DIR", str(decoy / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "nowhere"))
    ws.pre_task(repo, JOB)
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert ws.snapshot_jobs(repo) == [JOB]
    assert ws.snapshot_jobs(decoy) == []


def test_paths_with_spaces_and_unicode(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "my répo")
    write(repo / "dir with space" / "naïve café.txt", "bonjour\n")
    write(repo / "日本語.md", "こんにちは\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "names")
    write(repo / "dir with space" / "naïve café.txt", "bonjour, user\n")
    status = exact_status(repo)
    files = contents(repo)
    ws.pre_task(repo, JOB)
    write(repo / "日本語.md", "こんにちは、エージェント\n")
    write(repo / "new folder" / "ünï cødé.txt", "new\n")
    (repo / "dir with space" / "naïve café.txt").rename(repo / "dir with space" / "* [glob].txt")
    ws.post_task(repo, JOB)
    patch = ws.diff(repo, JOB)
    assert headers(patch) == {
        ("日本語.md", "日本語.md"),
        ("new folder/ünï cødé.txt", "new folder/ünï cødé.txt"),
        ("dir with space/naïve café.txt", "dir with space/* [glob].txt"),
    }
    ws.commit(repo, JOB, branch="unicode")
    assert git(repo, "show", "unicode:dir with space/* [glob].txt") == "bonjour\n"
    assert committed_paths(repo, "unicode") == {
        "日本語.md",
        "new folder/ünï cødé.txt",
        "dir with space/naïve café.txt",
        "dir with space/* [glob].txt",
    }
    ws.revert(repo, JOB)
    assert exact_status(repo) == status
    assert contents(repo) == files


# --- refs and the two-jobs policy --------------------------------------------------------------


def test_forget_deletes_the_jobs_refs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    ws.pre_task(repo, JOB)
    ws.post_task(repo, JOB)
    ws.pre_task(repo, "other")
    assert ws.snapshot_jobs(repo) == [JOB, "other"]
    assert ws.forget(repo, JOB) is True
    assert ws.forget(repo, JOB) is False
    assert ws.snapshot_jobs(repo) == ["other"]
    assert ws.job_snapshots(repo, JOB) == ws.JobSnapshots(None, None)


def test_workspace_busy(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    plain = tmp_path / "plain"
    (plain / "inner").mkdir(parents=True)
    other = tmp_path / "other"
    other.mkdir()
    assert ws.workspace_root(repo / "src") == repo.resolve()
    assert ws.workspace_busy(repo / "src", [other, repo / "docs"]) == repo / "docs"
    assert ws.workspace_busy(repo, [other]) is None
    assert ws.workspace_busy(plain / "inner", [plain]) == plain
    assert ws.workspace_busy(plain, [plain / "inner"]) == plain / "inner"
    assert ws.workspace_busy(other, [plain, repo]) is None


def test_snapshot_ref_must_be_a_ref(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(UsageError, match="must start with refs/"):
        ws.snapshot(repo, "luzia/x")
    shutil.rmtree(repo / ".git")
    assert ws.snapshot(repo, "refs/luzia/x/pre") is None


# --- other repository shapes -------------------------------------------------------------------


def test_sha256_repository(tmp_path: Path) -> None:
    repo = tmp_path / "sha256"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main", "--object-format=sha256")
    write(repo / "a.txt", "a\n")
    write(repo / "b.txt", "b\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    dirty_status = exact_status(repo)
    ws.pre_task(repo, JOB)
    (repo / "a.txt").unlink()
    write(repo / "c.txt", "c\n")
    ws.post_task(repo, JOB)
    ws.revert(repo, JOB)
    assert exact_status(repo) == dirty_status
    (repo / "a.txt").unlink()
    write(repo / "c.txt", "c\n")
    ws.post_task(repo, JOB)
    sha = ws.commit(repo, JOB)
    assert len(sha) == 64
    assert committed_paths(repo) == {"a.txt", "c.txt"}
    assert git(repo, "status", "--porcelain") == ""


def test_detached_head_mode_changes_and_symlinks(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "checkout", "-q", "--detach")
    start = git(repo, "rev-parse", "HEAD").strip()
    status = exact_status(repo)
    files = contents(repo)
    ws.pre_task(repo, JOB)
    (repo / "src" / "util.py").chmod(0o755)
    (repo / "link").symlink_to("src/app.py")
    ws.post_task(repo, JOB)
    patch = ws.diff(repo, JOB)
    assert "new mode 100755" in patch
    assert "new file mode 120000" in patch
    ws.revert(repo, JOB)
    assert exact_status(repo) == status
    assert contents(repo) == files
    assert not (repo / "link").is_symlink()
    (repo / "src" / "util.py").chmod(0o755)
    (repo / "link").symlink_to("src/app.py")
    ws.post_task(repo, JOB)
    sha = ws.commit(repo, JOB)
    assert git(repo, "rev-parse", "HEAD").strip() == sha
    assert git(repo, "rev-parse", "HEAD^").strip() == start
    assert git(repo, "status", "--porcelain") == ""


def conflicted_merge(repo: Path) -> None:
    """Leave a merge with a conflict in src/util.py in progress."""
    git(repo, "checkout", "-q", "-b", "theirs")
    write(repo / "src" / "util.py", "theirs\n")
    git(repo, "commit", "-q", "-am", "theirs")
    git(repo, "checkout", "-q", "main")
    write(repo / "src" / "util.py", "ours\n")
    git(repo, "commit", "-q", "-am", "ours")
    proc = subprocess.run(["git", "-C", str(repo), "merge", "-q", "theirs"], capture_output=True)
    assert proc.returncode != 0


def test_nested_repositories_the_agent_creates(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    ws.pre_task(repo, JOB)
    git(repo, "init", "-q", "fresh")
    write(repo / "fresh" / "file.txt", "in a repository with no commit yet\n")
    write(repo / "src" / "util.py", "changed\n")
    ws.post_task(repo, JOB)
    assert headers(ws.diff(repo, JOB)) == {("src/util.py", "src/util.py")}
    ws.revert(repo, JOB)
    assert (repo / "fresh" / "file.txt").exists()


def test_a_file_git_cannot_read_fails_the_snapshot(tmp_path: Path) -> None:
    """Run as a process that cannot bypass file permissions, even when the suite runs as root."""
    repo = make_repo(tmp_path / "repo")
    (repo / "unreadable.txt").write_text("secret\n")
    (repo / "unreadable.txt").chmod(0)
    script = (
        "import sys; from pathlib import Path; import luzia.workspace as ws\n"
        "try:\n    ws.pre_task(Path(sys.argv[1]), sys.argv[2])\n"
        "except ws.WorkspaceError as exc:\n    print(exc); sys.exit(3)\n"
    )
    command = [sys.executable, "-c", script, str(repo), JOB]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "unreadable.txt" in proc.stdout


def test_a_merge_in_progress(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    conflicted_merge(repo)
    pre = ws.pre_task(repo, JOB)
    assert pre is not None
    assert pre.index_commit is None
    write(repo / "src" / "util.py", "resolved by the agent\n")
    ws.post_task(repo, JOB)
    assert headers(ws.diff(repo, JOB)) == {("src/util.py", "src/util.py")}
    with pytest.raises(ws.WorkspaceChanged, match="in progress"):
        ws.commit(repo, JOB)
    with pytest.raises(ws.ChangesOverlap, match=r"src/util\.py"):
        ws.commit(repo, JOB, branch="resolution")
    ws.revert(repo, JOB)
    assert "<<<<<<<" in (repo / "src" / "util.py").read_text()


def test_a_conflict_outside_a_subdirectory_workspace(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    conflicted_merge(repo)
    docs = repo / "docs"
    ws.pre_task(docs, JOB)
    write(docs / "guide.md", "the agent's guide\n")
    ws.post_task(docs, JOB)
    assert headers(ws.diff(docs, JOB)) == {("docs/guide.md", "docs/guide.md")}
    ws.revert(docs, JOB)
    assert (docs / "guide.md").read_text() == "Guide\n"
    assert "UU src/util.py" in git(repo, "status", "--porcelain")


def test_revert_after_the_agent_left_a_conflicted_merge(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "checkout", "-q", "-b", "theirs")
    write(repo / "src" / "util.py", "theirs\n")
    git(repo, "commit", "-q", "-am", "theirs")
    git(repo, "checkout", "-q", "main")
    dirty(repo)
    status = exact_status(repo)
    ws.pre_task(repo, JOB)
    write(repo / "src" / "util.py", "ours\n")
    git(repo, "commit", "-q", "-m", "the agent commits", "src/util.py")
    proc = subprocess.run(["git", "-C", str(repo), "merge", "-q", "theirs"], capture_output=True)
    assert proc.returncode != 0
    ws.post_task(repo, JOB)
    ws.revert(repo, JOB)
    assert exact_status(repo) == status


# --- a job that changed a copy (a swarm job on its node) ----------------------------------------


def copy_of(workspace: Path, where: Path) -> tuple[Path, ws.Fetch]:
    """The copy a job elsewhere works on (without .git, as a swarm task's comes back), and the
    fetch that brings it back here."""
    shutil.copytree(workspace, where, symlinks=True, ignore=shutil.ignore_patterns(".git"))

    def fetch(dest: Path) -> None:
        shutil.copytree(where, dest, symlinks=True, dirs_exist_ok=True)

    return where, fetch


def test_a_copy_is_diffed_applied_reverted_and_committed_here(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    dirty(repo)
    status, files, before = exact_status(repo), contents(repo), fingerprint(repo)
    ws.pre_task(repo, JOB)
    copy, fetch = copy_of(repo, tmp_path / "copy")
    agent_edits(copy)
    (copy / "link").symlink_to("src/app.py")
    assert headers(ws.diff(repo, JOB, fetch=fetch)) == AGENT_HEADERS | {("link", "link")}
    ws.ensure_post_task(repo, JOB, fetch)
    assert fingerprint(repo) == before  # recorded here, nothing of the user's touched
    assert "new file mode 120000" in ws.diff(repo, JOB)
    # apply: the job's change here, the user's own work as it was
    assert ws.apply(repo, JOB) is True
    assert (repo / "new_name.txt").read_text() == RENAMED
    assert not (repo / "to_delete.txt").exists()
    assert os.readlink(repo / "link") == "src/app.py"
    assert not (repo / "agent.log").exists()  # ignored: never recorded, never brought
    assert (repo / "README.md").read_text() == "# Project\n\nRead me, unstaged edit.\n"
    assert ws.apply(repo, JOB) is False
    ws.revert(repo, JOB)
    assert exact_status(repo) == status
    assert contents(repo) == files
    # commit on the current branch brings the change here too; the user's stays uncommitted
    sha = ws.commit(repo, JOB, copied=True)
    assert git(repo, "rev-parse", "HEAD").strip() == sha
    assert (repo / "new_dir" / "deep" / "file.py").read_text() == "print('new')\n"
    assert tree_files(repo, "HEAD") >= {"new_name.txt", "link", "image.png"}
    assert "notes.txt" not in tree_files(repo, "HEAD")
    assert "README.md" in git(repo, "status", "--porcelain")


def test_a_copy_commit_that_is_refused_leaves_the_workspace_as_it_was(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    dirty(repo)
    status, files = exact_status(repo), contents(repo)
    ws.pre_task(repo, JOB)
    copy, fetch = copy_of(repo, tmp_path / "copy")
    write(copy / "README.md", "# Project\n\nRead me, the agent's edit of the user's line.\n")
    ws.ensure_post_task(repo, JOB, fetch)
    with pytest.raises(ws.ChangesOverlap):
        ws.commit(repo, JOB, copied=True)
    assert exact_status(repo) == status
    assert contents(repo) == files
    # a change here since the job started: apply refuses, commit too, nothing is lost
    write(repo / "src" / "util.py", "the user's later edit\n")
    for refused in (lambda: ws.apply(repo, JOB), lambda: ws.commit(repo, JOB, copied=True)):
        with pytest.raises(ws.WorkspaceChanged, match=r"src/util\.py changed .* since job"):
            refused()
    assert (repo / "src" / "util.py").read_text() == "the user's later edit\n"


def test_a_copy_of_a_subdirectory_keeps_the_ignore_rules_from_above(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    sub = repo / "src"
    ws.pre_task(sub, JOB)
    copy, fetch = copy_of(sub, tmp_path / "copy")
    write(copy / "app.py", "rewritten on the node\n")
    write(copy / "run.log", "ignored by the repository's top .gitignore\n")
    write(copy / "build" / "x.o", b"ignored too")
    ws.ensure_post_task(sub, JOB, fetch)
    assert headers(ws.diff(sub, JOB)) == {("src/app.py", "src/app.py")}
    assert ws.apply(sub, JOB) is True
    assert (sub / "app.py").read_text() == "rewritten on the node\n"
    assert (sub / "util.py").read_text() == "def util():\n    return 1\n"
    ws.revert(sub, JOB)
    assert (sub / "app.py").read_text() == ORIGINAL_APP


def test_apply_after_revert_brings_a_local_jobs_change_back(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    ws.pre_task(repo, JOB)
    agent_edits(repo)
    git(repo, "add", "new_dir")
    git(repo, "commit", "-q", "-m", "the agent commits")
    agent_commit = git(repo, "rev-parse", "HEAD").strip()
    ws.post_task(repo, JOB)
    after = exact_status(repo)
    assert ws.apply(repo, JOB) is False  # it is already here
    ws.revert(repo, JOB)
    assert ws.apply(repo, JOB) is True
    assert git(repo, "rev-parse", "HEAD").strip() == agent_commit
    assert exact_status(repo) == after
