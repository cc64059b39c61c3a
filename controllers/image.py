"""Build the agent image, with or without a container registry.

Two ways to get the same kind of image (tmux, bash, git, coreutils, a non-root ``agent`` user,
``/workspace``):

- ``dockerfile``: ``docker build`` on ``containers/agent/`` (Debian slim). Needs its base image,
  so it only works where a registry was reachable at some point.
- ``offline``: a root filesystem assembled from this host's own binaries, their shared libraries
  (found with ``ldd``), terminfo and a few generated ``/etc`` files, streamed as a tar into
  ``docker import``. No network, about a second. Many real hosts are air-gapped, and so are ours.

``auto`` takes the Dockerfile when its base image is already present locally (pulling could hang
on an unreachable registry), else the offline path; the result says which one ran.

Command line: ``luzia image build [--tag T] [--method auto|offline|dockerfile]``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Literal

from controllers.docker_engine import docker_client, translate_docker_errors
from controllers.errors import (
    HostToolMissing,
    ImageBuildError,
    ImageNotFound,
    InvalidInput,
)

if TYPE_CHECKING:
    import docker

DEFAULT_IMAGE = "luzia-agent:latest"
BASE_IMAGE = "debian:bookworm-slim"
"""The Dockerfile's ``FROM``; ``auto`` uses the Dockerfile only when this is present locally."""

AGENT_CONTEXT_DIR = Path(__file__).resolve().parent.parent / "containers" / "agent"
"""The Dockerfile's build context; absent when luzia was installed from a wheel."""

METHODS = ("auto", "offline", "dockerfile")

AGENT_UID = 1000
AGENT_HOME = "/home/agent"

# Fixed mtime for every tar member (2024-01-01 UTC): the same host gives the same tar.
_MTIME = 1_704_067_200

# Where programs are looked up first. Not $PATH: /usr/local/bin may hold a newer git (or a
# virtualenv's tools) whose libraries and exec-path we know nothing about.
_SYSTEM_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")

# Debian's merged-/usr top-level links; reproduced as links when they are links on the host.
_TOP_LEVEL_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_COREUTILS = _words(
    "ls cat cp mv rm mkdir rmdir touch chmod chown chgrp ln readlink realpath echo printf env "
    "printenv sleep head tail wc sort uniq cut tr tee date id whoami basename dirname pwd true "
    "false test [ stat mktemp du df seq yes timeout nproc uname sha1sum sha256sum md5sum base64 "
    "od stty tty expr nohup comm paste tac fold install truncate"
)

# program -> the Debian package that provides it (named in the error when it is missing).
_REQUIRED_PROGRAMS: dict[str, str] = {
    "bash": "bash",
    "tmux": "tmux",
    **dict.fromkeys(_COREUTILS, "coreutils"),
    "grep": "grep",
    "sed": "sed",
    "find": "findutils",
    "xargs": "findutils",
    "diff": "diffutils",
    "awk": "mawk",
}

# Nice to have; left out silently when the host lacks them.
_OPTIONAL_PROGRAMS = _words(
    "dash ps pgrep pkill kill less tput clear which getent hostname tar gzip gunzip zcat cmp patch"
)

_OPTIONAL_FILES = ("/etc/ssl/certs/ca-certificates.crt",)
"""CA bundle for ``git clone https://...`` (libcurl looks here)."""

_OPTIONAL_TREES = ("/usr/lib/locale/C.utf8",)
"""Without the C.UTF-8 locale tmux refuses to start in UTF-8 mode."""

_TERMINALS = _words(
    "xterm xterm-256color screen screen-256color tmux tmux-256color vt100 linux dumb"
)
_TERMINFO_DIRS = ("/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo", "/usr/lib/terminfo")

# git helpers that are servers or need things the image lacks; everything else in the
# exec-path goes in (builtins are links to ``git``; shell helpers are small).
_GIT_SKIP = frozenset(
    _words(
        "git-daemon git-http-backend git-http-fetch git-http-push git-imap-send git-shell "
        "git-instaweb scalar"
    )
)
_SHELLS = frozenset({"/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash"})

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

_IMAGE_CHANGES = (
    "ENV PATH=/usr/local/bin:/usr/bin:/bin",
    "ENV LANG=C.UTF-8",
    f"ENV HOME={AGENT_HOME}",
    # tmux and agents pick their shell from $SHELL; without it a uid with no passwd entry
    # (``--user 12345``) would get /bin/sh.
    "ENV SHELL=/bin/bash",
    "ENV TERM=xterm-256color",
    "WORKDIR /workspace",
    "USER agent",
    'CMD ["sleep", "infinity"]',
    "LABEL luzia.image=agent",
    "LABEL luzia.image.method=offline",
)


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_agent_image` did."""

    tag: str
    method: str
    """``"offline"`` or ``"dockerfile"``: the path that actually ran."""
    seconds: float
    size_bytes: int
    image_id: str

    def summary(self) -> str:
        """One line for people, e.g. ``built luzia-agent:latest (offline) in 0.8 s, 14.2 MB``."""
        return (
            f"built {self.tag} ({self.method}) in {self.seconds:.1f} s, "
            f"{self.size_bytes / 1e6:.1f} MB"
        )


# --------------------------------------------------------------------------- host discovery


def _find_program(name: str) -> str | None:
    """The host's copy of ``name``: system directories first, then ``$PATH``."""
    for directory in _SYSTEM_DIRS:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(name)


def _require_program(name: str, package: str) -> str:
    path = _find_program(name)
    if path is None:
        raise HostToolMissing(
            f"cannot build the agent image offline: {name!r} is not installed on this host; "
            f"install it (apt-get install {package}) or use --method dockerfile where a "
            "registry is reachable"
        )
    return path


def _host_git() -> str:
    """Debian's git: its exec-path and libraries are known, unlike a /usr/local build."""
    debian_git = "/usr/bin/git"
    if os.access(debian_git, os.X_OK):
        return debian_git
    return _require_program("git", "git")


def _git_exec_path(git: str) -> str:
    """Where this git keeps its helpers (``git-core``): the image needs them at the same path."""
    try:
        out = subprocess.run(
            [git, "--exec-path"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise ImageBuildError(f"cannot ask {git} for its exec-path: {exc}") from exc
    if not os.path.isdir(out):
        raise ImageBuildError(f"{git} --exec-path gave {out!r}, which is not a directory")
    return out


def _git_templates(exec_path: str) -> str | None:
    """``<prefix>/share/git-core/templates``: without it every ``git init`` warns."""
    prefix = os.path.dirname(os.path.dirname(exec_path))
    templates = os.path.join(prefix, "share", "git-core", "templates")
    return templates if os.path.isdir(templates) else None


def _shebang(path: str) -> str | None:
    """The interpreter named on a script's ``#!`` line, or None for binaries and sourced files."""
    with open(path, "rb") as f:
        head = f.read(128)
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    return words[0].decode(errors="replace") if words else None


def _is_elf(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def _git_helpers(exec_path: str) -> list[str]:
    """The exec-path entries worth shipping: builtins, shell helpers, https transport.

    Servers (daemon, http-backend, shell...) and scripts for interpreters the image lacks
    (perl) stay out; so do links pointing at anything left out.
    """
    helpers = []
    for name in sorted(os.listdir(exec_path)):
        path = os.path.join(exec_path, name)
        real = os.path.realpath(path)
        if name in _GIT_SKIP or os.path.basename(real) in _GIT_SKIP:
            continue
        if os.path.isfile(real):
            interpreter = _shebang(real)
            if interpreter is not None and interpreter not in _SHELLS:
                continue
        helpers.append(path)
    return helpers


def _terminfo_files() -> list[str]:
    """Compiled entries for the terminals tmux and agents meet, wherever ncurses keeps them."""
    found = []
    for term in _TERMINALS:
        for directory in _TERMINFO_DIRS:
            path = os.path.join(directory, term[0], term)
            if os.path.isfile(path):
                found.append(path)
                break
    return found


def _parse_ldd(output: str) -> tuple[set[str], list[str]]:
    """Library paths from ``ldd`` output (one or many files), and the ``not found`` lines."""
    libraries: set[str] = set()
    missing: list[str] = []
    current = ""
    for raw in output.splitlines():
        if raw and not raw[0].isspace() and raw.endswith(":"):
            current = raw[:-1]
            continue
        line = raw.strip()
        if "=>" in line:
            name, _, rest = line.partition("=>")
            target = rest.strip().split(" (", 1)[0].strip()
            if target == "not found":
                missing.append(f"{current or '?'}: {name.strip()}")
            elif target.startswith("/"):
                libraries.add(target)
        elif line.startswith("/"):  # the dynamic loader: "/lib64/ld-linux-x86-64.so.2 (0x...)"
            libraries.add(line.split(" (", 1)[0])
    return libraries, missing


def _shared_libraries(elf_files: Iterable[str]) -> set[str]:
    """Every shared library (and the loader) these binaries load, according to ``ldd``.

    ldd costs a few ms per file (it runs the loader twice), so the files are split over a few
    concurrent ldd processes: about 0.2 s instead of 0.5 s for the ~90 binaries.
    """
    files = sorted(set(elf_files))
    if not files:
        return set()
    ldd = _require_program("ldd", "libc-bin")
    jobs = max(2, 2 * (os.cpu_count() or 1))
    chunks = [files[i::jobs] for i in range(jobs) if files[i::jobs]]
    procs: list[subprocess.Popen[str]] = []
    try:
        for chunk in chunks:
            procs.append(
                subprocess.Popen(
                    [ldd, "--", *chunk], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            )
        # ldd exits 1 when a file is static ("not a dynamic executable"); the output counts.
        outputs = [proc.communicate(timeout=60) for proc in procs]
    except (OSError, subprocess.SubprocessError) as exc:
        raise ImageBuildError(f"cannot run ldd: {exc}") from exc
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    libraries, missing = _parse_ldd("\n".join(out for out, _ in outputs))
    if missing:
        raise ImageBuildError(
            "cannot build the agent image offline: shared libraries not found on this host: "
            + "; ".join(missing)
        )
    if not libraries:
        raise ImageBuildError(f"ldd found no libraries: {outputs[0][1].strip()}")
    return libraries


# --------------------------------------------------------------------------- root filesystem


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
        with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for path in sorted(self._entries):
                entry = self._entries[path]
                info = self._tarinfo(path, entry)
                if entry.kind != "file":
                    tar.addfile(info)
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
        info.mtime = _MTIME
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
    programs = [_require_program(name, pkg) for name, pkg in _REQUIRED_PROGRAMS.items()]
    programs += [p for p in map(_find_program, _OPTIONAL_PROGRAMS) if p is not None]
    git = _host_git()
    exec_path = _git_exec_path(git)
    programs += [git, *_git_helpers(exec_path)]
    elf_files = []
    for program in programs:
        if os.path.isdir(program):  # git-core/mergetools
            fs.add_host_tree(program)
            continue
        real = fs.add_host_path(program)
        if os.path.isfile(real) and _is_elf(real):
            elf_files.append(real)
    for tree in (_git_templates(exec_path), *_OPTIONAL_TREES):
        if tree is not None and os.path.isdir(tree):
            fs.add_host_tree(tree)
    _add_sh(fs)
    return elf_files


def _add_sh(fs: RootFS) -> None:
    """``sh`` next to the shell binaries: dash when the host has it, else bash."""
    for shell in ("dash", "bash"):
        path = _find_program(shell)
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
    for library in sorted(_shared_libraries(elf_files)):
        fs.add_host_path(library)
    for path in (*_terminfo_files(), *_OPTIONAL_FILES):
        if os.path.isfile(path):
            fs.add_host_path(path)
    return fs


def write_rootfs_tar(out: IO[bytes]) -> None:
    """The offline image's root filesystem as a tar stream (what ``docker import`` receives)."""
    assemble_rootfs().write_tar(out)


# --------------------------------------------------------------------------- Docker


def _check_tag(tag: str) -> tuple[str, str]:
    """``repo[:tag]`` -> (repository, tag); rejects what Docker would refuse anyway."""
    from docker.utils import parse_repository_tag

    if not tag or tag != tag.strip() or any(c.isspace() for c in tag) or "@" in tag:
        raise InvalidInput(f"invalid image tag {tag!r}: expected name[:tag], e.g. {DEFAULT_IMAGE}")
    repository, version = parse_repository_tag(tag)
    if not repository or repository != repository.lower():
        raise InvalidInput(f"invalid image tag {tag!r}: the name must be lowercase")
    return repository, version or "latest"


def _inspect(client: docker.DockerClient, tag: str) -> dict[str, Any] | None:
    """The engine's description of ``tag``, or None when there is no such image."""
    import docker.errors

    with translate_docker_errors(f"cannot inspect image {tag}", ImageBuildError):
        try:
            info: dict[str, Any] = client.api.inspect_image(tag)
        except docker.errors.ImageNotFound:
            return None
    return info


def image_exists(tag: str, client: docker.DockerClient | None = None) -> bool:
    """Whether the engine has ``tag`` locally (one inspect call)."""
    return _inspect(docker_client(client), tag) is not None


def _import_offline(client: docker.DockerClient, tag: str) -> None:
    repository, version = _check_tag(tag)
    buffer = io.BytesIO()
    write_rootfs_tar(buffer)
    buffer.seek(0)
    with translate_docker_errors(f"docker import of {tag} failed", ImageBuildError):
        reply = client.api.import_image(
            src=buffer, repository=repository, tag=version, changes=list(_IMAGE_CHANGES)
        )
    _raise_stream_errors(f"docker import of {tag} failed", str(reply).splitlines())


def _raise_stream_errors(action: str, lines: Iterable[str | dict[str, Any]]) -> None:
    """The engine reports some failures inside a 200 reply, as ``{"error": ...}`` lines."""
    for line in lines:
        message = line if isinstance(line, dict) else _json_or_none(line)
        if message and message.get("error"):
            raise ImageBuildError(f"{action}: {str(message['error']).strip()}")


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _build_dockerfile(client: docker.DockerClient, tag: str) -> None:
    """``docker build containers/agent``, refusing up front when it would need a pull."""
    _check_tag(tag)
    if not (AGENT_CONTEXT_DIR / "Dockerfile").is_file():
        raise ImageBuildError(
            f"no Dockerfile at {AGENT_CONTEXT_DIR} (luzia installed without its source tree?): "
            "use --method offline, or run from a luzia checkout"
        )
    if _inspect(client, BASE_IMAGE) is None:
        raise ImageNotFound(
            f"the Dockerfile needs base image {BASE_IMAGE}, which is not present locally and "
            f"is not pulled here: `docker pull {BASE_IMAGE}` where a registry is reachable "
            "(or `docker load` it), or use --method offline"
        )
    with translate_docker_errors(f"docker build of {tag} failed", ImageBuildError):
        stream = client.api.build(
            path=str(AGENT_CONTEXT_DIR),
            tag=tag,
            pull=False,
            rm=True,
            forcerm=True,
            decode=True,
            labels={"luzia.image.method": "dockerfile"},
        )
        _raise_stream_errors(f"docker build of {tag} failed", stream)


def _remove_superseded(client: docker.DockerClient, old_id: str | None, new_id: str) -> None:
    """Drop the image the new build replaced under the tag, unless something still uses it."""
    import docker.errors
    import requests.exceptions

    if old_id is None or old_id == new_id:
        return
    # In use by a container, or tagged elsewhere: leave it be.
    with suppress(docker.errors.DockerException, requests.exceptions.RequestException):
        client.api.remove_image(old_id)


def _resolve_method(client: docker.DockerClient, method: str) -> str:
    if method not in METHODS:
        raise InvalidInput(f"unknown build method {method!r}: choose one of {', '.join(METHODS)}")
    if method != "auto":
        return method
    has_dockerfile = (AGENT_CONTEXT_DIR / "Dockerfile").is_file()
    if has_dockerfile and _inspect(client, BASE_IMAGE) is not None:
        return "dockerfile"
    return "offline"


def build_agent_image(
    tag: str = DEFAULT_IMAGE,
    *,
    method: str = "auto",
    client: docker.DockerClient | None = None,
) -> BuildResult:
    """Build the agent image as ``tag`` and say how (``offline`` or ``dockerfile``).

    ``method="auto"`` uses the Dockerfile only when its base image is already here, so it
    never waits on a registry; otherwise it assembles the image offline from this host.
    """
    _check_tag(tag)
    started = time.monotonic()
    client = docker_client(client)
    chosen = _resolve_method(client, method)
    previous = _inspect(client, tag)
    if chosen == "offline":
        _import_offline(client, tag)
    else:
        _build_dockerfile(client, tag)
    info = _inspect(client, tag)
    if info is None:
        raise ImageBuildError(f"built {tag} ({chosen}), but the engine does not list it")
    _remove_superseded(client, previous["Id"] if previous else None, str(info["Id"]))
    return BuildResult(
        tag=tag,
        method=chosen,
        seconds=time.monotonic() - started,
        size_bytes=int(info.get("Size") or 0),
        image_id=str(info["Id"]),
    )


def ensure_agent_image(
    tag: str = DEFAULT_IMAGE, *, client: docker.DockerClient | None = None
) -> str:
    """Return ``tag``, building it (``auto``) only when the engine does not have it yet."""
    client = docker_client(client)
    if _inspect(client, tag) is None:
        build_agent_image(tag, method="auto", client=client)
    return tag
