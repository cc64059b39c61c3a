"""Terminal controllers: drive a shell pane in tmux, on this host or inside a container.

>>> from controllers import LocalTmuxController
>>> with LocalTmuxController() as pane:            # doctest: +SKIP
...     pane.run("git status").exit_code
0
"""

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
