"""The ``luzia`` command: a thin layer over ``ResponsiveDispatcher`` and the engine daemon.

One module per command (or small group of related ones), imported only when that command runs:
``luzia dispatch`` must start, record and exit in well under 150 ms, so nothing here imports rich,
Docker, the controllers (beyond ``controllers.errors``) or the engine before a command needs them.

Errors: every ``LuziaError`` (``ControllerError`` is one) becomes one line, ``luzia: error:
<message>`` on stderr, and the error's exit code (1 for controller errors), never a traceback;
usage errors are click's and exit 2; Ctrl-C exits 130 without a word. ``LUZIA_DEBUG=1`` shows
tracebacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

import click

from luzia.cli.app import App, export_options, report_error

COMMANDS: dict[str, str] = {
    "dispatch": "luzia.cli.dispatch",
    "status": "luzia.cli.status",
    "jobs": "luzia.cli.jobs",
    "logs": "luzia.cli.logs",
    "wait": "luzia.cli.wait",
    "events": "luzia.cli.events",
    "cockpit": "luzia.cli.cockpit",
    "top": "luzia.cli.cockpit",
    "attach": "luzia.cli.attach",
    "send": "luzia.cli.send",
    "kill": "luzia.cli.kill",
    "diff": "luzia.cli.changes",
    "commit": "luzia.cli.changes",
    "apply": "luzia.cli.changes",
    "revert": "luzia.cli.changes",
    "rm": "luzia.cli.remove",
    "clean": "luzia.cli.remove",
    "daemon": "luzia.cli.daemon",
    "image": "luzia.cli.image",
    "doctor": "luzia.cli.doctor",
    "list": "luzia.cli.projects",
}
"""Command name -> the module defining it (as an attribute named like the command, ``rm``
being ``remove`` and ``list`` being ``list_projects``), in the order ``--help`` shows them."""

_ATTRIBUTES = {"rm": "remove", "list": "list_projects", "top": "cockpit"}

EXIT_INTERRUPTED = 130


class LuziaGroup(click.Group):
    """The top-level group: commands loaded on first use, the ``luzia <project> <task>``
    shorthand, and one place where errors become a single line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMANDS.get(cmd_name)
        if module_name is None:
            return None
        command = getattr(import_module(module_name), _ATTRIBUTES.get(cmd_name, cmd_name))
        assert isinstance(command, click.Command)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """``luzia web "fix the tests"`` is ``luzia dispatch --project web "fix the tests"``.

        Only for a project the config defines, so that a mistyped command followed by words
        (``luzia stauts abc``) is an error rather than a job running ``abc``.
        """
        name = args[0]
        if len(args) < 2 or name.startswith("-") or self.get_command(ctx, name) is not None:
            return super().resolve_command(ctx, args)
        from luzia.config import Config

        config = Config.load(ctx.params.get("config_file"))
        if name in config.projects:
            dispatch = self.get_command(ctx, "dispatch")
            return "dispatch", dispatch, ["--project", name, *args[1:]]
        where = config.path or "the config file"
        raise click.exceptions.NoSuchCommand(
            name,
            message=(
                f"No such command {name!r}, and no project {name!r} in {where} "
                "(`luzia list` shows the projects)."
            ),
            possibilities=COMMANDS,
            ctx=ctx,
        )

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            raise  # click's main quiets a closed pipe (`luzia jobs | head -1`)
        except Exception as exc:
            ctx.exit(report_error(exc))


HOME_HELP = (
    "Where jobs are kept (the job store and the job directories). "
    "Default: $LUZIA_HOME, else $XDG_STATE_HOME/luzia, else ~/.local/state/luzia."
)
CONFIG_HELP = (
    "The TOML config file (projects and defaults). "
    "Default: $LUZIA_CONFIG, else $XDG_CONFIG_HOME/luzia/config.toml."
)


@click.group(
    cls=LuziaGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=(
        'Shorthand: `luzia PROJECT "TASK"` is `luzia dispatch --project PROJECT "TASK"` for a '
        "project the config defines. Job ids may be shortened to any unique prefix. "
        "Every command that prints data takes --json; docs/cli.md describes the schemas."
    ),
)
@click.option(
    "--home",
    "home",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="PATH",
    help=HOME_HELP,
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help=CONFIG_HELP,
)
@click.version_option(package_name="luzia", prog_name="luzia", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, config_file: Path | None) -> None:
    """Run coding agents (or any command) in tmux panes inside containers, without waiting.

    `luzia dispatch "make test"` records a job and prints its id at once; a background engine
    (started on demand) runs it. `luzia status`, `jobs`, `logs` and `wait` tell what every job
    is doing; `luzia attach` puts you in its live terminal.
    """
    home, config_file = export_options(home, config_file)
    app = App(home=home, config_file=config_file)
    ctx.obj = app
    ctx.call_on_close(app.close)
    if ctx.invoked_subcommand != "doctor":  # doctor reports it among its checks
        from luzia.paths import home_warning

        warning = home_warning(app.home)
        if warning:
            click.echo(f"luzia: {warning}", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: run the CLI and exit with its status."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="luzia")
