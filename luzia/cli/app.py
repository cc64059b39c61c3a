"""What every command shares: the global options, and the dispatcher built from them on demand."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from luzia.config import Config
    from luzia.dispatcher import ResponsiveDispatcher
    from luzia.jobs import Job


class App:
    """The global options (``--home``, ``--config``) and what is built from them, lazily.

    Nothing is opened until a command asks: ``luzia --help`` never touches the store, and
    ``luzia list`` never opens it.
    """

    def __init__(self, home: Path | None = None, config_file: Path | None = None) -> None:
        self.home_option = home
        self.config_file = config_file
        self._config: Config | None = None
        self._dispatcher: ResponsiveDispatcher | None = None

    @property
    def home(self) -> Path:
        """``--home``, else ``$LUZIA_HOME``, else the XDG state directory."""
        if self.home_option is not None:
            return self.home_option
        from luzia.paths import luzia_home

        return luzia_home()

    def config(self) -> Config:
        """The configuration (``--config``, else ``$LUZIA_CONFIG``, else the XDG default)."""
        if self._config is None:
            from luzia.config import Config

            self._config = Config.load(self.config_file)
        return self._config

    def dispatcher(self) -> ResponsiveDispatcher:
        """The dispatcher over this home's store, opened on first use and closed with the app."""
        if self._dispatcher is None:
            from luzia.dispatcher import ResponsiveDispatcher

            self._dispatcher = ResponsiveDispatcher(home=self.home, config=self.config())
        return self._dispatcher

    def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.close()
            self._dispatcher = None


def export_options(home: Path | None, config_file: Path | None) -> tuple[Path | None, Path | None]:
    """Absolute ``--home``/``--config``, also put in the environment.

    The engine this CLI may start on demand is a detached child process; it inherits the
    environment, so it serves the same home and reads the same config as the command that
    started it.
    """
    if home is not None:
        home = Path(os.path.abspath(os.path.expanduser(home)))
        os.environ["LUZIA_HOME"] = str(home)
    if config_file is not None:
        config_file = Path(os.path.abspath(os.path.expanduser(config_file)))
        os.environ["LUZIA_CONFIG"] = str(config_file)
    return home, config_file


F = TypeVar("F", bound=Callable[..., Any])

pass_app = click.make_pass_decorator(App)
"""Decorator handing a command the ``App`` of this invocation."""


def json_option(function: F) -> F:
    """``--json``: print one JSON document (schema in docs/cli.md) instead of text."""
    option = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print one JSON document on stdout instead of text (schema: docs/cli.md).",
    )
    return option(function)


def error_exit_code(exc: BaseException) -> int | None:
    """The exit code for an error a person can act on; ``None`` for a bug (keep the traceback).

    Controller errors are ``LuziaError`` too, and exit 1.
    """
    from luzia.errors import LuziaError

    if isinstance(exc, LuziaError):
        return exc.exit_code
    if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
        return 1
    return None


def error_message(exc: BaseException) -> str:
    """The error on one line: its lines joined with ``; ``."""
    if isinstance(exc, OSError) and exc.strerror and type(exc).__module__ == "builtins":
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


def report_error(exc: BaseException) -> int:
    """Print ``luzia: error: <message>`` on stderr and return the exit code; re-raise a bug."""
    code = error_exit_code(exc)
    if code is None or os.environ.get("LUZIA_DEBUG"):
        raise exc
    click.echo(f"luzia: error: {error_message(exc)}", err=True)
    return code


def each_job(job_ids: Iterable[str], action: Callable[[str], Job]) -> tuple[list[Job], int]:
    """Apply ``action`` to every id; a failure is reported on its own line and the rest go on.

    Returns the jobs ``action`` returned and the exit code: that of the first failure, else 0.
    """
    done: list[Job] = []
    status = 0
    for job_id in job_ids:
        try:
            done.append(action(job_id))
        except Exception as exc:
            code = report_error(exc)
            status = status or code
    return done, status
