"""Typed pane events (``subscribe``), on both backends, plus the decoder on split input."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from controllers import (
    CommandEnded,
    CommandStarted,
    CommandStopped,
    DockerTmuxController,
    LocalTmuxController,
    Output,
    PaneEvent,
    PaneLost,
    PromptRedrawn,
    TitleChanged,
    TmuxController,
)
from controllers.shell import PROMPT_MARK, START_MARK, ShellTracker

from .conftest import Pane, start_foreground
from .test_local_controller import wait_until_gone

if TYPE_CHECKING:
    import docker

E = TypeVar("E", bound=PaneEvent)


class Recorder:
    """A listener that keeps what it is given and lets the test wait for an event."""

    def __init__(self) -> None:
        self.events: list[PaneEvent] = []
        self.threads: set[str] = set()
        self.cond = threading.Condition()

    def __call__(self, event: PaneEvent) -> None:
        with self.cond:
            self.events.append(event)
            self.threads.add(threading.current_thread().name)
            self.cond.notify_all()

    def wait_for(self, kind: type[E], timeout: float = 30.0) -> E:
        def found() -> E | None:
            return next((e for e in self.events if isinstance(e, kind)), None)

        with self.cond:
            assert self.cond.wait_for(lambda: found() is not None, timeout), (
                f"no {kind.__name__} within {timeout:g} s; got {self.signals()}"
            )
            event = found()
        assert event is not None
        return event

    def signals(self) -> list[PaneEvent]:
        """Everything but the raw output."""
        with self.cond:
            return [e for e in self.events if not isinstance(e, Output)]

    def output(self) -> bytes:
        with self.cond:
            return b"".join(e.data for e in self.events if isinstance(e, Output))


def listen(c: TmuxController, *, replay: bool = False) -> Recorder:
    recorder = Recorder()
    c.subscribe(recorder, replay=replay)
    return recorder


# -- the shell and the title, both backends --


def test_a_command_gives_started_then_ended_with_its_status(pane: Pane) -> None:
    c = pane.controller
    got = listen(c)
    assert c.run("echo hi; (exit 3)").exit_code == 3
    assert got.signals() == [CommandStarted(c.pane_id), CommandEnded(c.pane_id, status=3)]
    assert b"hi" in got.output()
    assert got.threads == {"tmux-control"}, "listeners run in the reader thread"


def test_output_comes_before_the_markers_it_carried(pane: Pane) -> None:
    c = pane.controller
    got = listen(c)
    c.run("echo first-$((1+1))")
    with got.cond:
        ended = next(i for i, e in enumerate(got.events) if isinstance(e, CommandEnded))
        before = b"".join(e.data for e in got.events[:ended] if isinstance(e, Output))
    assert PROMPT_MARK in before and b"first-2" in before


def test_an_empty_line_redraws_the_prompt_and_ends_nothing(pane: Pane) -> None:
    c = pane.controller
    got = listen(c)
    c.send_keys("")
    got.wait_for(PromptRedrawn)
    assert got.signals() == [PromptRedrawn(c.pane_id)]


def test_ctrl_z_gives_command_stopped(pane: Pane) -> None:
    c = pane.controller
    got = listen(c)
    start_foreground(c, "sleep 30")
    c.send_key("C-z")
    assert got.wait_for(CommandStopped).signal == "SIGTSTP"
    assert not any(isinstance(e, CommandEnded) for e in got.signals())
    assert c.run("kill -9 %1").exit_code == 0


def test_title_changes_are_events(pane: Pane) -> None:
    c = pane.controller
    got = listen(c)
    c.run("printf '\\033]2;hello\\007'")
    c.run("printf '\\033]2;hello\\007'")  # the same title again: no event
    c.run("printf '\\033]0;w\\303\\266rld\\033\\\\'")  # OSC 0, ended by ST
    titles = [e.title for e in got.signals() if isinstance(e, TitleChanged)]
    assert titles == ["hello", "wörld"]


def test_a_marker_printed_by_a_program_is_only_a_claim(pane: Pane) -> None:
    """The event comes (markers are text), and that is all: the program still runs.

    Whoever needs the truth checks the process, as ``CommandEnded`` says.
    """
    c = pane.controller
    got = listen(c)
    # sh stays in the foreground (no ``exec``): while a program execs, tmux reads no name for it
    # and reports the pane's shell, ``bash``, so the check below would race the exec.
    start_foreground(c, "sh -c \"printf '\\033]7767;luzia;P;5\\007'; sleep 30; :\"")
    assert got.wait_for(CommandEnded).status == 5
    assert c.current_command() != "bash", "the program still runs"
    c.interrupt(wait=10)
    assert c.run("echo fine").output == "fine\n"


def test_replay_hands_over_what_came_before(pane: Pane) -> None:
    c = pane.controller
    c.run("(exit 4)")
    got = listen(c, replay=True)
    assert CommandEnded(c.pane_id, status=4) in got.signals()
    late = listen(c)
    assert late.events == []


def test_unsubscribe_stops_the_events(pane: Pane) -> None:
    c = pane.controller
    got = Recorder()
    unsubscribe = c.subscribe(got)
    c.run("true")
    unsubscribe()
    count = len(got.events)
    c.run("true")
    assert len(got.events) == count


def test_a_failing_listener_does_not_stop_the_others(pane: Pane) -> None:
    c = pane.controller

    def broken(event: PaneEvent) -> None:
        raise RuntimeError("listener bug")

    c.subscribe(broken)
    got = listen(c)
    assert c.run("echo still").output == "still\n"
    assert CommandEnded(c.pane_id, status=0) in got.signals()


# -- losing the pane --


def only_one_loss(got: Recorder) -> PaneLost:
    lost = got.wait_for(PaneLost)
    assert [e for e in got.events if isinstance(e, PaneLost)] == [lost]
    assert isinstance(got.events[-1], PaneLost), "nothing comes after PaneLost"
    return lost


def test_server_killed_gives_pane_lost(pane: Pane) -> None:
    c = pane.controller
    got = listen(c)
    c.client.send("kill-server")
    lost = got.wait_for(PaneLost)
    assert c.client.closed.wait(10)
    assert lost == only_one_loss(got)
    assert not lost.stream_only
    assert "exited" in lost.cause, lost.cause


def rejoin(pane: Pane) -> TmuxController:
    """A second controller on the same tmux server (it only detaches on close)."""
    c = pane.controller
    if isinstance(c, LocalTmuxController):
        return LocalTmuxController(c.socket_path)
    assert isinstance(c, DockerTmuxController)
    return DockerTmuxController.adopt(c.container.id)


def test_control_client_killed_gives_stream_only_loss_and_the_pane_goes_on(pane: Pane) -> None:
    c = pane.controller
    got = listen(c)
    start_foreground(c, "sleep 300")
    c.client._proc.kill()
    lost = got.wait_for(PaneLost)
    assert lost.stream_only, lost
    assert "ended" in lost.cause, lost.cause
    joined = rejoin(pane)
    try:
        assert joined.pane_id == c.pane_id
        assert joined.current_command() == "sleep", "the pane's program did not go on"
        assert only_one_loss(got) == lost
        server = int(joined.tmux("display-message", "-p", "#{pid}")[0])
    finally:
        joined.close()
    if isinstance(c, LocalTmuxController):  # its owner still ends the server it started
        c.close()
        wait_until_gone(server)


def test_detach_gives_a_stream_only_loss(pane: Pane) -> None:
    joined = rejoin(pane)
    got = listen(joined)
    joined.close()
    lost = only_one_loss(got)
    assert (lost.cause, lost.stream_only) == ("detached by its controller", True)
    assert pane.controller.run("echo here").output == "here\n"


def test_its_window_closing_gives_pane_lost(tmp_path: Path) -> None:
    with LocalTmuxController(cwd=tmp_path) as c:
        c.wait_for_shell_prompt(10)
        c.tmux("new-window", "-d", "-t", c.session, "sleep 300")  # keeps the server up
        got = listen(c)
        c.send_keys("exit")
        lost = only_one_loss(got)
        assert (lost.cause, lost.stream_only) == ("its window closed", False)
        assert not c.client.closed.is_set()


def test_close_of_an_owned_controller_says_it_killed_it(tmp_path: Path) -> None:
    c = LocalTmuxController(cwd=tmp_path)
    got = listen(c)
    c.close()
    lost = only_one_loss(got)
    assert (lost.cause, lost.stream_only) == ("its tmux server was killed by its controller", False)


def remove(container: object) -> None:
    container.remove(force=True)  # type: ignore[attr-defined]


def kill(container: object) -> None:
    container.kill()  # type: ignore[attr-defined]


@pytest.mark.docker
@pytest.mark.parametrize(
    ("fault", "words"), [(remove, ["removed"]), (kill, ["exited", "137"])], ids=["rm", "kill"]
)
def test_container_gone_names_the_container(
    agent_container: DockerTmuxController,
    docker_engine: docker.DockerClient,
    fault: Callable[[object], None],
    words: list[str],
) -> None:
    c = agent_container
    got = listen(c)
    fault(docker_engine.containers.get(c.container.id))
    lost = only_one_loss(got)
    assert not lost.stream_only
    assert c.container.short_id in lost.cause
    for word in words:
        assert word in lost.cause, lost.cause


# -- the decoder, fed in every split --


STREAM = (
    b"\x1b[?2004l\r\n"
    + START_MARK
    + b"out \x1b]2;t\xc3\xadtle\x07 more\r\n"
    + PROMPT_MARK
    + b"7\x07~ $ \x1b[?2004h"
    + PROMPT_MARK
    + b"0\x07~ $ "
    + START_MARK
    + b"\x1b]0;other\x1b\\"
    + PROMPT_MARK
    + b"148\x07"
)
EXPECTED = [
    CommandStarted("%1"),
    TitleChanged("%1", title="títle"),
    CommandEnded("%1", status=7),
    PromptRedrawn("%1"),
    CommandStarted("%1"),
    TitleChanged("%1", title="other"),
    CommandStopped("%1", signal="SIGTSTP"),
]


def decode(chunks: list[bytes]) -> tuple[list[PaneEvent], ShellTracker]:
    tracker = ShellTracker(threading.Condition(), "%1")
    events: list[PaneEvent] = []
    for chunk in chunks:
        events += tracker.feed(chunk)
    return events, tracker


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_events_survive_any_split_into_two_chunks(cut: int) -> None:
    events, tracker = decode([STREAM[:cut], STREAM[cut:]])
    assert events == EXPECTED
    assert tracker.last is not None and tracker.last.output == ""
    assert (tracker.prompts, tracker.commands, tracker.exit_code) == (3, 2, 148)
    assert tracker.bracketed_paste


def test_events_survive_one_byte_at_a_time() -> None:
    events, tracker = decode([STREAM[i : i + 1] for i in range(len(STREAM))])
    assert events == EXPECTED
    assert tracker.title == "other"


def test_command_output_keeps_titles_but_not_markers() -> None:
    events, tracker = decode([START_MARK + b"a\x1b]2;x\x07b\r\n" + PROMPT_MARK + b"0\x07"])
    assert tracker.last is not None and tracker.last.output == "ab\n"
    assert events[-1] == CommandEnded("%1", status=0)
