"""The cockpit in a real terminal: ``luzia cockpit`` in a tmux pane of its own, keys sent to it
and its screen read back; Enter puts the person in a job's live pane and ``C-b d`` brings them
back to the cockpit."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from controllers import LocalTmuxController
from controllers.errors import CommandTimeout
from luzia.dispatcher import ResponsiveDispatcher
from tests.test_cockpit import printer

WAIT = 30.0


def shows(terminal: LocalTmuxController, pattern: str) -> None:
    """Wait until the terminal's screen matches ``pattern``; a failure says what it showed."""
    try:
        terminal.wait_for_prompt(pattern, timeout=WAIT)
    except CommandTimeout as exc:
        raise AssertionError(f"{exc}; the screen:\n{terminal.capture_pane()}") from exc


@pytest.fixture
def d(dispatcher: ResponsiveDispatcher) -> ResponsiveDispatcher:
    """The suite's dispatcher and in-process engine on a fresh home."""
    return dispatcher


def test_cockpit_in_a_terminal_attach_and_back(d: ResponsiveDispatcher, tmp_path: Path) -> None:
    job_id = d.dispatch_task(printer("inside-the-job"), backend="local", workdir=tmp_path)
    with LocalTmuxController(cwd=tmp_path, width=140, height=40) as terminal:
        terminal.wait_for_shell_prompt()
        terminal.send_keys(f"{sys.executable} -m luzia --home {d.home} cockpit")
        shows(terminal, rf"{job_id}.*running|running.*{job_id}")
        screen = terminal.capture_pane()
        assert "luzia cockpit" in screen and "inside-the-job" in screen  # list and preview

        # ? shows the help; q closes it
        terminal.send_key("?")
        shows(terminal, "C-b d brings you back here")
        terminal.send_key("q")
        shows(terminal, re.escape("pane (live)"))

        # Enter: the job's own pane, live, on this terminal; C-b d: back in the cockpit
        terminal.send_key("Enter")
        shows(terminal, r"(?s)^(?!.*luzia cockpit).*inside-the-job")
        terminal.send_keys("typed-while-attached")
        shows(terminal, "got:typed-while-attached")
        terminal.send_key("C-b", "d")
        shows(terminal, "luzia cockpit")
        shows(terminal, re.escape("pane (live)"))

        # q quits: the shell is back and the job runs on
        terminal.send_key("q")
        terminal.wait_for_shell_prompt(WAIT)
    assert d.get_status(job_id).state.value == "running"
