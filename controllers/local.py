"""A shell pane on the host's tmux, on a socket of its own."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from controllers.control_mode import ControlModeClient
from controllers.controller import TmuxController, session_argv, session_commands
from controllers.errors import ControllerError, TmuxNotFound


class LocalTmuxController(TmuxController):
    """Drives a pane of a tmux server on this host.

    The server always has its own socket (a fresh temporary one by default), so a
    person's own tmux server is never touched. Given an existing socket, the controller
    joins the session there instead of starting one, and ``close`` only detaches.

    >>> with LocalTmuxController() as tmux:
    ...     tmux.run("echo hi; exit 3")  # doctest: +SKIP
    CommandResult(output='hi\\n', exit_code=3)
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        session: str = "luzia",
        width: int = 200,
        height: int = 50,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        history_limit: int = 50_000,
        tmux: str = "tmux",
    ) -> None:
        binary = shutil.which(tmux)
        if binary is None:
            raise TmuxNotFound(f"{tmux!r} is not installed or not on PATH (apt-get install tmux)")
        self._tmpdir: str | None = None
        if socket_path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="luzia-tmux-")
            socket_path = Path(self._tmpdir) / "tmux.sock"
        self.tmux_binary = binary
        self.socket_path = Path(socket_path)
        joined = self.socket_path.exists()
        self._prefix = [binary, "-S", str(self.socket_path)]
        process_env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        session_env = dict(env or {})
        if "PATH" in session_env:  # tmux gives a new session the client's PATH, not ``-e``'s
            process_env["PATH"] = session_env.pop("PATH")
        argv = session_argv(
            self._prefix,
            session,
            width=width,
            height=height,
            cwd=str(cwd) if cwd else None,
            env=session_env,
            history_limit=history_limit,
        )
        client = ControlModeClient(argv, env=process_env, startup_commands=session_commands(argv))
        try:
            super().__init__(client, session, owned=not joined, joined=joined)
        except ControllerError:
            client.close()
            self._remove_tmpdir()
            raise

    def kill(self) -> None:
        """End the tmux server and every program in it."""
        self._closing("its tmux server was killed by its controller", stream_only=False)
        if not self.client.closed.is_set():
            with contextlib.suppress(ControllerError):
                self.client.send("kill-server")
        elif self.socket_path.exists():  # our stream died, not necessarily the server
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    [*self._prefix, "kill-server"], capture_output=True, timeout=10, check=False
                )
        self.detach()
        self._remove_tmpdir()

    def _remove_tmpdir(self) -> None:
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
