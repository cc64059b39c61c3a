"""Host discovery: the programs the offline image copies from this host, the shared libraries
they load (``ldd``), git's helpers and the terminfo entries, each as a path on this host."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable

from controllers.errors import HostToolMissing, ImageBuildError

# Where programs are looked up first. Not $PATH: /usr/local/bin may hold a newer git (or a
# virtualenv's tools) whose libraries and exec-path we know nothing about.
_SYSTEM_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_COREUTILS = _words(
    "ls cat cp mv rm mkdir rmdir touch chmod chown chgrp ln readlink realpath echo printf env "
    "printenv sleep head tail wc sort uniq cut tr tee date id whoami basename dirname pwd true "
    "false test [ stat mktemp du df seq yes timeout nproc uname sha1sum sha256sum md5sum base64 "
    "od stty tty expr nohup comm paste tac fold install truncate"
)

# program -> the Debian package that provides it (named in the error when it is missing).
REQUIRED_PROGRAMS: dict[str, str] = {
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
OPTIONAL_PROGRAMS = _words(
    "dash ps pgrep pkill kill less tput clear which getent hostname tar gzip gunzip zcat cmp patch"
)

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


def find_program(name: str) -> str | None:
    """The host's copy of ``name``: system directories first, then ``$PATH``."""
    for directory in _SYSTEM_DIRS:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(name)


def require_program(name: str, package: str) -> str:
    path = find_program(name)
    if path is None:
        raise HostToolMissing(
            f"cannot build the agent image offline: {name!r} is not installed on this host; "
            f"install it (apt-get install {package}) or use --method dockerfile where a "
            "registry is reachable"
        )
    return path


def host_git() -> str:
    """Debian's git: its exec-path and libraries are known, unlike a /usr/local build."""
    debian_git = "/usr/bin/git"
    if os.access(debian_git, os.X_OK):
        return debian_git
    return require_program("git", "git")


def git_exec_path(git: str) -> str:
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


def git_templates(exec_path: str) -> str | None:
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


def is_elf(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def git_helpers(exec_path: str) -> list[str]:
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


def terminfo_files() -> list[str]:
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


def shared_libraries(elf_files: Iterable[str], *, allow_missing: bool = False) -> set[str]:
    """Every shared library (and the loader) these binaries load, according to ``ldd``.

    ``allow_missing``: for an agent's own tree, whose wheels load vendored libraries through
    ``$ORIGIN`` paths that ldd may not follow; those come along with the tree anyway.

    ldd costs a few ms per file (it runs the loader twice), so the files are split over a few
    concurrent ldd processes: about 0.2 s instead of 0.5 s for the ~90 binaries.
    """
    files = sorted(set(elf_files))
    if not files:
        return set()
    ldd = require_program("ldd", "libc-bin")
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
    if missing and not allow_missing:
        raise ImageBuildError(
            "cannot build the agent image offline: shared libraries not found on this host: "
            + "; ".join(missing)
        )
    if not libraries and not allow_missing:
        raise ImageBuildError(f"ldd found no libraries: {outputs[0][1].strip()}")
    return libraries
