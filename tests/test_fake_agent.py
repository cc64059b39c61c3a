"""The test agent (``examples/agents/fake-agent``), driven for real through luzia's controllers.

Every test runs the bash script in a tmux pane and talks to it the way luzia talks to a real
AI coding CLI: wait for its prompt, paste a task, press Enter separately, watch the screen.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from controllers import DockerTmuxController, TmuxController
from tests.conftest import FAKE_AGENT as AGENT

PROMPT = re.compile(r"(?m)^>\s*\Z")
"""The agent waits for a task: its prompt ``> `` is the last line of the screen."""
QUESTION = re.compile(r"\[y/n\]\s*\Z")
"""The agent waits for a person: a ``[y/n]`` question is the last thing on the screen."""

QUICK = {"FAKE_AGENT_THINK": "0.2", "FAKE_AGENT_STREAM_DELAY": "0.005"}


def start(c: TmuxController, agent: str | Path = AGENT, **env: str) -> None:
    """Start the agent in the pane and wait for its prompt."""
    assignments = [f"{k}={shlex.quote(v)}" for k, v in {**QUICK, **env}.items()]
    c.send_keys(" ".join([*assignments, shlex.quote(str(agent))]))
    c.wait_for_prompt(PROMPT, timeout=15)


def submit(c: TmuxController, task: str) -> None:
    """Deliver a task as luzia does: a bracketed paste, then a separate Enter.

    The Enter goes once the agent has echoed the paste's last line: it took the paste.
    """
    seen = c.stream.position
    c.paste(task)
    echo = task.strip().splitlines()[-1].encode()
    with c.stream.cond:
        took = c.stream.cond.wait_for(lambda: echo in c.stream.read(seen), 15)
    assert took, f"the agent did not echo the pasted {task!r}"
    c.send_key("Enter")


def wait_turn_done(c: TmuxController, turn: int, timeout: float = 30) -> str:
    """Wait until turn ``turn`` ended with the prompt back; return the screen."""
    c.wait_for_prompt(re.compile(rf"Turn {turn} (done|failed)\.\n+>\s*\Z"), timeout=timeout)
    return c.capture_pane(start="-")


def wait_exit(c: TmuxController) -> int:
    """Wait until the agent exited and our shell is back; return the agent's exit code."""
    c.wait_for_shell_prompt(timeout=15)
    return c.tracker.exit_code


# -- the script itself --------------------------------------------------------------------


def test_script_is_valid_bash() -> None:
    assert AGENT.stat().st_mode & 0o111, "fake-agent must be executable"
    subprocess.run(["bash", "-n", str(AGENT)], check=True)
    if shutil.which("shellcheck"):
        result = subprocess.run(["shellcheck", str(AGENT)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_non_terminal_input_takes_one_task_per_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(AGENT)],
        input="hello there\nedit out.txt: from a pipe\n/exit\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", **QUICK},
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout  # no colours when stdout is not a terminal
    assert 'I read your task: "hello there"' in result.stdout
    assert "Turn 2 done." in result.stdout
    assert (tmp_path / "out.txt").read_text() == "from a pipe\n"


# -- interactive, on the host's tmux --------------------------------------------------------


def test_banner_prompt_and_colours(tmux_controller: TmuxController) -> None:
    c = tmux_controller
    start(c)
    screen = c.capture_pane()
    assert "╭─ fake-agent" in screen
    assert c.current_command() == "fake-agent"
    assert "\x1b[" in c.capture_pane(escapes=True)
    submit(c, "what is in this repo?")
    screen = wait_turn_done(c, 1)
    assert 'I read your task: "what is in this repo?"' in screen
    assert "Nothing changed." in screen
    c.send_keys("/exit")
    assert wait_exit(c) == 0


def test_multiline_paste_is_one_turn(tmux_controller: TmuxController, tmp_path: Path) -> None:
    c = tmux_controller
    transcript = tmp_path / "transcript.txt"
    start(c, FAKE_AGENT_TRANSCRIPT=str(transcript))
    task = "Refactor the parser.\nKeep the API.\n  Indented line; $(not run) `nor this`\n"
    submit(c, task)
    screen = wait_turn_done(c, 1)
    assert '"Refactor the parser." (3 lines)' in screen
    assert "Turn 2" not in screen
    assert transcript.read_text() == "--- turn 1\n" + task
    # The same text typed with Ctrl-J between lines (not Enter) is one task too.
    c.send_keys("first line\nsecond line", enter=False)
    c.send_key("Enter")
    screen = wait_turn_done(c, 2)
    assert '"first line" (2 lines)' in screen
    assert transcript.read_text().endswith("--- turn 2\nfirst line\nsecond line\n")


def test_unbracketed_paste_runs_each_line(tmux_controller: TmuxController) -> None:
    """Why luzia pastes bracketed: without it, each newline of the task is an Enter."""
    c = tmux_controller
    start(c)
    c.paste("say: one\nsay: two\n", bracketed=False)
    screen = wait_turn_done(c, 2)
    assert 'I read your task: "say: one"' in screen
    assert 'I read your task: "say: two"' in screen


def test_edits_land_in_the_workspace(tmux_controller: TmuxController, tmp_path: Path) -> None:
    c = tmux_controller
    (tmp_path / "old.txt").write_text("stale\n")
    start(c)
    submit(
        c,
        "edit src/app.py: print('hello')\n"
        "edit src/app.py: print('world')\n"
        "edit notes.md: # Notes: a colon in the text\n"
        "delete old.txt\n"
        "edit ../escape.txt: never\n",
    )
    screen = wait_turn_done(c, 1)
    assert (tmp_path / "src" / "app.py").read_text() == "print('hello')\nprint('world')\n"
    assert (tmp_path / "notes.md").read_text() == "# Notes: a colon in the text\n"
    assert not (tmp_path / "old.txt").exists()
    assert not (tmp_path.parent / "escape.txt").exists()
    assert "Created src/app.py" in screen
    assert "Deleted old.txt" in screen
    assert "outside the workspace" in screen


@pytest.mark.parametrize(("answer", "approved"), [("y", True), ("n", False)])
def test_question_gates_the_edits(
    tmux_controller: TmuxController, tmp_path: Path, answer: str, approved: bool
) -> None:
    c = tmux_controller
    start(c)
    submit(c, "ask: Allow edit to main.py?\nedit main.py: x = 1\n")
    c.wait_for_prompt(QUESTION, timeout=15)
    assert "Allow edit to main.py? [y/n]" in c.capture_pane()
    c.send_keys("x", enter=False)  # not an answer: still asking
    c.send_keys(answer, enter=False)
    screen = wait_turn_done(c, 1)
    assert f"Allow edit to main.py? [y/n] {answer}" in screen
    assert (tmp_path / "main.py").exists() is approved
    assert ("Approved" in screen) is approved
    assert ("Skipped the edit to main.py" in screen) is not approved


def test_silent_stretch_is_not_a_turn_end(tmux_controller: TmuxController) -> None:
    """Quiet alone means nothing: the prompt is not back during the silence."""
    c = tmux_controller
    start(c)
    submit(c, "say: starting\nsilent 3\nsay: after the silence\n")
    c.wait_for_prompt(r"(?m)^  starting$", timeout=15)  # the reply, not the echoed task
    quiet_screen = c.wait_for_idle(idle_time=0.5, timeout=15)
    assert quiet_screen.splitlines()[-1] == "  starting"  # the reply so far, no prompt
    assert not PROMPT.search(quiet_screen)
    screen = wait_turn_done(c, 1)
    assert re.search(r"(?m)^  after the silence$", screen)


def test_exit_directive_ends_the_agent(tmux_controller: TmuxController) -> None:
    c = tmux_controller
    start(c)
    submit(c, "say: leaving now\nexit 5")
    assert wait_exit(c) == 5
    assert "Turn 1 done." in c.capture_pane()


def test_task_as_argument_runs_first(tmux_controller: TmuxController, tmp_path: Path) -> None:
    c = tmux_controller
    c.send_keys(f"FAKE_AGENT_THINK=0.1 {shlex.quote(str(AGENT))} 'edit a.txt: from argv'")
    wait_turn_done(c, 1)
    assert (tmp_path / "a.txt").read_text() == "from argv\n"
    c.send_key("C-d")
    assert wait_exit(c) == 0


def test_print_mode_exit_codes(tmux_controller: TmuxController, tmp_path: Path) -> None:
    c = tmux_controller
    agent = f"FAKE_AGENT_THINK=0.1 {shlex.quote(str(AGENT))}"
    result = c.run(f"{agent} -p 'explain the code'", timeout=30)
    assert result.exit_code == 0
    assert 'I read your task: "explain the code"' in result.output
    assert "Turn 1 done." in result.output
    assert c.run(f"{agent} -p 'say: bye'$'\\n''exit 7'", timeout=30).exit_code == 7
    failed = c.run(f"{agent} -p 'fail: the build broke'", timeout=30)
    assert failed.exit_code == 1
    assert "Error: the build broke" in failed.output
    piped = c.run(f"echo 'edit p.txt: piped' | {agent} -p", timeout=30)
    assert piped.exit_code == 0
    assert (tmp_path / "p.txt").read_text() == "piped\n"
    # A question without a person to answer it is declined.
    declined = c.run(f"printf 'ask: ok?\\nedit q.txt: no' | {agent} -p", timeout=30)
    assert declined.exit_code == 0
    assert not (tmp_path / "q.txt").exists()


def test_drop_fast_enter(tmux_controller: TmuxController) -> None:
    """With FAKE_AGENT_DROP_FAST_ENTER an Enter right behind the text is lost, as in Ink TUIs."""
    c = tmux_controller
    start(c, FAKE_AGENT_DROP_FAST_ENTER="1", FAKE_AGENT_FAST_ENTER="0.3")
    c.paste("pasted task")
    c.send_key("Enter")  # arrives with the paste: dropped
    screen = c.wait_for_idle(idle_time=0.6, timeout=15)
    assert screen.rstrip().endswith("> pasted task")
    assert "Thinking" not in screen
    c.send_key("Enter")  # a separate Enter, well after the text
    wait_turn_done(c, 1)
    c.send_keys("typed task")  # text and Enter back to back: dropped too
    screen = c.wait_for_idle(idle_time=0.6, timeout=15)
    assert screen.rstrip().endswith("> typed task")
    c.send_key("C-u")
    c.send_keys("typed task", delay_enter=1.0)  # what luzia's delay_enter is for
    screen = wait_turn_done(c, 2)
    assert 'I read your task: "typed task"' in screen


def test_ctrl_c_and_esc_interrupt_a_turn(tmux_controller: TmuxController, tmp_path: Path) -> None:
    c = tmux_controller
    start(c)
    submit(c, "think 60\nedit never.txt: no")
    c.wait_for_prompt("esc to interrupt", timeout=15)
    c.interrupt()
    c.wait_for_prompt(PROMPT, timeout=15)
    assert "Interrupted by user" in c.capture_pane()
    assert not (tmp_path / "never.txt").exists()
    submit(c, "say: first\nsilent 60\nedit never.txt: no")
    c.wait_for_prompt(r"(?m)^  first$", timeout=15)  # the reply, not the echoed task
    c.send_key("Escape")
    c.wait_for_prompt(PROMPT, timeout=15)
    assert c.capture_pane(start="-").count("Interrupted by user") == 2
    submit(c, "say: still alive")
    screen = wait_turn_done(c, 3)
    assert "still alive" in screen
    assert not (tmp_path / "never.txt").exists()
    # Ctrl-C twice at the prompt quits with 130.
    c.interrupt()
    c.wait_for_prompt(r"press Ctrl-C again to exit\)\n>\s*\Z", timeout=15)
    c.interrupt()
    assert wait_exit(c) == 130


# -- inside the agent container -------------------------------------------------------------


@pytest.mark.docker
def test_in_the_agent_container(agent_container: DockerTmuxController, tmp_path: Path) -> None:
    """The image has bash and coreutils but no Python or Node: the agent must still work."""
    c = agent_container
    workspace = tmp_path / "workspace"
    shutil.copy2(AGENT, workspace / "fake-agent")
    assert c.run("./fake-agent -p 'exit 4'", timeout=30).exit_code == 4
    start(c, "./fake-agent")
    assert c.current_command() == "fake-agent"
    submit(c, "ask: Allow edit to main.py?\nedit main.py: print('from the container')\n")
    c.wait_for_prompt(QUESTION, timeout=15)
    c.send_keys("y", enter=False)
    wait_turn_done(c, 1)
    assert (workspace / "main.py").read_text() == "print('from the container')\n"
    c.send_keys("/exit")
    assert wait_exit(c) == 0
