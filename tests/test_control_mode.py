"""ControlModeClient against a real tmux: replies are matched to the commands that asked."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from controllers import ControlModeClient
from controllers.controller import session_argv, session_commands

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Path]:
    """A running tmux server (session ``luzia``) on a socket of its own."""
    sock = tmp_path / "tmux.sock"
    tmux = ["tmux", "-S", str(sock), "-f", "/dev/null"]
    subprocess.run([*tmux, "new-session", "-d", "-s", "luzia", "sleep", "600"], check=True)
    yield sock
    subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)


def first_answer(sock: Path, history_limit: int) -> list[str]:
    """Join ``sock`` setting ``history-limit`` on the way, and ask for it at once."""
    argv = session_argv(
        ["tmux", "-S", str(sock)],
        "luzia",
        width=80,
        height=20,
        cwd=None,
        env={},
        history_limit=history_limit,
    )
    client = ControlModeClient(argv, startup_commands=session_commands(argv))
    try:
        return client.command("show-options", "-gv", "history-limit")
    finally:
        client.close()


def test_first_command_is_answered_after_the_startup_commands(server: Path) -> None:
    """tmux may run a line read from stdin before the commands in its own argv.

    A client joining a running server shows it most often (a fresh server only about once
    in a thousand starts, which left the controller with an empty pane id): unless the
    client holds its first line back, some of these answers are the previous value.
    """
    answers = {limit: first_answer(server, limit) for limit in range(1000, 1200)}
    wrong = {limit: answer for limit, answer in answers.items() if answer != [str(limit)]}
    assert not wrong, f"{len(wrong)} of 200 first commands ran before the startup ones: {wrong}"


def test_an_argument_ending_in_a_semicolon_stays_one_argument(tmp_path: Path) -> None:
    """tmux splits its argv at a trailing ``;``: the command count and the value must hold."""
    sock = tmp_path / "tmux.sock"
    value = "a; b \\;"
    argv = session_argv(
        ["tmux", "-S", str(sock)],
        "luzia",
        width=80,
        height=20,
        cwd=None,
        env={"LUZIA_X": value},
        history_limit=1000,
    )
    client = ControlModeClient(argv, startup_commands=session_commands(argv))
    try:
        assert client.command("show-environment", "-t", "luzia", "LUZIA_X") == [f"LUZIA_X={value}"]
    finally:
        client.send("kill-server")
        client.close()
