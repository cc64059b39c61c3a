"""``luzia dispatch``: record a task as a job, print its id, make sure an engine will run it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from luzia.cli.app import App, json_option, pass_app


def parse_env(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """``-e K=V`` pairs as a dict; the value may be empty, the name may not."""
    env: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", ctx=ctx, param=param)
        env[name] = value
    return env


def read_task(task: str) -> str:
    """The task as given; ``-`` reads it from stdin (the way to pass tasks over 128 KiB)."""
    if task != "-":
        return task
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.BadParameter(
            f"the task on stdin is not UTF-8 text (byte {exc.start})", param_hint="TASK"
        ) from exc


@click.command()
@click.argument("task")
@click.option(
    "-p",
    "--project",
    metavar="NAME",
    help="The project (a [projects.NAME] in the config supplies workdir, agent, backend, image "
    "and env; any other name is a label and needs --workdir when projects are configured).",
)
@click.option(
    "-w",
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="The workspace (mounted at /workspace). Default: the project's path, else the current "
    "directory.",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "docker", "local"]),
    help="Where the job runs: a container of its own (docker), host tmux (local), or docker when "
    "a Docker Engine is reachable (auto). Default: the project's, else defaults.backend.",
)
@click.option("--image", metavar="IMAGE", help="The container image. Default: the config's.")
@click.option(
    "--agent",
    metavar="CMD",
    help="The agent command template; {task} becomes the shell-quoted task, e.g. "
    "'claude -p {task}'. Default: the project's; unset, the task itself is a shell command.",
)
@click.option(
    "--mode",
    type=click.Choice(["command", "interactive"]),
    default=None,
    help="command: the job ends when the command does; interactive: an agent at its prompt. "
    'Default: what the agent is (a profile with delivery = "prompt" is interactive).',
)
@click.option(
    "-e",
    "--env",
    "env",
    multiple=True,
    metavar="NAME=VALUE",
    callback=parse_env,
    help="An environment variable for the job (repeatable; over the project's).",
)
@click.option(
    "--network",
    metavar="NAME",
    help="The container's network: bridge, none, host or a Docker network's name. Default: the "
    "project's, else luzia's own (jobs cannot reach each other). Local jobs ignore it.",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Then wait for the job to end and exit with its exit code (as `luzia wait`).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="With --wait: give up after this long (exit 124; the job goes on).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the job id, even on a terminal.")
@json_option
@pass_app
def dispatch(
    app: App,
    task: str,
    project: str | None,
    workdir: Path | None,
    backend: Any,
    image: str | None,
    agent: str | None,
    mode: Any,
    env: dict[str, str],
    network: str | None,
    wait: bool,
    timeout: float | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Record TASK as a job and print its id at once; a background engine runs it.

    TASK is a shell command, or the instructions for the project's agent; `-` reads it from
    stdin. On a pipe, only the id is printed, so `id=$(luzia dispatch "make test")` works.
    The engine is started if none runs for this home (LUZIA_NO_AUTOSTART=1 prevents that).
    """
    if timeout is not None and not wait:
        raise click.UsageError("--timeout needs --wait")
    dispatcher = app.dispatcher()
    job_id = dispatcher.dispatch_task(
        read_task(task),
        project,
        backend=backend,
        image=image,
        workdir=workdir,
        agent=agent,
        mode=mode,
        env=env or None,
        network=network,
    )
    dispatcher.ensure_engine()
    if wait:
        from luzia.cli.wait import wait_for_jobs

        if not as_json:
            click.echo(job_id)
        wait_for_jobs(
            app,
            [job_id],
            timeout=timeout,
            as_json=as_json,
            outcome_to_stderr=True,
            one_document=True,
        )
        return
    if as_json:
        from luzia.render import to_json

        click.echo(to_json(dispatcher.get_status(job_id).to_dict()))
    elif quiet or not sys.stdout.isatty():
        click.echo(job_id)
    else:
        job = dispatcher.get_status(job_id)
        where = f"project {job.project}, " if job.project else ""
        click.echo(
            f"{click.style(job_id, bold=True)} {job.state} ({where}{job.backend}); "
            f"follow it with `luzia logs -f {job_id}`",
            color=_color(),
        )


def _color() -> bool:
    from luzia.render import use_color

    return use_color()
