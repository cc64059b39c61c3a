"""Turns of an interactive agent: wait for its prompt, hand it a task, see the turn end.

A turn has ended when the pane has been quiet for the profile's ``quiet`` seconds and the
bottom of the screen shows the agent's prompt (and not its ``busy`` pattern), or one of its
``questions`` (then a person is needed). Quiet is measured from the control stream's output
events, so the check costs one screen capture per quiet spell, not a poll every half second.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from collections.abc import Callable

from controllers.controller import TmuxController
from controllers.errors import ControllerError, InvalidInput, TmuxCommandError
from luzia.agents import AgentProfile
from luzia.until import QUESTION_PREFIX

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

Report = Callable[[str, str], None]


class Stopped(Exception):
    """The watcher was told to stop, or the pane went away."""


class TurnWatcher:
    """Drives one interactive agent in its own thread; reports ``(state, message)``.

    ``state`` is ``"running"`` (working on a turn) or ``"idle"`` (at its prompt, or asking
    a person). The job's end (the agent exits) is the engine's business, not this one's.
    ``resume`` (a job adopted after an engine restart) skips delivery: the task went in before.
    """

    def __init__(
        self,
        controller: TmuxController,
        profile: AgentProfile,
        task: str,
        report: Report,
        *,
        resume: bool = False,
    ) -> None:
        self.resume = resume
        self.controller = controller
        self.profile = profile
        self.task = task
        self.report = report
        self._stop = threading.Event()
        self._done = threading.Event()
        self._prompt = re.compile(profile.prompt) if profile.prompt else None
        self._busy = re.compile(profile.busy) if profile.busy else None
        self._questions = [re.compile(q) for q in profile.questions]
        self._inputs: collections.deque[tuple[str, bool]] = collections.deque()
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
        """Whether it still follows the agent's turns (not after no prompt came, or a stop)."""
        return not self._done.is_set()

    def submit(self, text: str, enter: bool = True) -> None:
        """Queue a follow-up; it is delivered when the agent's turn has ended."""
        with self.controller.stream.cond:
            self._inputs.append((text, enter))
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
                self.report("running", "working on the task")
            while True:
                message, seen = self._wait_turn_end()
                self.report("idle", message)
                if self._wait_output_or_input(after=seen):
                    text, enter = self._inputs.popleft()
                    try:
                        self._deliver(text, enter)
                    except (TmuxCommandError, InvalidInput) as exc:  # this input, not the pane
                        log.warning("pane %s: input refused: %s", self.controller.pane_id, exc)
                        continue
                    self.report("running", "working on a follow-up")
                else:
                    self.report("running", "working")
        except Stopped:
            return
        except ControllerError as exc:
            log.info("turn watcher for pane %s ends: %s", self.controller.pane_id, exc)
        except Exception:
            log.exception("turn watcher for pane %s failed", self.controller.pane_id)
            self.report("idle", "luzia stopped following this agent's turns (internal error)")

    def _wait_ready(self) -> None:
        """Wait for the agent's first prompt. A question it asks before (trust this folder?
        use this key?) is reported as waiting for a person and answered by what they send."""
        deadline = time.monotonic() + self.profile.start_timeout
        settled = False
        while True:
            seen = self.controller.stream.position
            tail = self._tail()
            if self._prompt is None or self._prompt.search(tail):
                return
            question = self._question(tail)
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
                self.report("idle", f"{QUESTION_PREFIX}{question}")
                self._wait_answer(after=answers)
                text, enter = self._inputs.pop()
                self._deliver(text, enter)
                self.report("running", "starting the agent")
                self._wait_changed(tail, ANSWER_REDRAW_TIMEOUT)
                deadline = time.monotonic() + self.profile.start_timeout
                continue
            if time.monotonic() > deadline:
                self.report(
                    "idle", f"the agent showed no prompt within {self.profile.start_timeout:g} s"
                )
                raise Stopped
            self._wait_output(after=seen, timeout=deadline - time.monotonic())

    def _question(self, tail: str) -> str | None:
        """The line of ``tail`` that holds one of the profile's questions, if any does."""
        for question in self._questions:
            if match := question.search(tail):
                line = next((ln for ln in tail.splitlines() if match.group(0) in ln), "")
                return (line or match.group(0)).strip()
        return None

    def _wait_answer(self, after: int) -> None:
        """Wait until a person has sent something (more than ``after`` inputs are queued)."""
        with self.controller.stream.cond:
            while len(self._inputs) <= after:
                self._check()
                self.controller.stream.cond.wait()

    def _wait_turn_end(self) -> tuple[str, int]:
        """Block until a turn has ended; return what a person should know about it.

        Also returns the stream position read before the screen that showed the end:
        output after it may not be on that screen, so waiting for the next turn starts there.
        """
        while True:
            self._wait_quiet(self.profile.quiet)
            seen = self.controller.stream.position
            tail = self._tail()
            if question := self._question(tail):
                return f"{QUESTION_PREFIX}{question}", seen
            busy = self._busy is not None and self._busy.search(tail)
            if not busy and (self._prompt is None or self._prompt.search(tail)):
                return "waiting at its prompt", seen
            self._wait_output(after=seen)

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
        while True:
            mark = self.controller.stream.position
            tail = self._tail()
            if (
                (self._busy is not None and self._busy.search(tail))
                or (self._prompt is not None and self._prompt.search(tail))
                or any(q.search(tail) for q in self._questions)
            ):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._wait_output(after=mark, timeout=left)

    def _tail(self) -> str:
        lines = [ln for ln in self.controller.capture_pane().splitlines() if ln.strip()]
        return "\n".join(lines[-TAIL_LINES:])

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
        deadline = time.monotonic() + timeout
        while True:
            seen = self.controller.stream.position
            left = deadline - time.monotonic()
            if left <= 0 or self._tail() != tail:
                return
            self._wait_output(after=seen, timeout=left)

    def _wait_output_or_input(self, after: int) -> bool:
        """Wait for new output (False) or a queued follow-up (True)."""
        stream = self.controller.stream
        with stream.cond:
            while stream.position == after and not self._inputs:
                self._check()
                stream.cond.wait()
            self._check()
            return bool(self._inputs)

    def _wait_output(self, after: int, timeout: float | None = None) -> None:
        stream = self.controller.stream
        deadline = None if timeout is None else time.monotonic() + timeout
        with stream.cond:
            while stream.position == after:
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
