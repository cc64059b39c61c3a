"""``luzia jobs``: the job table, newest first, filtered by project and state."""

from __future__ import annotations

import click

from luzia.cli.app import App, json_option, pass_app

DEFAULT_LIMIT = 50

STATES = ("queued", "starting", "running", "idle", "waiting", "completed", "failed", "killed")
STATE_GROUPS = {
    "active": ("starting", "running", "idle", "waiting"),
    "final": ("completed", "failed", "killed"),
}
"""Names for several states at once: ``--state active``, ``--state final``."""


def expand_states(names: tuple[str, ...]) -> list[str] | None:
    """The states named, groups expanded, duplicates dropped; ``None`` for no filter.

    >>> expand_states(("active", "queued", "running"))
    ['starting', 'running', 'idle', 'queued']
    """
    if not names:
        return None
    states: list[str] = []
    for name in names:
        for state in STATE_GROUPS.get(name, (name,)):
            if state not in states:
                states.append(state)
    return states


@click.command()
@click.option("-p", "--project", metavar="NAME", help="Only this project's jobs.")
@click.option(
    "-s",
    "--state",
    "states",
    multiple=True,
    type=click.Choice([*STATES, *STATE_GROUPS]),
    help="Only jobs in this state (repeatable). active = starting, running, idle; "
    "final = completed, failed, killed.",
)
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help=f"Show the N newest jobs (default {DEFAULT_LIMIT}).",
)
@click.option("-a", "--all", "show_all", is_flag=True, help="Show every job, not only the newest.")
@json_option
@pass_app
def jobs(
    app: App,
    project: str | None,
    states: tuple[str, ...],
    limit: int | None,
    show_all: bool,
    as_json: bool,
) -> None:
    """List jobs, newest first: id, project, state, exit code, age, duration and task.

    --json prints an array of jobs (the same objects as `luzia status JOB --json`, without
    events).
    """
    from luzia.render import print_jobs, to_json

    if show_all and limit is not None:
        raise click.UsageError("give --limit or --all, not both")
    if not show_all and limit is None:
        limit = DEFAULT_LIMIT
    found = app.dispatcher().list_jobs(project=project, state=expand_states(states), limit=limit)
    if as_json:
        click.echo(to_json([job.to_dict() for job in found]))
        return
    print_jobs(found, empty="no jobs" + (" match" if project or states else ""))
    if limit is not None and len(found) == limit and not show_all:
        click.echo(f"(the {limit} newest; --all shows every job)", err=True)
