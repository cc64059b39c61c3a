"""``luzia diff``, ``commit``, ``apply``, ``revert``: what a job changed in its git workspace.

Before a job starts and after it ends, luzia records the workspace (HEAD, staged, unstaged and
untracked files) under ``refs/luzia/<job>/``, without touching the working tree or the index;
these commands read and act on those records (``luzia.workspace``).
"""

from __future__ import annotations

import click

from luzia.cli.app import App, json_option, pass_app


@click.command()
@click.argument("job_id", metavar="JOB")
@click.option("--stat", is_flag=True, help="A summary (files and line counts), not the patch.")
@pass_app
def diff(app: App, job_id: str, stat: bool) -> None:
    """Show exactly what JOB changed in its workspace (so far, while it runs).

    Correct even when the workspace had uncommitted changes before the job: only the job's own
    edits are shown. A workspace that is not a git repository has nothing to diff; the error
    says why.
    """
    text = app.dispatcher().diff_job(job_id, stat=stat)
    click.echo(text, nl=not text.endswith("\n"))


@click.command()
@click.argument("job_id", metavar="JOB")
@click.option(
    "--branch",
    "branch",
    default=None,
    metavar="NAME",
    help="Commit on a new branch NAME (default: the current branch).",
)
@click.option("--new-branch", "-b", is_flag=True, help="Commit on a new branch luzia/<job>.")
@click.option("-m", "--message", default=None, help="The commit message (default names the job).")
@json_option
@pass_app
def commit(
    app: App,
    job_id: str,
    branch: str | None,
    new_branch: bool,
    message: str | None,
    as_json: bool,
) -> None:
    """Commit JOB's change to its workspace, and nothing else.

    Your own uncommitted changes stay uncommitted in the working tree. On the current branch
    this is refused if the branch moved or the workspace changed since the job ended.
    """
    dispatcher = app.dispatcher()
    job = dispatcher.get_status(job_id)
    target = branch or (f"luzia/{job.id}" if new_branch else None)
    sha = dispatcher.commit_job(job.id, branch=target, message=message)
    if as_json:
        from luzia.render import to_json

        click.echo(to_json({"job": job.id, "commit": sha, "branch": target}))
    else:
        click.echo(f"committed {job.id} as {sha[:12]} on {target or 'the current branch'}")


@click.command()
@click.argument("job_id", metavar="JOB")
@pass_app
def apply(app: App, job_id: str) -> None:
    """Bring JOB's change into its workspace, without committing it.

    For a job that changed a copy of the workspace (a swarm job, on its node) or whose change
    was reverted. Refused if the workspace changed since the job started; harmless when the
    workspace already holds the change.
    """
    dispatcher = app.dispatcher()
    job = dispatcher.get_status(job_id)
    if dispatcher.apply_job(job.id):
        click.echo(f"applied {job.id}: {job.workdir} holds its change")
    else:
        click.echo(f"{job.id}: {job.workdir} already holds its change")


@click.command()
@click.argument("job_id", metavar="JOB")
@pass_app
def revert(app: App, job_id: str) -> None:
    """Put JOB's workspace back exactly as it was before the job.

    Files the agent created are removed and the ones it changed or deleted come back, your own
    earlier uncommitted changes included. Refused if the workspace changed after the job ended.
    """
    job = app.dispatcher().revert_job(job_id)
    click.echo(f"reverted {job.id}: {job.workdir} is as it was before the job")
