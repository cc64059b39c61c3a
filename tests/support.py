"""Set-up the tests and the benchmarks share: git repositories, and Claude Code's environment
against the scripted server. No pytest here: the benchmarks import it too."""

from __future__ import annotations

import subprocess
from pathlib import Path

CLAUDE_KEY = "sk-ant-test-0123456789abcdefghijKLMNOPQRST"
"""The API key Claude Code is given (the scripted server takes any)."""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def git_repo(path: Path, files: dict[str, bytes]) -> Path:
    """A git repository at ``path`` on ``main`` with ``files`` committed."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "Dev")
    for name, data in files.items():
        (path / name).write_bytes(data)
        (path / name).chmod(0o755 if data.startswith(b"#!") else 0o644)
    git(path, "add", *files)
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
