"""``luzia kill``: stop jobs now; each ends ``killed`` (a job that already ended is left so)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from luzia.cli.app import App, each_job, json_option, pass_app

if TYPE_CHECKING:
    from luzia.jobs import Job


@click.command()
@click.argument("job_ids", metavar="JOB...", nargs=-1, required=True)
@json_option
@pass_app
def kill(app: App, job_ids: tuple[str, ...], as_json: bool) -> None:
    """Kill each JOB: its command stops and it ends `killed` (queued jobs never start).

    The container stays for inspection until `luzia rm`. A job that had already ended keeps its
    state. Prints one line per job (--json: an array of the jobs after). An unknown JOB is
    reported and the others are still killed.
    """
    from luzia.jobs import FINAL_STATES, JobState
    from luzia.render import to_json

    dispatcher = app.dispatcher()
    ended_before: set[str] = set()

    def kill_one(job_id: str) -> Job:
        before = dispatcher.get_status(job_id)
        job = dispatcher.kill_job(before.id)
        if before.state in FINAL_STATES or job.state is not JobState.KILLED:
            ended_before.add(job.id)  # it had ended, or ended by itself before the kill landed
        return job

    done, code = each_job(job_ids, kill_one)
    if as_json:
        click.echo(to_json([job.to_dict() for job in done]))
    else:
        for job in done:
            if job.id in ended_before:
                click.echo(f"{job.id} had already ended: {job.state}")
            else:
                click.echo(f"killed {job.id}")
    click.get_current_context().exit(code)
