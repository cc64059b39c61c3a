"""One exception hierarchy for the controller layer, under the root of all of luzia's errors.

Every failure a caller can act on has its own class, and its message names the fix.
Backend errors (subprocess, Docker SDK) are translated into these at the boundary,
with ``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations


class LuziaError(Exception):
    """Base of every error raised by ``luzia`` and its ``controllers``: catch this one.

    Defined here, not in ``luzia.errors`` (which re-exports it), because ``controllers`` never
    imports ``luzia``. ``exit_code`` is what the ``luzia`` command exits with when the error
    reaches it (click's habit: usage errors exit 2, the rest 1).
    """

    exit_code: int = 1


class ControllerError(LuziaError):
    """Base of every error raised by ``controllers``; the ``luzia`` command exits 1 on these."""


class InvalidInput(ControllerError, ValueError):
    """An argument that can never work (e.g. text holding a NUL byte); nothing was sent."""


class TmuxNotFound(ControllerError):
    """The tmux binary is missing where the controller needs it."""


class TmuxCommandError(ControllerError):
    """tmux answered a command with ``%error``."""

    def __init__(self, command: str, message: str) -> None:
        super().__init__(f"tmux refused {command.split(' ', 1)[0]!r}: {message}")
        self.command = command
        self.tmux_message = message


class ConnectionLost(ControllerError):
    """The tmux server, its container or the control stream went away under us."""


class CommandTimeout(ControllerError, TimeoutError):
    """A wait ran out of time; the pane is left usable."""


class DockerUnavailable(ControllerError):
    """The Docker Engine cannot be reached."""


class ImageNotFound(ControllerError):
    """The agent image does not exist locally and cannot be pulled."""


class ImageBuildError(ControllerError):
    """Building the agent image failed; the message names the step and the fix."""


class HostToolMissing(ImageBuildError):
    """A program the offline build copies from the host is not installed on the host."""


class AgentNotFound(ImageBuildError):
    """An agent asked for (``luzia image build --agent``) is not on this host, or not usable."""


class ContainerGone(ConnectionLost):
    """The container stopped or was removed."""
