"""Turns of an interactive agent: wait for its prompt, hand it a task, follow its state.

Three states a person can act on: ``running`` (working on a turn), ``idle`` (the turn is over,
at its prompt) and ``waiting`` (it asks a person something). The agent's own signals decide
where it has them (its hooks, through :mod:`luzia.signals`); the screen is the fallback and the
check: a question is matched anywhere on the screen as soon as it is drawn, without waiting for
silence, and holds while it stays (a blinking glyph does not flip it); a turn ends by the
screen after ``quiet`` seconds of silence with the prompt shown and no busy sign (an API error
ends a turn without the hook); an idle agent starts a turn only on a busy sign (a spinner, its
title), not on redraws (hints erased, a cursor blinking). The screen is captured only after
output, at most every ``LOOK_INTERVAL``: no poll.
"""

from __future__ import annotations

import collections
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from controllers.controller import TmuxController
from controllers.errors import ControllerError, InvalidInput, TmuxCommandError
from luzia.agents import AgentProfile, agent_kind
from luzia.agents.kind import AgentState

log = logging.getLogger("luzia.turns")

TAIL_LINES = 6
"""Lines at the bottom of the screen where prompts and questions are looked for; what has
scrolled higher is history (an old question already answered)."""

ENTER_RETRIES = 2
"""Extra Enters sent when the agent shows no reaction to the first (TUIs may drop one)."""

KEYS_REACTION_TIMEOUT = 30.0
"""Longest wait for any output after keys typed without Enter (a key may be ignored)."""

ANSWER_REDRAW_TIMEOUT = 2.0
"""Longest wait for the bottom of the screen to change after a start-up question's answer;
still the same then, the answer was not taken and the question is reported again."""

QUESTION_SETTLE = 0.7
"""Quiet that shows a start-up question is drawn for good before it is reported: Claude Code
redraws its trust dialog ~0.6 s after first drawing it, and the redraw resets an answer given
sooner. Short of a second, so a person hears of the question within one."""

ENTER_QUIET_LIMIT = 2.0
"""Longest wait for a quiet screen before an Enter: an animation (Codex's welcome screen) never
stops printing, and the Enter must go in all the same."""

LOOK_INTERVAL = 0.08
"""Shortest time between two screen captures while the agent prints: a question is seen within
this of being drawn, and a streaming agent costs a dozen captures a second."""

TAKE_GRACE = 10.0
"""For an agent with hooks: how long after input the screen alone may end a turn before the
agent showed it took the input (a busy sign, or its own signal); under load Claude Code shows
neither for over a second after the Enter, and its prompt is on the screen all the while."""

QUESTION_DRAW_TIMEOUT = 5.0
"""Longest wait for a question the agent announced (its hook) to be drawn before an answer
is typed; a dialog that never shows (a profile without its pattern) gets the answer then."""

QUESTION_GONE = 0.5
"""How long a question must stay off the screen before it counts as answered: redraws (Claude
Code's blinking tool glyph, Codex's title) hide it for a moment."""

RUNNING, IDLE, WAITING = "running", "idle", "waiting"
USAGE = "usage"
"""Reported after the ``idle`` it belongs to, when the agent wrote it down only then."""

Report = Callable[[str, str, dict[str, float]], None]
"""``(state, message, usage)``: usage is the turn's, given with the ``idle`` that ends it."""


@dataclass(frozen=True)
class Screen:
    """What one look at the pane found."""

    question: str | None
    busy: bool
    prompt: bool
    quiet: bool
    text: str


class Stopped(Exception):
    """The watcher was told to stop, or the pane went away."""


class TurnWatcher:
    """Drives one interactive agent in its own thread; reports ``(state, message, usage)``
    when its state changes. The job's end (the agent exits) is the engine's business.
    ``resume`` (a job adopted after an engine restart) skips delivery: the task went in before;
    the job's recorded state and message are where it goes on from (not told again).
    """

    def __init__(
        self,
        controller: TmuxController,
        profile: AgentProfile,
        task: str,
        report: Report,
        *,
        resume: bool = False,
        recorded: tuple[str, str] = ("running", "working"),
    ) -> None:
        self.resume = resume
        self._recorded = recorded if recorded[0] in (RUNNING, IDLE, WAITING) else (RUNNING, "")
        self.controller = controller
        self.profile = profile
        self.task = task
        self.report = report
        self._stop = threading.Event()
        self._done = threading.Event()
        self._prompt = re.compile(profile.prompt) if profile.prompt else None
        self._busy = re.compile(profile.busy) if profile.busy else None
        self._questions = [re.compile(q) for q in profile.questions]
        self._busy_title = re.compile(profile.busy_title) if profile.busy_title else None
        self._question_title = (
            re.compile(profile.question_title) if profile.question_title else None
        )
        self._kind = agent_kind(profile)
        self._inputs: collections.deque[tuple[str, bool]] = collections.deque()
        self._signals: collections.deque[AgentState] = collections.deque()
        self._state = ""
        self._message = ""
        self._from_screen = True
        self._question_gone_at: float | None = None
        self._busy_cleared = True
        self._idle_at_prompt: AgentState | None = None
        self._hooks = self._kind is not None and bool(self._kind.signal_args())
        self._took_input = True
        self._delivered_at = 0.0
        self._looked_at = -1
        self._last_look = 0.0
        tracker = controller.tracker
        # The agent has exited once the shell finished a command after this point (or, for an
        # adopted job whose start marker went by before we listened, showed a new prompt).
        self._commands_before = tracker.commands
        self._prompts_before = tracker.prompts
        self._thread = threading.Thread(target=self._run, name="luzia-turns", daemon=True)

    def start(self) -> TurnWatcher:
        self._thread.start()
        return self

    @property
    def following(self) -> bool:
        """Whether it still follows the agent's turns (not after a stop, or the pane's end)."""
        return not self._done.is_set()

    def submit(self, text: str, enter: bool = True) -> None:
        """Queue a follow-up; it is delivered when the agent's turn has ended."""
        with self.controller.stream.cond:
            self._inputs.append((text, enter))
            self.controller.stream.cond.notify_all()

    def signal(self, state: AgentState) -> None:
        """The agent's own word on its state (from its hooks); applied in order."""
        with self.controller.stream.cond:
            self._signals.append(state)
            self.controller.stream.cond.notify_all()

    def stop(self) -> None:
        self._stop.set()
        with self.controller.stream.cond:
            self.controller.stream.cond.notify_all()

    def _run(self) -> None:
        try:
            self._follow()
        finally:
            self._done.set()

    def _follow(self) -> None:
        try:
            if not self.resume:
                self._wait_ready()
                self._deliver(self.task, enter=True)
                self._delivered()
                self._set(RUNNING, "working on the task", note=True)
            else:
                self._set(*self._recorded, record=False)
            while True:
                self._step()
        except Stopped:
            return
        except ControllerError as exc:
            log.info("turn watcher for pane %s ends: %s", self.controller.pane_id, exc)
        except Exception:
            log.exception("turn watcher for pane %s failed", self.controller.pane_id)
            self.report(IDLE, "luzia stopped following this agent's turns (internal error)", {})

    # -- the state machine --

    def _set(
        self,
        state: str,
        message: str,
        usage: Mapping[str, float] | None = None,
        *,
        note: bool = False,
        record: bool = True,
    ) -> None:
        """Enter ``state``; tell the engine when it changed, when a question's text did, or
        when ``note`` asks to record the new message anyway."""
        changed = state != self._state or (message != self._message and (note or state == WAITING))
        if state != self._state:
            self._busy_cleared = True
            self._question_gone_at = None
            self._idle_at_prompt = None
        self._state, self._message = state, message
        if record and (changed or usage):
            self.report(state, message, dict(usage or {}))

    def _step(self) -> None:
        """Wait for the next thing that can change the state, and apply it: the agent's own
        signals first, then queued input (taken when the agent is not working), then what
        the screen shows."""
        stream = self.controller.stream
        signal = None
        with stream.cond:
            while True:
                self._check()
                if self._signals:
                    signal = self._signals.popleft()
                    break
                if self._inputs and self._state != RUNNING:
                    break
                now = time.monotonic()
                due = self._look_due()
                if due <= now:
                    break
                stream.cond.wait(None if due == math.inf else due - now)
        if signal is not None:
            self._on_signal(signal)
        elif self._inputs and self._state != RUNNING:
            text, enter = self._inputs.popleft()
            if self._state == WAITING and not self._from_screen:
                self._wait_question_drawn()  # the hook may tell before the dialog is drawn
            asked = _tail(self.controller.capture_pane()) if self._state == WAITING else None
            try:
                self._deliver(text, enter)
            except (TmuxCommandError, InvalidInput) as exc:  # this input, not the pane
                log.warning("pane %s: input refused: %s", self.controller.pane_id, exc)
                return
            self._delivered()
            if asked is not None:  # the question stays drawn a moment after its answer
                self._wait_changed(asked, ANSWER_REDRAW_TIMEOUT)
            message = "working on a follow-up" if self._state == IDLE else "working on the answer"
            self._set(RUNNING, message, note=True)
        else:
            self._on_screen(self._look())

    def _wait_question_drawn(self) -> None:
        """Wait until a question shows on the screen (``QUESTION_DRAW_TIMEOUT`` at most): an
        answer typed before its dialog is drawn goes nowhere."""
        self._wait_screen(lambda: self._look().question is not None, QUESTION_DRAW_TIMEOUT)

    def _delivered(self) -> None:
        self._took_input = False
        self._delivered_at = time.monotonic()

    def _look_due(self) -> float:
        """When the screen should next be looked at: soon after new output (at most every
        ``LOOK_INTERVAL``), when a quiet spell would end a turn, when a question gone from the
        screen has been gone long enough; ``inf`` while nothing can change. A moment already
        looked at after is not due again."""
        stream = self.controller.stream
        due = math.inf
        if stream.position != self._looked_at:
            due = self._last_look + LOOK_INTERVAL
        moments = []
        if self._state in (RUNNING, WAITING):
            # Quiet since the last output, or since the last input (which may print nothing).
            moments.append(max(stream.last_output_at, self._delivered_at) + self.profile.quiet)
        if self._state == RUNNING and not self._may_end_by_screen():
            moments.append(self._delivered_at + TAKE_GRACE)
        if self._state == WAITING and self._question_gone_at is not None:
            moments.append(self._question_gone_at + QUESTION_GONE)
        for moment in moments:
            if moment > self._last_look:
                due = min(due, moment)
        return due

    def _look(self) -> Screen:
        stream = self.controller.stream
        self._looked_at = stream.position
        self._last_look = time.monotonic()
        since = max(stream.last_output_at, self._delivered_at)
        quiet = self._last_look - since >= self.profile.quiet
        text = self.controller.capture_pane()
        title = self.controller.tracker.title or ""
        tail = _tail(text)
        question = self._question(text)
        if question is None and self._question_title and self._question_title.search(title):
            question = title.strip()
        busy = bool(
            (self._busy is not None and self._busy.search(tail))
            or (self._busy_title is not None and self._busy_title.search(title))
        )
        prompt = self._prompt is None or bool(self._prompt.search(tail))
        return Screen(question, busy, prompt, quiet, text)

    def _on_screen(self, screen: Screen) -> None:
        if screen.question is not None:
            self._question_gone_at = None
            if self._state != WAITING or self._from_screen:
                self._from_screen = True
                self._set(WAITING, screen.question)
            return
        at_rest = screen.quiet and screen.prompt and not screen.busy
        if self._state == WAITING:
            # Redraws hide a question for a moment: gone means gone for QUESTION_GONE.
            now = time.monotonic()
            if self._question_gone_at is None:
                self._question_gone_at = now
            elif now - self._question_gone_at >= QUESTION_GONE:
                if at_rest:
                    self._turn_over(screen, "waiting at its prompt")
                elif self._from_screen:  # the agent's own word, if it gave one, holds
                    self._set(RUNNING, "working: the question was answered")
        elif self._state == RUNNING:
            self._took_input = self._took_input or screen.busy
            pending = self._idle_at_prompt
            if pending is not None and screen.prompt and not screen.busy:
                self._turn_over(screen, pending.message, pending.usage)
            elif at_rest and self._may_end_by_screen():
                self._turn_over(screen, "waiting at its prompt")
        elif self._busy is None and self._busy_title is None:
            self._set(RUNNING, "working")  # no sign of work known: any output is work
        elif screen.busy and self._busy_cleared:
            self._set(RUNNING, "working")
        elif not screen.busy:
            self._busy_cleared = True

    def _may_end_by_screen(self) -> bool:
        """Whether the screen alone may end this turn: always for an agent without hooks;
        with hooks, once it showed it took the input, or after ``TAKE_GRACE``."""
        return (
            not self._hooks
            or self._took_input
            or time.monotonic() - self._delivered_at >= TAKE_GRACE
        )

    def _turn_over(
        self, screen: Screen, message: str, usage: Mapping[str, float] | None = None
    ) -> None:
        """The turn has ended: idle, with its usage (the agent's, else read off the screen);
        a busy sign still on the screen belongs to the turn that ended."""
        if not usage and self._kind is not None:
            usage = self._kind.turn_usage(screen.text)
        self._set(IDLE, message, usage)
        self._busy_cleared = not screen.busy

    def _on_signal(self, signal: AgentState) -> None:
        """The agent's own word on its state; only a question still on the screen turns its
        turn end into waiting (an agent may end a turn by asking)."""
        if signal.state == WAITING:
            if self._state == WAITING and not self._from_screen:
                return  # asked already in the agent's own words (a reminder repeats it)
            self._from_screen = False
            self._set(WAITING, signal.message)
        elif signal.state == RUNNING:
            self._took_input = True
            if self._state != RUNNING:
                self._set(RUNNING, signal.message)
        elif signal.state == IDLE:
            screen = self._look()
            if screen.question is not None:
                self._from_screen = True
                self._set(WAITING, screen.question, signal.usage)
            elif signal.at_prompt and not (screen.prompt and not screen.busy):
                self._idle_at_prompt = signal  # the next screen with the prompt ends the turn
                return
            elif self._state == IDLE:  # the screen ended it first: the agent's words are better
                self._set(IDLE, signal.message, signal.usage, note=True)
            else:
                self._turn_over(screen, signal.message, signal.usage)
            if signal.usage_later is not None and (usage := signal.usage_later()):
                self.report(USAGE, "", usage)

    def _wait_ready(self) -> None:
        """Wait for the agent's first prompt. A question it asks before (trust this folder?
        use this key?) is reported as waiting for a person and answered by what they send.
        No prompt within ``start_timeout``: said, and what a person sends goes into the pane
        as it is, while the prompt is still looked for (a slow start gets its task after all)."""
        deadline = time.monotonic() + self.profile.start_timeout
        settled = False
        late = False
        while True:
            seen = self.controller.stream.position
            screen = self.controller.capture_pane()
            tail = _tail(screen)
            if self._prompt is None or self._prompt.search(tail):
                return
            question = self._question(screen)
            if question and not settled:
                # A dialog still drawing may reset an early answer (Claude Code redraws its
                # trust dialog); an animation above it (Codex) never lets the pane go quiet.
                settle = min(self.profile.quiet, QUESTION_SETTLE)
                self._wait_quiet(settle, limit=ENTER_QUIET_LIMIT)
                settled = True
                continue
            if question:
                settled = False
                answers = len(self._inputs)
                self._set(WAITING, question)
                self._wait_answer(after=answers)
                text, enter = self._inputs.pop()
                self._deliver(text, enter)
                self._set(RUNNING, "starting the agent")
                self._wait_changed(tail, ANSWER_REDRAW_TIMEOUT)
                deadline = time.monotonic() + self.profile.start_timeout
                continue
            if not late and time.monotonic() > deadline:
                waited = f"{self.profile.start_timeout:g} s"
                self._set(IDLE, f"the agent showed no prompt within {waited}")
                late = True
            if late and self._inputs:  # typed as it is: nothing on the screen to check it by
                type_into(self.controller, *self._inputs.popleft())
                continue
            self._wait_output(seen, None if late else deadline - time.monotonic(), or_input=True)

    def _question(self, screen: str) -> str | None:
        """The line of ``screen`` that holds one of the profile's questions, if any does:
        anywhere on it (a pattern anchors itself if it must be last)."""
        for question in self._questions:
            if match := question.search(screen):
                line = next((ln for ln in screen.splitlines() if match.group(0) in ln), "")
                return (line or match.group(0)).strip()
        return None

    def _wait_answer(self, after: int) -> None:
        """Wait until a person has sent something (more than ``after`` inputs are queued)."""
        with self.controller.stream.cond:
            while len(self._inputs) <= after:
                self._check()
                self.controller.stream.cond.wait()

    def _deliver(self, text: str, enter: bool) -> None:
        """Paste ``text``, then press Enter separately until the agent visibly takes it.

        Ink-based TUIs drop an Enter that arrives with the text, so each Enter waits until
        the pane has been quiet for ``delay_enter`` (the paste's echo is over). Output alone
        does not prove the Enter took (a slow echo looks the same): the agent must show it
        started (busy), asked something, or finished (its empty prompt is back).
        Without ``enter`` the text is typed as keys, e.g. the answer to a y/n question.
        """
        if not enter:
            # Until the agent reacts to the keys, its screen still shows what they answer:
            # judging the turn's end before that would report the same question again.
            seen = self.controller.stream.position
            self.controller.send_keys(text, enter=False)
            self._wait_output(after=seen, timeout=KEYS_REACTION_TIMEOUT)
            return
        if text:
            self.controller.paste(text)
        for _ in range(1 + ENTER_RETRIES):
            self._wait_quiet(
                max(self.profile.delay_enter, 0.05), from_now=True, limit=ENTER_QUIET_LIMIT
            )
            seen = self.controller.stream.position
            self.controller.send_key("Enter")
            if self._turn_started(seen, max(2.0, 4 * self.profile.delay_enter)):
                return

    def _turn_started(self, seen: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        self._wait_output(after=seen, timeout=timeout)
        if self.controller.stream.position == seen:
            return False
        if self._busy is None and self._prompt is None:
            return True

        def reacted() -> bool:
            screen = self.controller.capture_pane()
            tail = _tail(screen)
            return bool(
                (self._busy is not None and self._busy.search(tail))
                or (self._prompt is not None and self._prompt.search(tail))
                or self._question(screen) is not None
            )

        return self._wait_screen(reacted, deadline - time.monotonic())

    def _wait_quiet(
        self, seconds: float, *, from_now: bool = False, limit: float | None = None
    ) -> None:
        """Wait until the pane printed nothing for ``seconds`` (counted from the last output,
        or from now when ``from_now``, so that a delay is always honoured), or ``limit``
        seconds at most."""
        stream = self.controller.stream
        now = time.monotonic()
        start = now if from_now else 0.0
        give_up = None if limit is None else now + limit
        with stream.cond:
            while True:
                self._check()
                now = time.monotonic()
                left = max(stream.last_output_at, start) + seconds - now
                if give_up is not None:
                    left = min(left, give_up - now)
                if left <= 0:
                    return
                stream.cond.wait(left)

    def _wait_changed(self, tail: str, timeout: float) -> None:
        """Wait until the bottom of the screen is no longer ``tail`` (``timeout`` at most).
        Output alone does not show that an answer was taken: an animation above the question
        prints on while the question is still drawn."""
        self._wait_screen(lambda: _tail(self.controller.capture_pane()) != tail, timeout)

    def _wait_screen(self, test: Callable[[], bool], timeout: float) -> bool:
        """Look again after each output until ``test()`` holds (True) or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.controller.stream.position
            if test():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._wait_output(after=seen, timeout=left)

    def _wait_output(
        self, after: int, timeout: float | None = None, *, or_input: bool = False
    ) -> None:
        """Wait for output after ``after`` (or, with ``or_input``, a queued input), or
        ``timeout`` seconds."""
        stream = self.controller.stream
        deadline = None if timeout is None else time.monotonic() + timeout
        with stream.cond:
            while stream.position == after and not (or_input and self._inputs):
                self._check()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return
                stream.cond.wait(left)
            self._check()

    def _check(self) -> None:
        if self._stop.is_set() or self.controller.stream.closed:
            raise Stopped
        if self._agent_exited():
            raise Stopped

    def _agent_exited(self) -> bool:
        tracker = self.controller.tracker
        if self.resume:
            return tracker.prompts > self._prompts_before
        return tracker.commands > self._commands_before


def type_into(controller: TmuxController, text: str, enter: bool) -> None:
    """Type ``text`` as it is (and Enter), for a pane whose screen cannot confirm it."""
    if text:
        controller.send_keys(text, enter=enter)
    elif enter:
        controller.send_key("Enter")


def _tail(screen: str) -> str:
    """The bottom ``TAIL_LINES`` non-blank lines of a screen."""
    lines = [ln for ln in screen.splitlines() if ln.strip()]
    return "\n".join(lines[-TAIL_LINES:])
