"""Set-up the tests and the benchmarks share: git repositories, and Claude Code's environment
against the scripted server. No pytest here: the benchmarks import it too."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from luzia.jobs import Job
from luzia.proctree import job_pids

CLAUDE_KEY = "sk-ant-test-0123456789abcdefghijKLMNOPQRST"
"""The API key Claude Code is given (the scripted server takes any)."""


def see_through_attach(argv: list[str], expected: str, **spawn: Any) -> None:
    """Attach as a person would (``luzia attach``'s argv), see ``expected`` in the pane, then
    detach with C-b d and see the attach end."""
    import pexpect

    person = pexpect.spawn(argv[0], argv[1:], **{"timeout": 30, "dimensions": (50, 200), **spawn})
    try:
        person.expect(expected)
        person.sendcontrol("b")
        person.send("d")
        person.expect(pexpect.EOF)
    finally:
        person.close(force=True)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def git_repo(path: Path, files: dict[str, bytes]) -> Path:
    """A git repository at ``path`` on ``main`` with ``files`` (and any already there)
    committed."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "Dev")
    for name, data in files.items():
        (path / name).write_bytes(data)
        (path / name).chmod(0o755 if data.startswith(b"#!") else 0o644)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "start")
    return path


def claude_env(base_url: str) -> dict[str, str]:
    """Claude Code's variables: the model server as its only endpoint, no update checks or
    telemetry."""
    return {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": CLAUDE_KEY,
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


def runs(argv: list[str], program: str) -> bool:
    """Whether a command line runs ``program`` (itself, or as a script: ``python .../aider``)."""
    return program in [arg.rsplit("/", 1)[-1] for arg in argv[:2]]


def agent_pid(job: Job, program: str) -> int:
    """This host's pid of the job's process running ``program`` (in its container, if any)."""
    if job.container_id is not None:
        import docker

        top = docker.from_env().containers.get(job.container_id).top()
        titles = top["Titles"]
        for row in top["Processes"]:
            fields = dict(zip(titles, row, strict=False))
            if runs(fields.get("CMD", "").split(" "), program):
                return int(fields["PID"])
        raise AssertionError(f"no {program} in container {job.container_id[:12]}: {top}")
    for pid in job_pids(job.id):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if runs(argv, program):
            return pid
    raise AssertionError(f"no {program} among job {job.id}'s processes")
