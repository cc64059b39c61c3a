"""Tree plumbing for the change operations: per-file changes between trees, a tree with some
files replaced, the three-way merge of one file. Never touches the working tree or real index."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from luzia.workspace.git import Repo

_REGULAR = frozenset({"100644", "100755"})
Entry = tuple[str, str]  # (mode, sha) of one tree entry


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file's change; ``source`` is where a renamed file came from, else ``path``."""

    path: bytes
    old: Entry | None
    new: Entry | None
    source: bytes


def diff_trees(
    repo: Repo, a: str, b: str, *, scoped: bool = True, renames: bool = False
) -> list[FileChange]:
    """Per-file changes from tree ``a`` to ``b``, within the workspace unless not ``scoped``."""
    scope = ["--", "."] if scoped else []
    pairing = "--find-renames" if renames else "--no-renames"
    raw = repo.run("diff-tree", "-r", "-z", pairing, a, b, *scope).stdout
    return parse_raw_diff(raw)


def parse_raw_diff(raw: bytes) -> list[FileChange]:
    """Parse ``-z`` raw diff output: a header, then one path (two for a rename)."""
    parts = iter(raw.split(b"\0"))
    changes = []
    for header in parts:
        if not header.startswith(b":"):
            continue
        old_mode, new_mode, old_sha, new_sha, status = header[1:].decode().split()
        source = next(parts)
        path = next(parts) if status[0] in "RC" else source
        changes.append(
            FileChange(
                path,
                None if set(old_mode) == {"0"} else (old_mode, old_sha),
                None if set(new_mode) == {"0"} else (new_mode, new_sha),
                source,
            )
        )
    return changes


def trees_agree(repo: Repo, a: str, b: str) -> bool:
    """Whether two snapshot trees agree on every file of the workspace."""
    if a == b:
        return True
    if not repo.prefix:
        return False
    return repo.run("diff-tree", "--quiet", "-r", a, b, "--", ".", ok=(0, 1)).returncode == 0


def empty_tree(repo: Repo) -> str:
    return repo.out("hash-object", "-t", "tree", "-w", "--stdin", input=b"")


def index_info(entries: Iterable[tuple[bytes, Entry | None]], like: str) -> bytes:
    """``update-index -z --index-info`` input: removals first, so a file can replace a directory.

    A removal names the all-zero object id, as long as ``like`` (any id of the repository's hash).
    """
    pairs = list(entries)
    null = "0" * len(like)
    drop = b"".join(f"0 {null}\t".encode() + path + b"\0" for path, e in pairs if e is None)
    add = b"".join(f"{e[0]} {e[1]}\t".encode() + path + b"\0" for path, e in pairs if e is not None)
    return drop + add


def tree_with(repo: Repo, base: str, entries: Sequence[tuple[bytes, Entry | None]]) -> str:
    """Tree ``base`` with some files replaced (an entry) or removed (``None``)."""
    with tempfile.TemporaryDirectory(prefix="luzia-index-") as tmp:
        index = Path(tmp, "index")
        repo.run("read-tree", base, index=index)
        repo.run(
            "update-index", "-z", "--index-info", index=index, input=index_info(entries, like=base)
        )
        return repo.out("write-tree", index=index)


def merge_file(
    repo: Repo, *, ours: Entry | None, base: Entry | None, theirs: Entry | None
) -> Entry | None:
    """Three-way merge of one text file: the agent's edit (base -> theirs) applied to ours."""
    if ours is None or base is None or theirs is None:
        return None
    if not {ours[0], base[0], theirs[0]} <= _REGULAR:
        return None
    mode = theirs[0] if theirs[0] != base[0] else ours[0]
    if ours[1] == base[1] or theirs[1] == base[1]:
        return (mode, theirs[1] if ours[1] == base[1] else ours[1])
    with tempfile.TemporaryDirectory(prefix="luzia-merge-") as tmp:
        files = []
        for name, entry in (("ours", ours), ("base", base), ("theirs", theirs)):
            file = Path(tmp, name)
            file.write_bytes(repo.run("cat-file", "blob", entry[1]).stdout)
            files.append(str(file))
        proc = repo.run("merge-file", "-p", "-q", *files, ok=range(256))
    if proc.returncode != 0:
        return None
    return (mode, repo.out("hash-object", "-w", "--stdin", input=proc.stdout))
