"""The offline image's root filesystem: host files at their own paths, every symlink met on the
way, a skeleton of directories and generated ``/etc`` files; written as one reproducible tar."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Literal

from controllers.errors import ImageBuildError
from controllers.image.host import (
    OPTIONAL_PROGRAMS,
    REQUIRED_PROGRAMS,
    find_program,
    git_exec_path,
    git_helpers,
    git_templates,
    host_git,
    is_elf,
    require_program,
    shared_libraries,
    terminfo_files,
)

AGENT_UID = 1000
AGENT_HOME = "/home/agent"

# Fixed mtime for every tar member (2024-01-01 UTC): the same host gives the same tar.
_MTIME = 1_704_067_200

# Debian's merged-/usr top-level links; reproduced as links when they are links on the host.
_TOP_LEVEL_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

_OPTIONAL_FILES = ("/etc/ssl/certs/ca-certificates.crt",)
"""CA bundle for ``git clone https://...`` (libcurl looks here)."""

_OPTIONAL_TREES = ("/usr/lib/locale/C.utf8",)
"""Without the C.UTF-8 locale tmux refuses to start in UTF-8 mode."""

_ETC_FILES: dict[str, str] = {
    "/etc/passwd": (
        "root:x:0:0:root:/root:/bin/bash\n"
        f"agent:x:{AGENT_UID}:{AGENT_UID}:agent:{AGENT_HOME}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    ),
    "/etc/group": f"root:x:0:\nagent:x:{AGENT_UID}:\nnogroup:x:65534:\n",
    "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    # The workspace is bind-mounted from the host and owned by someone else: without this
    # git refuses it ("dubious ownership"). Same line in the Dockerfile.
    "/etc/gitconfig": "[safe]\n\tdirectory = *\n",
}


@dataclass(frozen=True)
class _Entry:
    kind: Literal["dir", "file", "symlink"]
    mode: int = 0o755
    uid: int = 0
    source: str | None = None
    """Host file to copy (kind "file")."""
    data: bytes | None = None
    """Generated content (kind "file")."""
    target: str | None = None
    """Link target, verbatim (kind "symlink")."""
    size: int = 0
    mtime: int = _MTIME
    """Agents' trees keep the host's: Python checks its ``.pyc`` files against them."""


class RootFS:
    """An image root filesystem being planned: paths -> entries, written as a tar at the end.

    Host files keep their absolute path, and every symlink met on the way (``/lib`` ->
    ``usr/lib``, ``libz.so.1`` -> ``libz.so.1.2.13``, ``/usr/bin/awk`` -> alternatives)
    is reproduced as a link, so the image resolves names exactly like the host does.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __contains__(self, path: str) -> bool:
        return path in self._entries

    def paths(self) -> list[str]:
        return sorted(self._entries)

    def _put(self, path: str, entry: _Entry) -> None:
        existing = self._entries.get(path)
        if existing is not None and existing != entry:
            if existing.kind == entry.kind == "dir":
                # A plain parent dir gives way to an explicit one (/tmp 1777), never the reverse.
                if existing == _Entry("dir"):
                    self._entries[path] = entry
                return
            raise ImageBuildError(f"offline rootfs: {path} planned twice ({existing} / {entry})")
        self._entries[path] = entry
        self._ensure_parents(path)

    def _ensure_parents(self, path: str) -> None:
        parent = os.path.dirname(path)
        while parent not in ("/", "") and parent not in self._entries:
            self._entries[parent] = _Entry("dir")
            parent = os.path.dirname(parent)

    def add_dir(self, path: str, mode: int = 0o755, uid: int = 0) -> None:
        self._put(path, _Entry("dir", mode=mode, uid=uid))

    def add_symlink(self, path: str, target: str) -> None:
        self._put(path, _Entry("symlink", mode=0o777, target=target))

    def add_text(self, path: str, text: str, mode: int = 0o644) -> None:
        data = text.encode()
        self._put(path, _Entry("file", mode=mode, data=data, size=len(data)))

    def add_data(self, path: str, data: bytes, mode: int = 0o644, *, mtime: int = _MTIME) -> None:
        self._put(path, _Entry("file", mode=mode, data=data, size=len(data), mtime=mtime))

    def add_host_file_at(self, path: str, source: str, mode: int, *, mtime: int = _MTIME) -> None:
        """Copy the host file ``source`` to another path in the image (agents are relocated)."""
        size = os.stat(source).st_size
        entry = _Entry("file", mode=mode & 0o777, source=source, size=size, mtime=mtime)
        self._put(path, entry)

    def add_host_path(self, path: str) -> str:
        """Copy a host file (or bare dir) to the same path, links included; return its real path."""
        real = self._resolve_recording_links(path)
        st = os.stat(real)
        if stat.S_ISDIR(st.st_mode):
            self.add_dir(real)
        elif stat.S_ISREG(st.st_mode):
            # No setuid/setgid in a sandbox image (and no-new-privileges ignores them anyway).
            mode = stat.S_IMODE(st.st_mode) & 0o777
            self._put(real, _Entry("file", mode=mode, source=real, size=st.st_size))
        else:
            raise ImageBuildError(f"offline rootfs: {real} is neither a file nor a directory")
        return real

    def add_host_tree(self, root: str) -> None:
        """A host directory and everything under it (small trees: locale, git templates)."""
        self.add_host_path(root)
        for directory, subdirs, files in os.walk(root):
            for name in sorted(subdirs) + sorted(files):
                self.add_host_path(os.path.join(directory, name))

    def _resolve_recording_links(self, path: str) -> str:
        """Resolve ``path`` component by component like the kernel, planning each link met."""
        pending = list(PurePosixPath(os.path.abspath(path)).parts[1:])
        resolved = "/"
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                resolved = os.path.dirname(resolved)
                continue
            if part in ("", "."):
                continue
            candidate = os.path.join(resolved, part)
            if not os.path.islink(candidate):
                resolved = candidate
                continue
            hops += 1
            if hops > 40:
                raise ImageBuildError(f"offline rootfs: too many symlinks resolving {path}")
            target = os.readlink(candidate)
            self.add_symlink(candidate, target)
            if target.startswith("/"):
                resolved = "/"
            pending[:0] = [p for p in PurePosixPath(target).parts if p != "/"]
        return resolved

    def write_tar(self, out: IO[bytes]) -> None:
        """Write the plan as an uncompressed tar: sorted, fixed mtimes, root-owned.

        Identical files (``/usr/bin/git`` and ``git-core/git`` are separate copies on Debian)
        become hard links to the first one in sort order, so the image stores them once.
        """
        sizes = Counter(e.size for e in self._entries.values() if e.kind == "file")
        first_copy: dict[tuple[int, bytes], str] = {}
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
            for path in sorted(self._entries):
                entry = self._entries[path]
                info = self._tarinfo(path, entry)
                if entry.kind != "file":
                    tar.addfile(info)
                    continue
                if entry.data is None and sizes[entry.size] == 1:
                    # Streamed, not read whole: agent binaries are hundreds of MB.
                    assert entry.source is not None
                    info.size = entry.size
                    with open(entry.source, "rb") as f:
                        tar.addfile(info, f)
                    continue
                data = entry.data if entry.data is not None else _read(entry.source)
                if sizes[entry.size] > 1:
                    key = (len(data), hashlib.sha256(data).digest())
                    if key in first_copy:
                        info.type, info.linkname, info.size = tarfile.LNKTYPE, first_copy[key], 0
                        tar.addfile(info)
                        continue
                    first_copy[key] = info.name
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

    @staticmethod
    def _tarinfo(path: str, entry: _Entry) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.mtime = entry.mtime
        info.mode = entry.mode
        info.uid = info.gid = entry.uid
        info.uname = info.gname = "agent" if entry.uid == AGENT_UID else "root"
        if entry.kind == "dir":
            info.type = tarfile.DIRTYPE
        elif entry.kind == "symlink":
            info.type = tarfile.SYMTYPE
            info.linkname = entry.target or ""
        return info


def _read(path: str | None) -> bytes:
    assert path is not None
    with open(path, "rb") as f:
        return f.read()


def _add_skeleton(fs: RootFS) -> None:
    """Directories, merged-/usr links and the generated /etc files."""
    for name in _TOP_LEVEL_LINKS:
        if os.path.islink(f"/{name}"):
            fs.add_symlink(f"/{name}", os.readlink(f"/{name}"))
    for path in ("/tmp", "/var/tmp", "/workspace"):
        fs.add_dir(path, mode=0o1777)
    # Owned by agent, yet world-writable: a container run as any uid can use it as HOME.
    fs.add_dir(AGENT_HOME, mode=0o1777, uid=AGENT_UID)
    fs.add_dir("/root", mode=0o700)
    for path in ("/dev", "/proc", "/sys", "/run", "/etc", "/usr/local/bin"):
        fs.add_dir(path)
    for path, text in _ETC_FILES.items():
        fs.add_text(path, text)


def _add_programs(fs: RootFS) -> list[str]:
    """The programs and their helpers; returns the ELF files whose libraries must follow."""
    programs = [require_program(name, pkg) for name, pkg in REQUIRED_PROGRAMS.items()]
    programs += [p for p in map(find_program, OPTIONAL_PROGRAMS) if p is not None]
    git = host_git()
    exec_path = git_exec_path(git)
    programs += [git, *git_helpers(exec_path)]
    elf_files = []
    for program in programs:
        if os.path.isdir(program):  # git-core/mergetools
            fs.add_host_tree(program)
            continue
        real = fs.add_host_path(program)
        if os.path.isfile(real) and is_elf(real):
            elf_files.append(real)
    for tree in (git_templates(exec_path), *_OPTIONAL_TREES):
        if tree is not None and os.path.isdir(tree):
            fs.add_host_tree(tree)
    _add_sh(fs)
    return elf_files


def _add_sh(fs: RootFS) -> None:
    """``sh`` next to the shell binaries: dash when the host has it, else bash."""
    for shell in ("dash", "bash"):
        path = find_program(shell)
        if path is not None:
            real = os.path.realpath(path)
            sh = os.path.join(os.path.dirname(real), "sh")
            if sh not in fs:
                fs.add_symlink(sh, os.path.basename(real))
            return


def assemble_rootfs() -> RootFS:
    """Plan the offline image from this host: programs, their libraries, terminfo, /etc."""
    fs = RootFS()
    _add_skeleton(fs)
    elf_files = _add_programs(fs)
    for library in sorted(shared_libraries(elf_files)):
        fs.add_host_path(library)
    for path in (*terminfo_files(), *_OPTIONAL_FILES):
        if os.path.isfile(path):
            fs.add_host_path(path)
    return fs


def write_rootfs_tar(out: IO[bytes]) -> None:
    """The offline image's root filesystem as a tar stream (what ``docker import`` receives)."""
    assemble_rootfs().write_tar(out)
