"""The cockpit's screen: the job list, the selected job's live pane, and a key per action.

It reads through ``JobsFeed`` and ``PaneFeed`` (``luzia.cockpit.feeds``) and acts through the
``ResponsiveDispatcher`` like the CLI does, in worker threads, so a slow engine never freezes it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.syntax import Syntax
from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.message import Message
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from luzia.cockpit.feeds import JobsFeed, PaneFeed
from luzia.cockpit.model import COLOURS, COLUMNS, WAITING, counts, matches, ordered, question, row
from luzia.config import Config
from luzia.dispatcher import ResponsiveDispatcher
from luzia.jobs import Job

SETTLE = 0.08
"""Seconds the selection must rest on a job before its pane is joined."""

MIN_WIDTH, MIN_HEIGHT = 60, 12
"""Below this the list and the preview cannot both show: the cockpit says so instead."""

TRACE_VAR = "LUZIA_COCKPIT_TRACE"
"""A file the cockpit appends ``<unix time> <job id> <state>`` to as each job change reaches the
screen (benchmarks/bench_cockpit.py measures store -> screen with it)."""

EMPTY = (
    "No jobs in this home yet.\n\n"
    "Dispatch one from any terminal:\n\n"
    'luzia dispatch "make test"\n'
    'luzia dispatch --agent claude "fix the failing test"\n\n'
    "It shows up here at once."
)

HELP = """\
Keys
  ↑ ↓     choose a job (its pane shows below, live)
  Enter   attach: you are in the job's live pane; C-b d brings you back here
  s       send a line to the job (as `luzia send`)
  y / n   answer the agent's question with y or n
  k       kill the job (asks first)
  d       the job's diff: what it changed in its workspace
  l       the job's log
  c       commit the job's change (asks first)
  r       revert the job's change (asks first)
  /       filter by id, project, agent, state or task (Esc clears)
  e       start the engine, when none runs
  ?       this help
  q       quit (the jobs go on)

The list: waiting for a person first, then running, idle, starting, queued, finished;
newest first within each."""


class JobsChanged(Message):
    def __init__(self, jobs: list[Job]) -> None:
        super().__init__()
        self.jobs = jobs


class StoreFailed(Message):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error


class PaneChanged(Message):
    def __init__(self, job_id: str, screen: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.screen = screen


class Confirm(ModalScreen[bool]):
    """Asks before a destructive act: y or Enter on Yes goes ahead, n or Esc does not."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, prompt: str) -> None:
        super().__init__()
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.prompt, id="confirm-prompt")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class Ask(ModalScreen[str | None]):
    """One line of input: Enter gives it, Esc gives ``None``."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def __init__(self, prompt: str, value: str = "") -> None:
        super().__init__()
        self.prompt = prompt
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.prompt)
            yield Input(value=self.value, id="ask-input")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class Page(ModalScreen[None]):
    """A long text to read (diff, log, help); q or Esc closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("q,escape", "close", "close")]

    def __init__(self, title: str, body: Any) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(classes="page"):
            yield Label(Text(self.title_text, style="bold"), id="page-title")
            with VerticalScroll(id="page-scroll"):
                yield Static(self.body, id="page-body")
            yield Label("q / Esc: back", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)


class Cockpit(App[None]):
    """Every job of one home, live; Enter puts the person in a job's pane."""

    TITLE = "luzia cockpit"
    CSS = """
    Screen { layout: vertical; }
    #status { height: 1; background: $boost; padding: 0 1; }
    #engine { height: auto; background: $error 30%; padding: 0 1; display: none; }
    #jobs { height: 2fr; min-height: 4; }
    #empty { height: 2fr; content-align: center middle; text-align: center; display: none; }
    #question { height: auto; background: $warning 40%; color: $text; padding: 0 1;
                text-style: bold; display: none; }
    #preview-title { height: 1; background: $panel; padding: 0 1; }
    #preview-box { height: 3fr; }
    #small { display: none; content-align: center middle; text-align: center; height: 1fr; }
    Screen.too-small > * { display: none; }
    Screen.too-small > #small { display: block; }
    .dialog { width: 70; height: auto; border: thick $accent; background: $surface;
              padding: 1 2; }
    .buttons { height: auto; margin-top: 1; }
    .buttons Button { margin-right: 2; }
    Confirm, Ask, Page { align: center middle; }
    .page { width: 95%; height: 90%; border: thick $accent; background: $surface; }
    #page-title, .hint { height: 1; padding: 0 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "attach", "attach"),
        Binding("s", "send", "send"),
        Binding("y", "answer('y')", "yes", show=False),
        Binding("n", "answer('n')", "no", show=False),
        Binding("k", "kill", "kill"),
        Binding("d", "diff", "diff"),
        Binding("l", "log", "log"),
        Binding("c", "commit", "commit"),
        Binding("r", "revert", "revert"),
        Binding("slash", "filter", "filter"),
        Binding("escape", "clear_filter", "clear filter", show=False),
        Binding("e", "start_engine", "start engine", show=False),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(
        self,
        home: Path,
        config: Config | None = None,
        *,
        naive_poll: float | None = None,
    ) -> None:
        """``naive_poll``: instead of the feeds, re-read the store and re-capture the selected
        pane every that many seconds (the baseline ``bench_cockpit.py`` compares with)."""
        super().__init__()
        self.home = home
        self.dispatcher = ResponsiveDispatcher(home=home, config=config or Config())
        self.jobs: list[Job] = []
        self.shown: list[Job] = []
        self.filter_text = ""
        self.selected_id: str | None = None
        self.naive_poll = naive_poll
        self._rows: dict[str, tuple[str, ...]] = {}
        self._jobs_feed: JobsFeed | None = None
        self._pane_feed: PaneFeed | None = None
        self._pane_key: tuple[str, bool, bool] | None = None
        self._pane_timer: Timer | None = None
        self._shown_parts: dict[str, str | None] = {}
        self._trace = os.environ.get(TRACE_VAR)
        self.engine_running: bool | None = None
        self.preview_text = Text()
        """What the preview shows now (kept for tests and benchmarks)."""
        self.table: DataTable[Text | str] = DataTable(
            id="jobs", cursor_type="row", zebra_stripes=True
        )
        names = ("status", "engine", "empty", "question", "preview-title", "preview", "small")
        self.part = {name: Static(EMPTY if name == "empty" else "", id=name) for name in names}
        """The main screen's parts, held so a late message never looks them up on a dialog."""

    # -- layout

    def compose(self) -> ComposeResult:
        yield self.part["status"]
        yield self.part["engine"]
        yield self.table
        yield self.part["empty"]
        yield self.part["question"]
        yield self.part["preview-title"]
        with VerticalScroll(id="preview-box"):
            yield self.part["preview"]
        yield self.part["small"]
        yield Footer()

    def on_mount(self) -> None:
        table = self.table
        for name in COLUMNS:
            table.add_column(name, key=name)
        self._check_size()
        self._check_engine()
        self.set_interval(2.0, self._check_engine)
        self.set_interval(10.0, self._tick)  # ages move on with the clock (by the minute)
        if self.naive_poll is not None:
            self.set_interval(self.naive_poll, self._naive_refresh)
            self._naive_refresh()
        else:
            self._jobs_feed = JobsFeed(
                self.home,
                lambda jobs: self.post_message(JobsChanged(jobs)),
                lambda exc: self.post_message(StoreFailed(exc)),
            ).start()
        table.focus()

    def on_unmount(self) -> None:
        if self._pane_timer is not None:
            self._pane_timer.stop()
        if self._jobs_feed is not None:
            self._jobs_feed.close()
        if self._pane_feed is not None:
            self._pane_feed.close()
        self.dispatcher.close()

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size.width, event.size.height)

    def _check_size(self, width: int | None = None, height: int | None = None) -> None:
        if width is None or height is None:
            width, height = self.size
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.screen.set_class(small, "too-small")
        if small:
            self.part["small"].update(
                f"The terminal is too small for the cockpit ({width}x{height}); "
                f"make it at least {MIN_WIDTH}x{MIN_HEIGHT}."
            )

    def _check_engine(self) -> None:
        from luzia.daemon import engine_status

        running = engine_status(self.home).running
        if running == self.engine_running:
            return
        self.engine_running = running
        banner = self.part["engine"]
        banner.display = not running
        if not running:
            banner.update(
                f"No engine runs for {self.home}: queued jobs wait and nothing is watched. "
                "Press e to start it."
            )

    # -- the list

    @on(JobsChanged)
    def jobs_changed(self, message: JobsChanged) -> None:
        self._show_jobs(message.jobs)

    @on(StoreFailed)
    def store_failed(self, message: StoreFailed) -> None:
        self.part["status"].update(
            Text(f"cannot read the store: {message.error}", style="bold red")
        )

    def _show_jobs(self, jobs: list[Job]) -> None:
        before = {job.id: job for job in self.jobs}
        self.jobs = jobs
        self._render_list()
        if self._trace:
            changed = [job for job in jobs if before.get(job.id) != job]
            if changed:
                self.call_after_refresh(self._write_trace, changed)

    def _write_trace(self, changed: list[Job]) -> None:
        assert self._trace is not None
        now = time.time()
        with open(self._trace, "a") as trace:
            trace.writelines(f"{now:.6f} {job.id} {job.state}\n" for job in changed)

    def _tick(self) -> None:
        self._render_list()

    def _render_list(self) -> None:
        table = self.table
        self._take_cursor(table)
        shown = ordered(job for job in self.jobs if matches(job, self.filter_text))
        now = time.time()
        rows = {job.id: row(job, now) for job in shown}
        # Change the table in place: a job dispatched or ended touches its row and the order,
        # not a rebuild of every row (which costs tens of milliseconds at 100 jobs).
        for job_id in self._rows.keys() - rows.keys():
            table.remove_row(job_id)
        for job_id, cells in rows.items():
            before = self._rows.get(job_id)
            if before is None:
                table.add_row(
                    *(_cell(c, v) for c, v in zip(COLUMNS, cells, strict=True)), key=job_id
                )
                continue
            for column, old, new in zip(COLUMNS, before, cells, strict=True):
                if old != new:
                    table.update_cell(job_id, column, _cell(column, new))
        order = [job.id for job in shown]
        if [str(r.key.value) for r in table.ordered_rows] != order:
            rank = {job_id: index for index, job_id in enumerate(order)}
            table.sort("job", key=lambda job_id: rank[str(job_id)])
        self._rows = rows
        self.shown = shown
        self._restore_selection(shown, table)
        self._show_status()
        empty = not self.jobs
        if self.part["empty"].display != empty:
            self.part["empty"].display = empty
            table.display = not empty
        self._follow_selection()

    def _take_cursor(self, table: DataTable[Any]) -> None:
        """The job under the cursor is the one selected: only a person moves the cursor between
        two renders (each puts it back on the selected job), and the move's highlight message
        may not have arrived yet; without this a render would undo a key press."""
        if 0 <= table.cursor_row < table.row_count:
            key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
            if key is not None:
                self.selected_id = key

    def _restore_selection(self, shown: list[Job], table: DataTable[Any]) -> None:
        ids = [job.id for job in shown]
        if not ids:
            return
        if self.selected_id in ids:
            index = ids.index(self.selected_id)
        else:
            if self.selected_id is not None and all(j.id != self.selected_id for j in self.jobs):
                self.notify(f"job {self.selected_id} was removed", severity="warning")
            index = min(table.cursor_row, len(ids) - 1) if table.cursor_row >= 0 else 0
        if table.cursor_row != index:
            table.move_cursor(row=index, animate=False)
        self.selected_id = ids[index]

    def _show_status(self) -> None:
        text = Text()
        text.append("luzia cockpit ", style="bold")
        text.append(f"{self.home}  ")
        text.append(counts(self.jobs))
        if self.filter_text:
            text.append(f"   filter: {self.filter_text!r} ({len(self.shown)} shown)", style="bold")
        if self._shown_parts.get("status") != text.plain:
            self._shown_parts["status"] = text.plain
            self.part["status"].update(text, layout=False)

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on the list (the table takes the key before the app's binding sees it)."""
        self.action_attach()

    @on(DataTable.RowHighlighted)
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.selected_id = event.row_key.value
            self._follow_selection()

    def selected(self) -> Job | None:
        return next((job for job in self.shown if job.id == self.selected_id), None)

    # -- the preview

    def _follow_selection(self) -> None:
        """Show the selected job's question and point the pane feed at it (a new feed only when
        the job, or whether it has a pane, changed)."""
        job = self.selected()
        asked = question(job) if job is not None else None
        self._put(
            "question", None if asked is None else f"? {asked}   (y / n answers, s sends a line)"
        )
        if job is None:
            self._put("preview-title", "")
            self.part["preview"].update("")
            self._watch(None)
            return
        what = "log (finished)" if job.state.is_final else "pane (live)"
        self._put("preview-title", f"{job.id}  {what}  {job.task.split(chr(10))[0][:80]}")
        self._watch(job)

    def _put(self, name: str, text: str | None) -> None:
        """Show ``text`` in a one-line part (``None`` hides it), only when it changed: each
        update costs the screen a layout pass."""
        if self._shown_parts.get(name, "") == text:
            return
        self._shown_parts[name] = text
        part = self.part[name]
        part.display = text is not None
        if text is not None:
            part.update(Text(text), layout=False)

    def _watch(self, job: Job | None) -> None:
        key = None
        if job is not None:
            key = (job.id, bool(job.tmux_target or job.container_id), job.state.is_final)
        if key == self._pane_key:
            return
        self._pane_key = key
        if self._pane_feed is not None:
            self._pane_feed.close()
            self._pane_feed = None
        if self._pane_timer is not None:
            self._pane_timer.stop()
            self._pane_timer = None
        if job is not None and self.naive_poll is None:
            # a cursor run down the list joins no pane on the way: only where it rests
            self._pane_timer = self.set_timer(SETTLE, lambda: self._feed(job))

    def _feed(self, job: Job) -> None:
        self._pane_timer = None
        self._pane_feed = PaneFeed(
            job, lambda job_id, screen: self.post_message(PaneChanged(job_id, screen))
        ).start()

    @on(PaneChanged)
    def pane_changed(self, message: PaneChanged) -> None:
        if message.job_id != self.selected_id:
            return
        job = self.selected()
        text = Text.from_ansi(message.screen)
        asked = question(job) if job is not None else None
        if asked:
            text.highlight_words([asked.strip()[:80]], style="reverse bold")
        same_height = len(text.plain.splitlines()) == len(self.preview_text.plain.splitlines())
        self.preview_text = text
        self.part["preview"].update(text, layout=not same_height)

    # -- the naive baseline (benchmarks only)

    def _naive_refresh(self) -> None:
        self._show_jobs(self.dispatcher.list_jobs())
        job = self.selected()
        if job is None or job.state.is_final:
            return
        from luzia.cockpit.feeds import _pane_of

        controller = _pane_of(job)
        if controller is None:
            return
        try:
            screen = controller.capture_pane(escapes=True)
        finally:
            controller.detach()
        self.post_message(PaneChanged(job.id, screen))

    # -- keys

    def _job_or_say(self) -> Job | None:
        job = self.selected()
        if job is None:
            self.notify("no job selected", severity="warning")
        return job

    def action_attach(self) -> None:
        job = self._job_or_say()
        if job is None:
            return
        try:
            argv = self.dispatcher.attach_command(job.id)
        except Exception as exc:
            self.notify(str(exc), severity="error")
            return
        if self.is_web or self.is_headless:
            self.notify(f"attach needs a terminal: luzia attach {job.id}", title="attach")
            return
        # The job's tmux server is not the one this terminal may run in: tmux refuses to
        # attach from inside another unless $TMUX is unset (the person's prefix then reaches
        # the outer one first: C-b C-b d detaches from the job's).
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        with self.suspend():
            subprocess.run(argv, check=False, env=env)
        self.refresh()

    def action_send(self) -> None:
        job = self._job_or_say()
        if job is None:
            return

        def send(text: str | None) -> None:
            if text is not None:
                self._act(f"sent to {job.id}", lambda: self.dispatcher.send_input(job.id, text))

        self.push_screen(Ask(f"A line for job {job.id} (Enter sends it, Esc cancels):"), send)

    def action_answer(self, answer: str) -> None:
        job = self._job_or_say()
        if job is None:
            return
        if question(job) is None:
            self.notify(f"job {job.id} asks nothing; s sends a line", severity="warning")
            return
        self._act(
            f"answered {answer!r} to {job.id}", lambda: self.dispatcher.send_input(job.id, answer)
        )

    def action_kill(self) -> None:
        self._confirmed("kill", lambda job: f"killed {self.dispatcher.kill_job(job.id).id}")

    def action_commit(self) -> None:
        self._confirmed("commit", lambda job: f"committed as {self.dispatcher.commit_job(job.id)}")

    def action_revert(self) -> None:
        self._confirmed("revert", lambda job: f"reverted {self.dispatcher.revert_job(job.id).id}")

    def _confirmed(self, verb: str, act: Callable[[Job], str]) -> None:
        job = self._job_or_say()
        if job is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._act(None, lambda: act(job))

        task = " ".join(job.task.split())[:50]
        self.push_screen(Confirm(f"{verb.capitalize()} job {job.id} ({task})?"), answered)

    def action_diff(self) -> None:
        job = self._job_or_say()
        if job is not None:
            self._page(f"diff of {job.id}", lambda: _diff_body(self.dispatcher.diff_job(job.id)))

    def action_log(self) -> None:
        job = self._job_or_say()
        if job is not None:
            self._page(
                f"log of {job.id}",
                lambda: Text(
                    self.dispatcher.read_log(job.id, tail=2000, plain=True).decode(
                        "utf-8", "replace"
                    )
                    or "(the job printed nothing yet)"
                ),
            )

    def action_help(self) -> None:
        self.push_screen(Page("luzia cockpit: help", HELP))

    def action_filter(self) -> None:
        def chosen(text: str | None) -> None:
            if text is not None:
                self.filter_text = text.strip()
                self._render_list()

        self.push_screen(Ask("Show jobs matching (empty: all):", self.filter_text), chosen)

    def action_clear_filter(self) -> None:
        if self.filter_text:
            self.filter_text = ""
            self._render_list()

    def action_start_engine(self) -> None:
        if self.engine_running:
            self.notify("the engine runs already")
            return
        from luzia.daemon import start_engine

        self._act("engine started", lambda: start_engine(self.home), after=self._check_engine)

    # -- acting in a worker thread

    @work(thread=True, exclusive=False)
    def _act(
        self,
        done: str | None,
        act: Callable[[], object],
        after: Callable[[], None] | None = None,
    ) -> None:
        try:
            result = act()
        except Exception as exc:
            self.call_from_thread(self.notify, _one_line(exc), severity="error", timeout=8)
            return
        said = done if done is not None else str(result)
        self.call_from_thread(self.notify, said)
        if after is not None:
            self.call_from_thread(after)
        if self._jobs_feed is not None:
            self._jobs_feed.refresh()

    @work(thread=True, exclusive=False)
    def _page(self, title: str, body: Callable[[], Any]) -> None:
        try:
            content = body()
        except Exception as exc:
            self.call_from_thread(self.notify, _one_line(exc), severity="error", timeout=8)
            return
        self.call_from_thread(self.push_screen, Page(title, content))


def _cell(column: str, value: str) -> Text | str:
    if column == "state":
        return Text(value, style=COLOURS.get(value, ""))
    return value


def _diff_body(diff: str) -> Any:
    if not diff.strip():
        return Text("(no changes)")
    return Syntax(diff, "diff", theme="ansi_dark", word_wrap=True)


def _one_line(exc: Exception) -> str:
    from luzia.cli.app import error_message

    return error_message(exc)


__all__ = ["WAITING", "Cockpit"]
