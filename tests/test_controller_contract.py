"""The controller interface, checked against both backends: host tmux and a container."""

from __future__ import annotations

import re
import threading

import pytest

from controllers import CommandEnded, CommandTimeout, ConnectionLost, ContainerGone, InvalidInput
from controllers.shell import strip_ansi

from .conftest import Pane, start_foreground

TRICKY = [
    "plain words",
    "quotes ' and \" and `backticks` and $(echo subshell) and ${HOME}",
    "backslash \\ and \\\\ and \\n literally",
    "trailing semicolon;",
    "trailing escaped semicolon \\;",
    "tabs\there\tand\tthere",
    "unicode: é ü ß 日本語 🙂",
    "Enter",
    "C-c",
    "multi\nline\ntext\n",
    "#{pane_id} #[fg=red] ~ $ % !! !$",
]


def type_into_file(pane: Pane, text: str, name: str = "typed.bin") -> bytes:
    """Type ``text`` into a raw-mode reader and return exactly the bytes it received."""
    size = len(text.encode())
    c = pane.controller
    c.send_keys(f"stty raw -echo; printf 'RE%sDY\\n' A; head -c {size} > {name}; stty sane")
    c.wait_for_prompt(re.compile(r"^READY", re.M), timeout=10)
    c.send_keys(text, enter=False)
    c.wait_for_shell_prompt(timeout=30)
    return (pane.host_dir / name).read_bytes()


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_send_keys_arrives_byte_exact(pane: Pane, text: str) -> None:
    assert type_into_file(pane, text) == text.encode()


def test_send_keys_100_kb(pane: Pane) -> None:
    text = "".join(f"{i:06d} αβγ ;\\ `$x`\n" for i in range(5000))
    assert len(text.encode()) > 100_000
    assert type_into_file(pane, text) == text.encode()


def test_send_keys_refuses_nul_before_sending(pane: Pane) -> None:
    c = pane.controller
    before = c.stream.position
    with pytest.raises(InvalidInput, match="NUL"):
        c.send_keys("abc\0def")
    assert c.run("echo still-fine").output == "still-fine\n"
    assert b"abc" not in c.stream.read(before)


def test_delay_enter_sends_a_separate_enter(pane: Pane) -> None:
    """The reader takes all it gets until 0.3 s pass without input: an Enter sent along
    with the text would land in ``first.bin``; a delayed one arrives on its own."""
    c = pane.controller
    c.send_keys(
        "stty raw -echo; printf 'RE%sDY\\n' A; head -c 1 > first.bin; "
        "stty min 0 time 3; head -c 100 >> first.bin; "
        "stty min 0 time 100; head -c 1 > enter.bin; stty sane"
    )
    c.wait_for_prompt(re.compile(r"^READY", re.M), timeout=10)
    c.send_keys("typed", delay_enter=1.5)
    c.wait_for_shell_prompt(timeout=30)
    assert (pane.host_dir / "first.bin").read_bytes() == b"typed"
    assert (pane.host_dir / "enter.bin").read_bytes() == b"\r"


def test_tabs_typed_at_the_shell_prompt_are_text_not_completion(pane: Pane) -> None:
    c = pane.controller
    ended = threading.Event()
    c.subscribe(lambda event: ended.set() if isinstance(event, CommandEnded) else None)
    c.send_keys("printf '%s' 'a\tb\t\tc' > tabs.txt")
    assert ended.wait(10)
    assert (pane.host_dir / "tabs.txt").read_bytes() == b"a\tb\t\tc"


@pytest.mark.parametrize("bracketed", [True, False], ids=["bracketed-paste", "plain"])
def test_run_keeps_tabs(pane: Pane, bracketed: bool) -> None:
    c = pane.controller
    if not bracketed:  # e.g. a user's ~/.inputrc turned it off
        c.run("bind 'set enable-bracketed-paste off'")
        c.run("true")
    assert c.tracker.bracketed_paste == bracketed
    assert c.run("printf '%s' 'a\tb'").output == "a\tb"
    assert c.run("printf '%s\\n' 'x\ty'\nprintf '\\t%s' \"'\"").output == "x\ty\n\t'"


def test_named_keys_are_separate_and_validated(pane: Pane) -> None:
    c = pane.controller
    with pytest.raises(InvalidInput):
        c.send_key("not a key;")
    start_foreground(c, "sleep 100")
    c.send_key("C-c")
    c.wait_for_shell_prompt(10)
    assert c.tracker.exit_code == 130


@pytest.mark.parametrize(
    ("command", "output", "code"),
    [
        ("true", "", 0),
        ("false", "", 1),
        ("echo hello; exit_with() { return $1; }; exit_with 7", "hello\n", 7),
        ("(exit 255)", "", 255),
        ("printf 'a;b\\n'; echo \"$((1+2))\"", "a;b\n3\n", 0),
        ("echo one\necho two", "one\ntwo\n", 0),
        ("# only a comment", "", 0),
        ("echo 'x' >&2; ls /nonexistent-dir 2>/dev/null", "x\n", 2),
    ],
)
def test_run_returns_output_and_exact_exit_code(
    pane: Pane, command: str, output: str, code: int
) -> None:
    result = pane.controller.run(command, timeout=10)
    assert (result.output, result.exit_code) == (output, code)


def test_run_timeout_interrupts_and_leaves_pane_usable(pane: Pane) -> None:
    c = pane.controller
    with pytest.raises(CommandTimeout, match="interrupted"):
        c.run("sleep 30", timeout=0.5)
    assert c.run("echo usable").output == "usable\n"


def test_run_output_longer_than_the_screen(pane: Pane) -> None:
    result = pane.controller.run("seq 1 3000")
    assert result.output.splitlines() == [str(i) for i in range(1, 3001)]


def test_capture_pane_screen_history_and_escapes(pane: Pane) -> None:
    c = pane.controller
    c.run("seq 1 200; printf '\\033[31mRED\\033[0m\\n'")
    screen = c.capture_pane()
    assert "RED" in screen and "\x1b[" not in screen
    assert "\x1b[31m" in c.capture_pane(escapes=True)
    history = c.capture_pane(start="-", end="-").splitlines()
    assert "1" in history and "200" in history


def test_wait_for_prompt_sees_late_output(pane: Pane) -> None:
    c = pane.controller
    c.send_keys("sleep 0.3; printf 'agent%s ready> ' -x")
    match = c.wait_for_prompt(r"agent-x ready> ", timeout=10)
    assert match.group(0) == "agent-x ready> "


def test_wait_for_prompt_times_out_clearly(pane: Pane) -> None:
    with pytest.raises(CommandTimeout, match="never-printed"):
        pane.controller.wait_for_prompt("never-printed", timeout=0.3)


def test_wait_for_idle_returns_after_output_stops(pane: Pane) -> None:
    c = pane.controller
    # Ticks 0.15 s apart (the subject: output with pauses), well inside idle_time even when
    # a loaded machine stretches a pause.
    c.send_keys("for i in 1 2 3 4; do echo tick$i; sleep 0.15; done; echo finished")
    screen = c.wait_for_idle(idle_time=1.5, timeout=30)
    assert re.search(r"(?m)^finished$", screen), screen


def test_wait_for_idle_times_out_while_output_flows(pane: Pane) -> None:
    c = pane.controller
    c.send_keys("while true; do date +%N; sleep 0.05; done")
    with pytest.raises(CommandTimeout, match="not idle"):
        c.wait_for_idle(idle_time=1.5, timeout=2.0)
    c.interrupt(wait=10)


def test_interrupt_stops_the_foreground_program(pane: Pane) -> None:
    c = pane.controller
    start_foreground(c, "sleep 60")
    c.interrupt()
    c.wait_for_shell_prompt(10)
    assert c.run("echo $((40+2))").output == "42\n"


def test_interrupt_with_wait_gives_up_clearly_on_a_program_ignoring_ctrl_c(pane: Pane) -> None:
    c = pane.controller
    # Ctrl-C only once the trap is set: the program says so (split, so the echo cannot match).
    c.send_keys("sh -c \"trap '' INT; printf 'ar%sed\\\\n' m; exec sleep 30\"")
    c.wait_for_prompt(re.compile(r"^armed$", re.M), timeout=10)
    with pytest.raises(CommandTimeout, match="prompt"):
        c.interrupt(wait=1.0)
    c.send_key("C-\\")  # SIGQUIT is not ignored
    c.wait_for_shell_prompt(10)
    assert c.run("echo back").output == "back\n"


def test_paste_multiline_is_one_input(pane: Pane) -> None:
    c = pane.controller
    c.paste("echo first\necho second")
    c.send_key("Enter")
    c.wait_for_prompt(re.compile(r"^first\nsecond$", re.M), timeout=10)
    assert c.run("echo ok").output == "ok\n"


def test_paste_of_large_unicode_text_arrives_exactly(pane: Pane) -> None:
    """Over several paste chunks, with multi-byte characters split across chunk borders.

    Newlines become CR, as in a terminal's paste; every other byte arrives as given.
    """
    c = pane.controller
    text = "".join(f"{i:05d} é日🙂;\\\n" for i in range(2000))
    size = len(text.encode())
    c.send_keys(f"stty raw -echo; printf 'RE%sDY\\n' A; head -c {size} > pasted.bin; stty sane")
    c.wait_for_prompt(re.compile(r"^READY", re.M), timeout=10)
    c.paste(text, bracketed=False)
    c.wait_for_shell_prompt(timeout=30)
    assert (pane.host_dir / "pasted.bin").read_bytes() == text.encode().replace(b"\n", b"\r")


def test_output_stream_subscription(pane: Pane) -> None:
    c = pane.controller
    got: list[bytes] = []
    seen = threading.Event()

    def listener(data: bytes) -> None:
        got.append(data)
        if b"streamed-99" in b"".join(got):
            seen.set()

    unsubscribe = c.stream.subscribe(listener)
    c.run("echo streamed-$((100-1))")
    assert seen.wait(5)
    unsubscribe()


def test_pipe_output_keeps_everything_past_scrollback(pane: Pane) -> None:
    c = pane.controller
    c.tmux("set-option", "-t", c.session, "history-limit", "100")
    c.pipe_output(f"{pane.pane_dir}/out.log")
    c.run("seq 1 5000")
    c.stop_pipe()
    log = strip_ansi((pane.host_dir / "out.log").read_bytes()).decode()
    assert [str(i) for i in range(1, 5001)] == [line for line in log.splitlines() if line.isdigit()]


def logging_cat(pane: Pane, log: str) -> str:
    """The pid of the ``cat`` that ``pipe_output`` started to write ``log``."""
    found = pane.controller.run(
        f'for p in /proc/[0-9]*; do [ "$(readlink $p/fd/1)" = "$PWD/{log}" ] '
        "&& echo pid=${p#/proc/}; done"
    ).output.strip()
    assert found.startswith("pid=") and found[4:].isdigit(), f"no process writes {log}: {found!r}"
    return found[4:]


def test_stop_pipe_waits_for_a_log_that_lags_behind(pane: Pane) -> None:
    c = pane.controller
    c.pipe_output(f"{pane.pane_dir}/lag.log")
    pid = logging_cat(pane, "lag.log")
    c.run(f"kill -STOP {pid}")
    # ~600 KB, more than the socket to a stopped ``cat`` holds: tmux keeps the rest itself.
    c.run("seq 1 100000", timeout=120)
    # The consumer lagging behind is the subject: it resumes only after stop_pipe began.
    c.tmux("run-shell", "-b", f"sleep 1; kill -CONT {pid}")
    c.stop_pipe()
    log = strip_ansi((pane.host_dir / "lag.log").read_bytes()).decode()
    assert [str(i) for i in range(1, 100001)] == [ln for ln in log.splitlines() if ln.isdigit()]


def test_stop_pipe_gives_up_on_a_log_that_never_catches_up(pane: Pane) -> None:
    c = pane.controller
    c.pipe_output(f"{pane.pane_dir}/stuck.log")
    pid = logging_cat(pane, "stuck.log")
    c.run(f"kill -STOP {pid}")
    c.run("echo never-logged")
    with pytest.raises(CommandTimeout, match=r"stuck\.log"):
        c.stop_pipe(timeout=1)
    assert c.run(f"kill -CONT {pid}; echo fine").output == "fine\n"


def test_is_alive_and_server_killed_under_us(pane: Pane) -> None:
    c = pane.controller
    assert c.is_alive()
    c.client.send("kill-server")
    c.client.closed.wait(5)
    assert not c.is_alive()
    # A container's controller says what became of the container.
    lost = ContainerGone if pane.backend == "docker" else ConnectionLost
    with pytest.raises(lost, match=r"gone|lost|removed|exited"):
        c.run("true")
    assert c.client._proc.poll() is not None, "the control client was left running"
