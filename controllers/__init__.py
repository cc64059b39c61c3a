"""Terminal controllers: drive a shell pane in tmux, on this host or inside a container.

>>> from controllers import LocalTmuxController
>>> with LocalTmuxController() as pane:            # doctest: +SKIP
...     pane.run("git status").exit_code
0

The names below are imported on first use, not with the package: ``luzia.errors`` imports
``controllers.errors`` (the root of every error is there), and the ``luzia`` command must not pay
for the tmux and Docker layers on every run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controllers.lazy import lazy_exports

if TYPE_CHECKING:
    from controllers.control_mode import ControlModeClient, PaneStream
    from controllers.controller import TmuxController
    from controllers.docker_tmux import DockerTmuxController
    from controllers.errors import (
        CommandTimeout,
        ConnectionLost,
        ContainerGone,
        ControllerError,
        DockerUnavailable,
        ImageNotFound,
        InvalidInput,
        TmuxCommandError,
        TmuxNotFound,
    )
    from controllers.events import (
        CommandEnded,
        CommandStarted,
        CommandStopped,
        Listener,
        Output,
        PaneEvent,
        PaneLost,
        PromptRedrawn,
        TitleChanged,
    )
    from controllers.local import LocalTmuxController
    from controllers.shell import CommandResult

__all__ = [
    "CommandEnded",
    "CommandResult",
    "CommandStarted",
    "CommandStopped",
    "CommandTimeout",
    "ConnectionLost",
    "ContainerGone",
    "ControlModeClient",
    "ControllerError",
    "DockerTmuxController",
    "DockerUnavailable",
    "ImageNotFound",
    "InvalidInput",
    "Listener",
    "LocalTmuxController",
    "Output",
    "PaneEvent",
    "PaneLost",
    "PaneStream",
    "PromptRedrawn",
    "TitleChanged",
    "TmuxCommandError",
    "TmuxController",
    "TmuxNotFound",
]

_HOMES = {
    "ControlModeClient": "controllers.control_mode",
    "PaneStream": "controllers.control_mode",
    "TmuxController": "controllers.controller",
    "DockerTmuxController": "controllers.docker_tmux",
    "LocalTmuxController": "controllers.local",
    "CommandResult": "controllers.shell",
    **dict.fromkeys(
        (
            "CommandEnded",
            "CommandStarted",
            "CommandStopped",
            "Listener",
            "Output",
            "PaneEvent",
            "PaneLost",
            "PromptRedrawn",
            "TitleChanged",
        ),
        "controllers.events",
    ),
    **dict.fromkeys(
        (
            "CommandTimeout",
            "ConnectionLost",
            "ContainerGone",
            "ControllerError",
            "DockerUnavailable",
            "ImageNotFound",
            "InvalidInput",
            "TmuxCommandError",
            "TmuxNotFound",
        ),
        "controllers.errors",
    ),
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
