"""The cockpit through Textual's own harness (``App.run_test``, ``Pilot``), on a real home with
real local jobs in tmux and a real engine: the list and its order, the live preview, every key,
the confirmations, and the bad cases (empty home, removed job, small terminal, no engine)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from luzia.agents import BUILTIN_PROFILES
from luzia.cockpit.app import Cockpit, Confirm, Page
from luzia.cockpit.model import ordered, question
from luzia.config import Config
from luzia.dispatcher import ResponsiveDispatcher
from luzia.jobs import JobState
from tests.conftest import Events, sample_job, wait_state, waiting

PROFILE = dataclasses.replace(
    BUILTIN_PROFILES["fake-agent"], name="fake", command="bash ./fake-agent", start_timeout=30
)
AGENT_ENV = {"FAKE_AGENT_THINK": "0.2", "FAKE_AGENT_DROP_FAST_ENTER": "1"}
CONFIG = Config(agents={"fake": PROFILE})
SIZE = (140, 40)
WAIT = 30.0


@pytest.fixture
def d(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ResponsiveDispatcher]:
    """A dispatcher with its engine in this process and the fake agent configured."""
    monkeypatch.setenv("LUZIA_NO_AUTOSTART", "1")
    dispatcher = ResponsiveDispatcher(home=tmp_path / "home", config=CONFIG)
    engine = dispatcher.start_background_monitor()
    yield dispatcher
    dispatcher.clean(all=True)
    engine.stop()
    dispatcher.close()


def sync(test: Callable[..., Coroutine[object, object, None]]) -> Callable[..., None]:
    """Run an async test in its own event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args: object, **kwargs: object) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


async def until(pilot: Pilot[None], check: Callable[[], object], what: str) -> None:
    """Let the app run until ``check()`` holds; fail after ``WAIT`` seconds."""
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}; preview: {shown(pilot)!r}"
        await pilot.pause(0.02)


def shown(pilot: Pilot[None]) -> str:
    app = pilot.app
    assert isinstance(app, Cockpit)
    return rendered(app, "#preview")


def rendered(app: Cockpit, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


def listed(app: Cockpit) -> list[str]:
    table = app.query_one("#jobs", DataTable)
    return [str(key.value) for key in table.rows]


def printer(text: str) -> str:
    """A command that prints ``text`` in red, then waits for a line of input, forever."""
    return f"printf '\\033[31m{text}\\033[0m\\n'; while read -r line; do echo \"got:$line\"; done"


# -- the model, without a screen


def test_question_and_order() -> None:
    asking = sample_job(id="a", state=JobState.WAITING, message="Allow? [y/n]", created_at=1)
    jobs = [
        sample_job(id="q", state=JobState.QUEUED, created_at=5),
        sample_job(id="f1", state=JobState.COMPLETED, created_at=6),
        sample_job(id="f2", state=JobState.FAILED, created_at=7),
        sample_job(id="i", state=JobState.IDLE, message="waiting at its prompt", created_at=4),
        sample_job(id="r", state=JobState.RUNNING, created_at=2),
        sample_job(id="s", state=JobState.STARTING, created_at=3),
        asking,
    ]
    assert question(asking) == "Allow? [y/n]"
    assert question(jobs[3]) is None
    assert [job.id for job in ordered(jobs)] == ["a", "r", "i", "s", "q", "f2", "f1"]


# -- the screen, on a real home


@sync
async def test_empty_home_says_how_to_dispatch(d: ResponsiveDispatcher) -> None:
    app = Cockpit(d.home, CONFIG)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.query_one("#empty").display, "the empty state")
        assert "luzia dispatch" in rendered(app, "#empty")
        assert not app.query_one("#engine").display  # an engine runs for this home
        job_id = d.dispatch_task(printer("hello"), backend="local", workdir=d.home.parent)
        await until(pilot, lambda: listed(app) == [job_id], "the new job listed")
        assert not app.query_one("#empty").display


@sync
async def test_list_order_live_preview_and_removal(d: ResponsiveDispatcher, tmp_path: Path) -> None:
    done = d.dispatch_task("echo finished-output", backend="local", workdir=tmp_path)
    d.wait_for_job(done, timeout=WAIT)
    live = d.dispatch_task(printer("live-red"), backend="local", workdir=tmp_path)
    app = Cockpit(d.home, CONFIG)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(listed(app)) == 2, "two jobs")
        await until(
            pilot, lambda: app.jobs and d.get_status(live).state is JobState.RUNNING, "running"
        )
        await until(pilot, lambda: listed(app) == [live, done], "running, then final")
        app.query_one("#jobs", DataTable).move_cursor(row=0)
        # the selected (first) job's pane, colours kept
        await until(pilot, lambda: "live-red" in rendered(app, "#preview"), "the live pane")
        preview = app.preview_text
        red = [span for span in preview.spans if getattr(span.style, "color", None)]
        assert red and red[0].style.color.number == 1  # type: ignore[union-attr]
        assert preview.plain[red[0].start : red[0].end] == "live-red"
        # its output moves the preview on (an output event, not a timer)
        d.send_input(live, "second-line")
        await until(pilot, lambda: "got:second-line" in rendered(app, "#preview"), "new output")
        # a finished job shows its log's tail
        await pilot.press("down")
        await until(pilot, lambda: "finished-output" in rendered(app, "#preview"), "the log")
        assert "log (finished)" in rendered(app, "#preview-title")
        # removed while selected: said, and the selection moves on
        d.remove_job(done)
        await until(pilot, lambda: listed(app) == [live], "the removal shown")
        assert app.selected_id == live
        assert any("was removed" in str(n.message) for n in app._notifications)


@sync
async def test_question_highlighted_and_answered_with_y(
    d: ResponsiveDispatcher, agent_repo: Path
) -> None:
    job_id = d.dispatch_task(
        "ask: Allow edit to a.txt?\nedit a.txt: yes",
        workdir=agent_repo,
        backend="local",
        agent="fake",
        env=AGENT_ENV,
    )
    Events(d, job_id).until(waiting("Allow edit to a.txt?"), "the question")
    app = Cockpit(d.home, CONFIG)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.query_one("#question").display, "the question shown")
        assert "Allow edit to a.txt?" in rendered(app, "#question")
        table = app.query_one("#jobs", DataTable)
        assert "waiting" in str(table.get_cell(job_id, "state"))
        await until(pilot, lambda: "Allow edit" in rendered(app, "#preview"), "the pane")
        assert any("reverse" in str(span.style) for span in app.preview_text.spans)
        await pilot.press("y")
        await until(pilot, lambda: (agent_repo / "a.txt").exists(), "the answer taken")
        await until(pilot, lambda: not app.query_one("#question").display, "the question gone")


@sync
async def test_keys_send_kill_diff_log_help_filter(d: ResponsiveDispatcher, repo: Path) -> None:
    first = d.dispatch_task(printer("one"), backend="local", workdir=repo, project="alpha")
    second = d.dispatch_task(printer("two"), backend="local", workdir=repo, project="beta")
    # Both running before the cockpit opens: it selects the top row, and a running job sorts
    # above a starting one, so an earlier look could pick the older job.
    for job_id in (first, second):
        wait_state(d, job_id, JobState.RUNNING)
    app = Cockpit(d.home, CONFIG)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(listed(app)) == 2, "two jobs")
        await until(pilot, lambda: app.selected_id == second, "the newest selected")
        # s: a line typed into the pane
        await pilot.press("s")
        await pilot.press(*"hello", "enter")
        await until(pilot, lambda: "got:hello" in rendered(app, "#preview"), "the line arrived")
        # y or n on a job that asks nothing: said, nothing sent
        await pilot.press("n")
        await until(
            pilot,
            lambda: any("asks nothing" in str(n.message) for n in app._notifications),
            "refused",
        )
        app.clear_notifications()
        await pilot.press("y")
        await until(
            pilot,
            lambda: any("asks nothing" in str(n.message) for n in app._notifications),
            "refused",
        )
        # / filter, then Esc shows all again
        await pilot.press("slash", *"alpha", "enter")
        await until(pilot, lambda: listed(app) == [first], "filtered")
        await pilot.press("escape")
        await until(pilot, lambda: len(listed(app)) == 2, "the filter cleared")
        # l: the log; d: the diff; ?: help
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, Page), "the log page")
        assert "log of" in str(app.screen.query_one("#page-title", Static).render())
        await pilot.press("q")
        (repo / "README").write_text("changed by hand\n")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, Page), "the diff page")
        assert isinstance(app.screen, Page) and "changed by hand" in app.screen.body.code
        await pilot.press("escape")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, Page), "help")
        assert "C-b d" in str(app.screen.query_one("#page-body", Static).render())
        await pilot.press("q")
        # k asks first: n keeps the job, y kills it
        await pilot.press("up")
        await until(pilot, lambda: app.selected_id == second, "the second job selected")
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, Confirm), "the kill question")
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, Confirm), "dismissed")
        assert d.get_status(second).state is JobState.RUNNING
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, Confirm), "the kill question")
        await pilot.press("y")
        await until(pilot, lambda: d.get_status(second).state is JobState.KILLED, "killed")
        await until(
            pilot,
            lambda: "killed" in str(app.query_one("#jobs", DataTable).get_cell(second, "state")),
            "shown killed",
        )
        # Enter without a terminal (the harness): says how to attach instead
        await pilot.press("up")
        await until(pilot, lambda: app.selected_id == first, "the first job selected")
        await pilot.press("enter")
        await until(
            pilot,
            lambda: any(f"luzia attach {first}" in str(n.message) for n in app._notifications),
            "attach hint",
        )


@sync
async def test_commit_and_revert_ask_first(d: ResponsiveDispatcher, repo: Path) -> None:
    job_id = d.dispatch_task("echo new > made.txt", backend="local", workdir=repo)
    d.wait_for_job(job_id, timeout=WAIT)
    app = Cockpit(d.home, CONFIG)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: listed(app) == [job_id], "the job")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, Confirm), "the revert question")
        await pilot.press("escape")
        assert (repo / "made.txt").exists()
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, Confirm), "the revert question")
        await pilot.press("y")
        await until(pilot, lambda: not (repo / "made.txt").exists(), "reverted")
        # commit after a revert: nothing to commit, said as an error, no crash
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, Confirm), "the commit question")
        await pilot.press("y")
        await until(
            pilot,
            lambda: any(
                n.severity == "error" or "committed" in str(n.message) for n in app._notifications
            ),
            "an answer",
        )


@sync
async def test_commit_key(d: ResponsiveDispatcher, repo: Path) -> None:
    job_id = d.dispatch_task("echo new > made.txt", backend="local", workdir=repo)
    d.wait_for_job(job_id, timeout=WAIT)
    app = Cockpit(d.home, CONFIG)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: listed(app) == [job_id], "the job")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, Confirm), "the commit question")
        await pilot.press("y")
        await until(
            pilot,
            lambda: any("committed as" in str(n.message) for n in app._notifications),
            "committed",
        )


@sync
async def test_too_small_and_no_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUZIA_NO_AUTOSTART", "1")
    home = tmp_path / "home"
    d = ResponsiveDispatcher(home=home, config=CONFIG)
    try:
        job_id = d.dispatch_task("echo started-by-the-cockpit", backend="local", workdir=tmp_path)
        app = Cockpit(home, CONFIG)
        async with app.run_test(size=(40, 10)) as pilot:
            await until(pilot, lambda: "too small" in rendered(app, "#small"), "too small")
            assert app.screen.has_class("too-small")
            await pilot.resize_terminal(*SIZE)
            await until(pilot, lambda: not app.screen.has_class("too-small"), "big enough")
            await until(pilot, lambda: app.query_one("#engine").display, "no engine said")
            assert "Press e" in rendered(app, "#engine")
            await pilot.press("e")
            await until(pilot, lambda: d.get_status(job_id).state.is_final, "the engine ran it")
            await until(pilot, lambda: not app.query_one("#engine").display, "engine shown up")
    finally:
        from luzia.daemon import stop_engine

        stop_engine(home)
        d.clean(all=True)
        d.close()
