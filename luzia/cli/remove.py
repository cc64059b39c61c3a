"""``luzia rm`` and ``luzia clean``: remove jobs with their containers, panes and files."""

from __future__ import annotations

import sys

import click

from luzia.cli.app import App, each_job, json_option, pass_app


@click.command("rm")
@click.argument("job_ids", metavar="JOB...", nargs=-1, required=True)
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="Also remove jobs that have not ended: kill them first.",
)
@json_option
@pass_app
def remove(app: App, job_ids: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Remove each JOB: its container or tmux server, its record and its directory (logs too).

    A queued or running job is refused unless --force. Prints `removed ID` per job (--json:
    an array of the jobs as they were last). An unknown JOB is reported; the others go on.
    """
    from luzia.render import to_json

    dispatcher = app.dispatcher()
    done, code = each_job(job_ids, lambda job_id: dispatcher.remove_job(job_id, force=force))
    if as_json:
        click.echo(to_json([job.to_dict() for job in done]))
    else:
        for job in done:
            click.echo(f"removed {job.id}")
    click.get_current_context().exit(code)


@click.command()
@click.option(
    "-a",
    "--all",
    "everything",
    is_flag=True,
    help="Also kill and remove the jobs that have not ended (queued, starting, running, idle).",
)
@click.option(
    "-y", "--yes", is_flag=True, help="With --all: do not ask first (it never asks off a terminal)."
)
@json_option
@pass_app
def clean(app: App, everything: bool, yes: bool, as_json: bool) -> None:
    """Remove every finished job (completed, failed, killed) with its container and files.

    Prints `removed ID` per job (--json: {"removed": [ids]}).
    """
    from luzia.render import to_json

    dispatcher = app.dispatcher()
    if everything and not yes and sys.stdin.isatty():
        active = dispatcher.list_jobs(state=["queued", "starting", "running", "idle", "waiting"])
        if active:
            click.confirm(
                f"Kill and remove {len(active)} job(s) that have not ended, too?", abort=True
            )
    removed = dispatcher.clean(all=everything)
    if as_json:
        click.echo(to_json({"removed": removed}))
    elif removed:
        for job_id in removed:
            click.echo(f"removed {job_id}")
    else:
        click.echo("nothing to clean", err=True)
