"""``luzia status``: one job in detail with its history, or what the whole system is doing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from luzia.cli.app import App, json_option, pass_app

if TYPE_CHECKING:
    from luzia.jobs import Job

RECENT = 10
"""Finished jobs shown in the summary, besides every job that has not finished."""


@click.command()
@click.argument("job_id", metavar="[JOB]", required=False)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Print the job's state changes as they happen, until it ends (with --json: one "
    "event per line).",
)
@json_option
@pass_app
def status(app: App, job_id: str | None, follow: bool, as_json: bool) -> None:
    """Show JOB: its state, exit code, times, where it runs, and every state change.

    Without JOB: whether the engine runs, how many jobs are in each state, and the jobs that
    have not ended plus the newest finished ones.
    """
    if job_id is None:
        if follow:
            raise click.UsageError("--follow needs a JOB")
        summary(app, as_json)
    elif follow:
        follow_job(app, job_id, as_json)
    else:
        show_job(app, job_id, as_json)


def show_job(app: App, job_id: str, as_json: bool) -> None:
    from luzia.render import print_job, to_json

    dispatcher = app.dispatcher()
    job = dispatcher.get_status(job_id)
    events = dispatcher.store.events(job.id)
    container = container_view(job)
    if as_json:
        data = {**job.to_dict(), "container": container}
        click.echo(to_json({**data, "events": [event.to_dict() for event in events]}))
    else:
        print_job(job, events, container)


def container_view(job: Job) -> dict[str, Any] | None:
    """A docker job's network, mounts, limits and user as dispatched (``None``: a local job)."""
    from luzia.launch import read_launch

    if job.backend == "local":
        return None
    launch = read_launch(job.job_dir)
    view = launch.container_view() if launch is not None else None
    if view is not None and job.backend == "swarm":
        from luzia.swarm import NODE_FILE

        node = job.job_dir / NODE_FILE
        view["node"] = node.read_text().strip() if node.exists() else None
    return view


def follow_job(app: App, job_id: str, as_json: bool) -> None:
    from luzia.render import event_line, live_line, outcome, to_json_line

    dispatcher = app.dispatcher()
    job = dispatcher.get_status(job_id)

    def line() -> str:
        return outcome(job)

    if as_json:
        for event in dispatcher.stream_status(job.id):
            click.echo(to_json_line(event.to_dict()))
        return
    with live_line(line, stderr=False) as emit:
        for event in dispatcher.stream_status(job.id):
            emit(event_line(event), False)
            job = dispatcher.get_status(job.id)
    click.echo(outcome(job))


def summary(app: App, as_json: bool) -> None:
    from luzia.daemon import engine_status
    from luzia.render import print_jobs, to_json

    dispatcher = app.dispatcher()
    everything = dispatcher.list_jobs()
    counts = dict.fromkeys(
        ("queued", "starting", "running", "idle", "waiting", "completed", "failed", "killed"), 0
    )
    for job in everything:
        counts[job.state.value] = counts.get(job.state.value, 0) + 1
    shown = pick_shown(everything)
    engine = engine_status(app.home)
    if as_json:
        data: dict[str, Any] = {
            "home": str(app.home),
            "engine": engine.to_dict(),
            "counts": counts,
            "jobs": [job.to_dict() for job in shown],
        }
        click.echo(to_json(data))
        return
    if engine.running:
        click.echo(f"engine: running (pid {engine.pid}), home {app.home}")
    else:
        click.echo(
            f"engine: not running, home {app.home} (it starts with the next dispatch, "
            "or `luzia daemon start`)"
        )
    listed = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    click.echo(f"jobs: {len(everything)}" + (f" ({listed})" if listed else ""))
    if shown:
        click.echo()
        print_jobs(shown)


def pick_shown(jobs: list[Job]) -> list[Job]:
    """Every job that has not ended, and the ``RECENT`` newest; newest first (as given)."""
    recent = {job.id for job in jobs[:RECENT]}
    return [job for job in jobs if job.id in recent or not job.state.is_final]
