"""The controller interface both backends share: one shell pane in a tmux session.

Subclasses differ only in how the control-mode stream is opened (a local ``tmux -C``, or
the same behind ``docker exec -i``) and in what owning the server means (a socket to kill,
a container to remove). Everything a caller does with the pane lives here, once.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Self

from controllers.control_mode import (
    ControlModeClient,
    PaneStream,
    PendingCommand,
    join_command,
    quote,
)
from controllers.errors import CommandTimeout, ConnectionLost, ControllerError, InvalidInput
from controllers.events import EventLog, Listener, Output, PaneLost
from controllers.shell import SHELL_ARGV, SHELL_ENV, CommandResult, ShellTracker

SEND_CHUNK = 1024
"""Bytes per ``send-keys -H`` command: a ~3 KB line, well inside what tmux parses quickly."""

_KEY_NAME = re.compile(
    r"(?:[CMS]-)*"  # modifiers
    r"(?:[A-Za-z0-9][A-Za-z0-9_+-]*|[][\\^_@?/~!#$%&*(){}|;:'\",.<>=+`-])"
)
"""A tmux key: a name (``Enter``, ``F5``, ``BSpace``), or modifiers and one character (``C-\\``)."""
_TABS = re.compile("(\t+)")
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def session_argv(
    prefix: Sequence[str],
    session: str,
    *,
    width: int,
    height: int,
    cwd: str | None,
    env: Mapping[str, str],
    history_limit: int,
) -> list[str]:
    """``tmux -C`` argv that starts (or joins) ``session`` with our shell in its first pane.

    Options that must hold before the pane exists (``history-limit``) are set in the same
    invocation, ahead of ``new-session``. The commands are separated by ``;`` arguments
    and no other argument ends in ``;`` (see :func:`session_commands`).
    """
    argv = [*prefix, "-u", "-f", "/dev/null", "-C"]
    argv += ["set-option", "-g", "history-limit", str(history_limit), ";"]
    argv += ["set-option", "-g", "default-terminal", "tmux-256color", ";"]
    command = ["new-session", "-A", "-s", session, "-x", str(width), "-y", str(height)]
    if cwd:
        command += ["-c", cwd]
    for key, value in {**SHELL_ENV, **env}.items():
        command += ["-e", f"{key}={value}"]
    return [*argv, *(_argv_escape(arg) for arg in [*command, *SHELL_ARGV])]


def session_commands(argv: Sequence[str]) -> int:
    """How many tmux commands an argv made by :func:`session_argv` carries.

    tmux answers each with a block of its own; the control client waits for them all
    before it sends anything (see :class:`~controllers.ControlModeClient`).
    """
    return argv.count(";") + 1


def _argv_escape(arg: str) -> str:
    """``arg`` as tmux reads it back from its argv: a trailing ``;`` would end the command."""
    return arg[:-1] + "\\;" if arg.endswith(";") else arg


def typing_commands(target: str, text: str) -> list[str]:
    """Control-mode lines that type ``text`` into ``target`` byte for byte.

    ``send-keys -H`` takes each byte as a hex number, so nothing in the text is parsed by
    tmux (no key names, no ``;``); chunks keep each line short.
    """
    data = text.encode()
    if b"\0" in data:
        raise InvalidInput("text to type cannot hold a NUL byte (a terminal cannot send one)")
    return [
        f"send-keys -t {quote(target)} -H " + " ".join(f"{b:02x}" for b in data[i : i + SEND_CHUNK])
        for i in range(0, len(data), SEND_CHUNK)
    ]


def input_commands(target: str, text: str, buffer: str) -> list[str]:
    """Control-mode lines that deliver ``text`` to ``target`` as typed, tabs literally.

    Everything is typed byte for byte except runs of tabs, which are pasted: bracketed
    where the program asked for bracketed paste, so a line editor inserts them instead of
    completing, and plain (the same bytes as typing) where it did not.
    """
    if "\0" in text:
        raise InvalidInput("text to type cannot hold a NUL byte (a terminal cannot send one)")
    lines: list[str] = []
    for i, part in enumerate(_TABS.split(text)):
        if part:
            lines += (
                paste_commands(target, part, buffer) if i % 2 else typing_commands(target, part)
            )
    return lines


def ansi_c_quote(text: str) -> str:
    """``text`` as one bash ``$'...'`` word holding no control character itself."""
    return "$'" + "".join(_c_escape(ch) for ch in text) + "'"


def _c_escape(ch: str) -> str:
    if _CONTROL.fullmatch(ch):
        return f"\\x{ord(ch):02x}"
    return "\\" + ch if ch in "\\'" else ch


def paste_commands(target: str, text: str, buffer: str, bracketed: bool = True) -> list[str]:
    """Control-mode lines that load ``text`` into a paste buffer and paste it into ``target``.

    The buffer is filled in chunks (``set-buffer -a``), then pasted and deleted at once;
    ``bracketed`` wraps it in bracketed-paste sequences when the program asked for them.
    """
    if "\0" in text:
        raise InvalidInput("text to paste cannot hold a NUL byte")
    data = text.encode()
    step = SEND_CHUNK * 4
    chunks = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
    lines = [
        join_command(
            "set-buffer",
            *(["-a"] if i else []),
            "-b",
            buffer,
            "--",
            chunk.decode("utf-8", "surrogateescape"),
        )
        for i, chunk in enumerate(chunks)
    ]
    paste = ["paste-buffer", "-d", "-b", buffer, "-t", target, *(["-p"] if bracketed else [])]
    return [*lines, join_command(*paste)]


class TmuxController:
    """Drives one pane: type into it, read it, wait on it, run commands with exit codes.

    Build one with a subclass: :class:`~controllers.LocalTmuxController` or
    :class:`~controllers.DockerTmuxController`.
    """

    owned: bool
    """True when this controller created the server (or container) and ``close`` ends it."""

    tmux_binary = "tmux"
    """The tmux program where the server runs, for shell commands run there."""

    def __init__(
        self, client: ControlModeClient, session: str, *, owned: bool, joined: bool = False
    ) -> None:
        self.client = client
        self.session = session
        self.owned = owned
        self._ending: tuple[str, bool] | None = None
        try:
            info = client.command(
                "display-message",
                "-p",
                "-t",
                session,
                "#{window_id} #{pane_id} #{pane_current_command}",
            )
        except ConnectionLost as exc:
            raise self._lost(exc) from exc
        self.window_id, self.pane_id, current = [*info[0].split(" ", 2), "", ""][:3]
        self.stream: PaneStream = client.stream(self.pane_id)
        self.tracker = ShellTracker(self.stream.cond, self.pane_id)
        self._events = EventLog(self.stream.cond)
        self.stream.subscribe(self._on_output, replay=True)
        client.on_event(self._on_event)
        self._probe_prompt = joined and current == "bash"
        self._pipe: tuple[_PipeTally, Callable[[], None]] | None = None

    # -- events --

    def subscribe(self, listener: Listener, *, replay: bool = False) -> Callable[[], None]:
        """Call ``listener`` with this pane's events; returns a function that unsubscribes.

        Listeners run in the reader thread, one event at a time, in stream order: an
        :class:`~controllers.Output` chunk comes before the shell and title events found
        in it. The last event is one :class:`~controllers.PaneLost` (also when we detach
        or kill). ``replay`` first hands over the events since attaching (the latest, up to
        a megabyte of output).
        """
        return self._events.subscribe(listener, replay=replay)

    # -- input --

    def send_keys(self, text: str, enter: bool = True, delay_enter: float = 0.0) -> None:
        """Type ``text`` into the pane byte for byte, then (optionally) press Enter.

        Nothing in ``text`` is interpreted by tmux: ``;``, quotes, ``$()``, key names such
        as ``C-c`` are plain characters. Tabs arrive as text: they are pasted, bracketed
        where the program asked for it, so a shell inserts them instead of completing (to
        press the Tab key, ``send_key("Tab")``). ``delay_enter`` waits before a separate
        Enter, for TUIs that drop an Enter arriving with the text. Named keys:
        :meth:`send_key`.
        """
        self._pipeline(input_commands(self.pane_id, text, self._buffer()))
        if enter:
            if delay_enter > 0:
                time.sleep(delay_enter)
            self.send_key("Enter")

    def send_key(self, *keys: str) -> None:
        """Press named keys, in order: ``send_key("C-c")``, ``send_key("Escape", "Up")``."""
        for key in keys:
            if not _KEY_NAME.fullmatch(key):
                raise InvalidInput(f"not a tmux key name: {key!r} (type text with send_keys)")
        self.tmux("send-keys", "-t", self.pane_id, *keys)

    def paste(self, text: str, *, bracketed: bool = True) -> None:
        """Paste ``text`` as one block (bracketed when the program asked for it).

        Programs that understand bracketed paste take multi-line text as one input
        instead of running each line; nothing is pressed after it. Newlines arrive as
        carriage returns, as from a terminal's paste; every other byte as given.
        """
        self._pipeline(paste_commands(self.pane_id, text, self._buffer(), bracketed))

    def interrupt(self, wait: float = 0.0) -> None:
        """Send Ctrl-C to the pane's foreground program.

        With ``wait``, keep at it until our shell draws a new prompt: a Ctrl-C can be lost
        (it may land on a child that is already exiting, and a shell loop goes on), so it is
        sent again every half second; :class:`CommandTimeout` after ``wait`` seconds.
        """
        seen = self.tracker.prompts
        deadline = time.monotonic() + wait
        while True:
            self.send_key("C-c")
            if wait <= 0:
                return
            left = deadline - time.monotonic()
            with self.stream.cond:
                back = self.stream.cond.wait_for(
                    lambda: self.tracker.prompts > seen or self.stream.closed,
                    min(0.5, max(left, 0.01)),
                )
            self._check_alive()
            if back:
                return
            if time.monotonic() >= deadline:
                raise CommandTimeout(
                    f"pane {self.pane_id} did not return to the shell prompt within {wait:g} s "
                    "of Ctrl-C (does the program ignore it?)"
                )

    # -- output --

    def capture_pane(
        self,
        start: int | str | None = None,
        end: int | str | None = None,
        *,
        escapes: bool = False,
        join_wrapped: bool = False,
    ) -> str:
        """The pane's text: the visible screen, or lines ``start``..``end`` of history.

        Line numbers follow tmux: 0 is the first visible line, negative numbers reach
        into history, ``"-"`` means the very start (or end). ``escapes`` keeps colours
        and attributes; ``join_wrapped`` joins lines the terminal wrapped.
        """
        args = ["capture-pane", "-p", "-t", self.pane_id]
        if escapes:
            args.append("-e")
        if join_wrapped:
            args.append("-J")
        if start is not None:
            args += ["-S", str(start)]
        if end is not None:
            args += ["-E", str(end)]
        lines = self.tmux(*args)
        while lines and not lines[-1].strip():
            lines.pop()
        return "\n".join(lines)

    def pipe_output(self, path: str, *, size_now: int | None = None) -> None:
        """Append everything the pane prints from now on to ``path`` (where tmux runs).

        Independent of scrollback, so a job's log is complete however long it runs. The
        controller counts the bytes it hands over, so that :meth:`stop_pipe` can wait for
        the log to hold them all. ``size_now``: the file's size, when the caller can read it
        faster than tmux can (``run-shell``, a process or two).
        """
        self.stop_pipe()
        start = self.file_size(path) if size_now is None else size_now
        tally = _PipeTally(path, start)
        unsubscribe = self.stream.subscribe(tally.feed)
        command = join_command(
            "pipe-pane", "-O", "-t", self.pane_id, f"exec cat >> {shlex.quote(path)}"
        )
        try:
            # Under the stream's lock, so no output is fed before ``tally.sent`` is set: from
            # then on, output after the command's answer is exactly what tmux pipes.
            with self.stream.cond:
                tally.sent = self._send(command)
            self._wait(tally.sent)
        except ControllerError:
            unsubscribe()
            raise
        self._pipe = (tally, unsubscribe)

    @property
    def pipe_counted(self) -> bool:
        """Whether this controller started the pane's pipe, so :meth:`stop_pipe` can wait for
        the log to hold every byte (an adopted pane's pipe was counted by someone else)."""
        return self._pipe is not None

    def stop_pipe(self, timeout: float = 60.0, *, size_of: Callable[[], int] | None = None) -> None:
        """Stop :meth:`pipe_output`, once the log holds everything the pane printed so far.

        tmux discards what it has not yet written to the pipe when the pipe is closed, and
        its ``cat`` writes the log later still; under load both lag far behind the pane.
        So this waits until the log has grown by every byte piped (a pipe started by
        another controller is just closed). :class:`CommandTimeout` if ``cat`` falls
        behind for ``timeout`` seconds; the pipe is stopped either way. ``size_of`` reads the
        log's size where the caller sees it (a bind mount, this host), instead of through tmux.
        """
        pipe, self._pipe = self._pipe, None
        if pipe is None:
            self.tmux("pipe-pane", "-t", self.pane_id)
            return
        tally, unsubscribe = pipe
        unsubscribe()
        with self.stream.cond:
            want = tally.start + tally.piped
        size = self._wait_file_size(tally.path, want, timeout, size_of)
        self.tmux("pipe-pane", "-t", self.pane_id)
        if size < want:
            raise CommandTimeout(
                f"the log {tally.path} got {size - tally.start} of the {tally.piped} bytes "
                f"pane {self.pane_id} printed within {timeout:g} s; the rest is lost"
            )

    def file_size(self, path: str) -> int:
        """The size of ``path`` where tmux runs (0 if there is no such file).

        ``run-shell`` output does not reach a control client, so the shell command hands
        the number back through a pane option.
        """
        option = "@luzia_file_size"
        script = (
            f"{{ {shlex.quote(self.tmux_binary)} set-option -p -t {self.pane_id} {option} "
            f'"$(wc -c < {shlex.quote(path)} || echo 0)"; }} >/dev/null 2>&1'
        )
        self.tmux("set-option", "-p", "-u", "-t", self.pane_id, option)
        self.tmux("run-shell", script.replace("#", "##"))
        value = self.tmux("display-message", "-p", "-t", self.pane_id, f"#{{{option}}}")
        text = value[0].strip() if value else ""
        if not text.isdigit():
            raise ControllerError(
                f"could not read the size of {path} where tmux runs "
                f"(is {self.tmux_binary!r} on the server's PATH?)"
            )
        return int(text)

    def _wait_file_size(
        self, path: str, size: int, timeout: float, size_of: Callable[[], int] | None
    ) -> int:
        """Poll the size of ``path`` until it reaches ``size`` (a file sends no event)."""
        deadline = time.monotonic() + timeout
        pause = 0.001 if size_of else 0.005
        while True:
            now = size_of() if size_of else self.file_size(path)
            if now >= size or time.monotonic() > deadline:
                return now
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

    # -- waiting --

    def wait_for_prompt(
        self, pattern: str | re.Pattern[str], timeout: float = 30.0
    ) -> re.Match[str]:
        """Wait until ``pattern`` matches the visible screen; return the match.

        The screen is read again only when the pane printed something new.
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            seen = self.stream.position
            match = regex.search(self.capture_pane())
            if match:
                return match
            self._wait_for_output_after(seen, deadline, f"prompt {regex.pattern!r}", timeout)

    def wait_for_idle(self, idle_time: float = 2.0, timeout: float = 60.0) -> str:
        """Wait until the pane printed nothing and its screen did not change for ``idle_time``.

        Returns the screen. Wakes on output events, not on a fixed poll.
        """
        deadline = time.monotonic() + timeout
        screen = self.capture_pane(escapes=True)
        since = time.monotonic()
        while True:
            with self.stream.cond:
                quiet_from = max(self.stream.last_output_at, since)
                left = quiet_from + idle_time - time.monotonic()
                if left > 0:
                    if time.monotonic() + left > deadline:
                        self._check_alive()
                        raise CommandTimeout(
                            f"pane {self.pane_id} was not idle for "
                            f"{idle_time:g} s within {timeout:g} s"
                        )
                    self.stream.cond.wait(left)
                    self._check_alive()
                    continue
            now_screen = self.capture_pane(escapes=True)
            if _digest(now_screen) == _digest(screen):
                return self.capture_pane()
            screen, since = now_screen, time.monotonic()

    def wait_for_shell_prompt(self, timeout: float = 10.0) -> None:
        """Wait until our shell waits for input (its prompt marker, never program output)."""
        if self._probe_prompt:
            # Joined a session started earlier: its prompt went by before we listened.
            # An empty line at a bash prompt draws a fresh one.
            self._probe_prompt = False
            if not self.tracker.prompts and self.current_command() == "bash":
                self.tmux("send-keys", "-t", self.pane_id, "C-u", "Enter")
        with self.stream.cond:
            ok = self.stream.cond.wait_for(
                lambda: self.tracker.at_prompt or self.stream.closed, timeout
            )
        self._check_alive()
        if not ok:
            raise CommandTimeout(
                f"the shell in pane {self.pane_id} did not show its prompt "
                f"within {timeout:g} s (is a program still running?)"
            )

    def run(self, command: str, timeout: float = 60.0) -> CommandResult:
        """Run a shell command in the pane; return its output and exact exit code.

        The command line is pasted (bracketed: the shell inserts it as given, tabs too),
        then Enter is pressed. On timeout the command is interrupted (Ctrl-C), the pane is
        left at its prompt and :class:`CommandTimeout` is raised.
        """
        if not command.strip():
            raise InvalidInput("run() needs a command")
        if "\0" in command:
            raise InvalidInput("a command cannot hold a NUL byte")
        self.wait_for_shell_prompt(timeout)
        with self.stream.cond:
            seen = self.tracker.commands
            bracketed = self.tracker.bracketed_paste
        # One command line per run, holding no character the line editor would act on:
        # multi-line text (several commands), other control characters (tabs too, unless
        # pasted bracketed) and comment-only lines (no command, so no start marker) go
        # through eval.
        acted_on = command.replace("\t", " ") if bracketed else command
        wrap = _CONTROL.search(acted_on) or command.lstrip().startswith("#")
        line = f"eval {ansi_c_quote(command)}" if wrap else command
        enter = join_command("send-keys", "-t", self.pane_id, "Enter")
        if bracketed:
            self._pipeline([*paste_commands(self.pane_id, line, self._buffer()), enter])
        else:
            self._pipeline([*typing_commands(self.pane_id, line), enter])
        with self.stream.cond:
            done = self.stream.cond.wait_for(
                lambda: self.tracker.commands > seen or self.stream.closed, timeout
            )
            result = self.tracker.last
        self._check_alive()
        if not done or result is None:
            with contextlib.suppress(CommandTimeout):
                self.interrupt(wait=5.0)
            raise CommandTimeout(
                f"command did not finish within {timeout:g} s and was interrupted: {command[:80]!r}"
            )
        return result

    # -- lifecycle --

    def tmux(self, *args: str, timeout: float = 10.0) -> list[str]:
        """Run any tmux command on this controller's server; returns its output lines."""
        return self._wait(self._send(join_command(*args)), timeout)

    def current_command(self) -> str:
        """The name of the pane's foreground program (``bash`` at the prompt)."""
        return self.tmux("display-message", "-p", "-t", self.pane_id, "#{pane_current_command}")[0]

    def is_alive(self) -> bool:
        """True while the server answers and our pane still exists."""
        if self.client.closed.is_set() or self.stream.closed:
            return False
        try:
            return self.tmux(
                "display-message", "-p", "-t", self.pane_id, "#{pane_id}", timeout=2.0
            ) == [self.pane_id]
        except ControllerError:
            return False

    def detach(self) -> None:
        """Stop talking to tmux; the server, pane and programs go on running."""
        self._closing("detached by its controller", stream_only=True)
        self.client.close()

    def kill(self) -> None:
        """End the tmux server (and, in subclasses, what hosts it)."""
        raise NotImplementedError

    def close(self) -> None:
        """Kill what this controller created; only detach from what it adopted."""
        if self.owned:
            self.kill()
        else:
            self.detach()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --

    def _buffer(self) -> str:
        """A paste buffer name no other thread or pane uses at the same time."""
        return f"luzia-{self.pane_id[1:]}-{threading.get_ident()}"

    def _pipeline(self, lines: list[str]) -> None:
        """Send every line before waiting for any answer: one round trip, not one per line."""
        for pending in [self._send(line) for line in lines]:
            self._wait(pending)

    def _send(self, line: str) -> PendingCommand:
        try:
            return self.client.send(line)
        except ConnectionLost as exc:
            raise self._lost(exc) from exc

    def _wait(self, pending: PendingCommand, timeout: float = 10.0) -> list[str]:
        try:
            return self.client.wait(pending, timeout)
        except ConnectionLost as exc:
            raise self._lost(exc) from exc

    def _lost(self, exc: ControllerError) -> ControllerError:
        """The error to raise when the stream ended; subclasses say why (e.g. container gone)."""
        return exc

    def _check_alive(self) -> None:
        if self.stream.closed or self.client.closed.is_set():
            base = ConnectionLost(
                f"pane {self.pane_id} is gone ({self.client.exit_reason or 'its window closed'})"
            )
            raise self._lost(base)

    def _wait_for_output_after(self, seen: int, deadline: float, what: str, timeout: float) -> None:
        with self.stream.cond:
            left = deadline - time.monotonic()
            if left <= 0 or not self.stream.cond.wait_for(
                lambda: self.stream.position != seen or self.stream.closed, left
            ):
                self._check_alive()
                raise CommandTimeout(
                    f"{what} did not appear in pane {self.pane_id} within {timeout:g} s"
                )
        self._check_alive()

    def _on_output(self, data: bytes) -> None:
        """A chunk of the pane's output (reader thread, under the stream's lock)."""
        self._events.emit([Output(self.pane_id, data=data), *self.tracker.feed(data)])

    def _on_event(self, name: str, args: list[str]) -> None:
        if name in ("window-close", "unlinked-window-close") and args[:1] == [self.window_id]:
            self.stream.close()
            self._pane_lost("its window closed", stream_only=False)
        elif name == "exit":
            if self._ending is not None:
                self._pane_lost(*self._ending)
            else:
                self._report_end()

    def _report_end(self) -> None:
        """Send the :class:`PaneLost` for a stream that ended without us asking it to.

        ``%exit`` first means tmux ended (or let us go); without it only the client process
        died, and the pane may go on. Subclasses may look further, off the reader thread.
        """
        reason = self.client.exit_reason
        if self.client.exit_announced:
            self._pane_lost(f"tmux ended ({reason})", stream_only=False)
        else:
            self._pane_lost(f"the control client ended ({reason})", stream_only=True)

    def _pane_lost(self, cause: str, stream_only: bool) -> None:
        self._events.emit([PaneLost(self.pane_id, cause=cause, stream_only=stream_only)])

    def _closing(self, cause: str, stream_only: bool) -> None:
        """We end the stream ourselves (detach, kill): say so, not what tmux sees."""
        if self._ending is None:
            self._ending = (cause, stream_only)


class _PipeTally:
    """Counts the bytes ``pipe-pane`` hands to ``cat``: the pane's output after the answer
    to the ``pipe-pane`` command (tmux sends both in the order it handled them)."""

    def __init__(self, path: str, start: int) -> None:
        self.path = path
        self.start = start
        self.sent: PendingCommand | None = None
        self.piped = 0

    def feed(self, data: bytes) -> None:
        if self.sent is not None and self.sent.done.is_set():
            self.piped += len(data)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()
