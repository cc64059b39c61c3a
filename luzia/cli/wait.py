"""``luzia wait``: block until jobs end (exit with their exit code, like the shell's ``wait``),
or until their turn ends or they ask a person something (``--for idle|input``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from luzia.cli.app import App, json_option, pass_app

if TYPE_CHECKING:
    from luzia.dispatcher import ResponsiveDispatcher
    from luzia.jobs import Job
    from luzia.until import Until

EXIT_TIMEOUT = 124
"""A wait that ran out of time, as ``timeout(1)`` exits; the jobs go on."""

EXIT_ENDED = 3
"""A wait ``--for idle`` or ``--for input`` that found a job ended before it got there."""

EXIT_KILLED = 137
"""A killed job, as a shell reports a process ended by SIGKILL (128 + 9)."""

EXIT_UNKNOWN_FAILURE = 1
"""A failed job without a usable exit code (e.g. its container vanished)."""

LIVE_STEP = 1.0
"""Seconds between two refreshes of the job shown on the live line."""


def job_exit_code(job: Job) -> int:
    """The exit status ``luzia wait`` gives for a final job.

    completed -> 0; failed -> the job's own exit code (1 when it has none in 1..255);
    killed -> 137.
    """
    state = job.state.value
    if state == "completed":
        return 0
    if state == "killed":
        return EXIT_KILLED
    code = job.exit_code
    return code if code is not None and 0 < code < 256 else EXIT_UNKNOWN_FAILURE


def wait_for_jobs(
    app: App,
    job_ids: Sequence[str],
    *,
    timeout: float | None,
    as_json: bool,
    outcome_to_stderr: bool = False,
    one_document: bool = False,
    until: Until = "end",
) -> None:
    """Wait for every job in turn to reach ``until`` (one deadline for all), report, and exit.

    Exit status for ``end``: the first non-zero ``job_exit_code`` in argument order, else 0;
    for ``idle``/``input``: 0, or ``EXIT_ENDED`` when a job ended instead. 124 when the
    deadline passes first. Unknown ids fail before any waiting.
    """
    from luzia.errors import WaitTimeout
    from luzia.render import is_terminal, live_line, to_json
    from luzia.until import ended_instead

    dispatcher = app.dispatcher()
    jobs = [dispatcher.get_status(job_id) for job_id in job_ids]
    deadline = None if timeout is None else time.monotonic() + timeout
    current = 0
    timed_out = False

    def status_line() -> str:
        job = jobs[current]
        done = f" ({current} of {len(jobs)} {_DONE[until]})" if len(jobs) > 1 else ""
        if job.state.is_final:
            return _reached_line(job) + done
        running = f"{job.state}" + (f" for {_span(job.duration)}" if job.duration else "")
        return f"waiting for {job.id}: {running}{done}"

    with live_line(status_line, stderr=True) as emit:
        live = is_terminal(sys.stderr)
        for current in range(len(jobs)):
            try:
                _wait_one(dispatcher, jobs, current, deadline, live, until)
            except WaitTimeout:
                timed_out = True
                break
            if not as_json:
                emit(_reached_line(jobs[current]), outcome_to_stderr)

    if as_json:
        if timed_out:
            jobs = [dispatcher.get_status(job.id) for job in jobs]
        data = jobs[0].to_dict() if one_document else [job.to_dict() for job in jobs]
        click.echo(to_json(data))
    ctx = click.get_current_context()
    if timed_out:
        late = jobs[current]
        ended = f" ({current} of {len(jobs)} {_DONE[until]})" if len(jobs) > 1 else ""
        click.echo(
            f"luzia: error: timed out after {timeout:g} s: job {late.id} is still "
            f"{late.state}{ended}; it goes on",
            err=True,
        )
        ctx.exit(EXIT_TIMEOUT)
    if until == "end":
        ctx.exit(next((code for code in map(job_exit_code, jobs) if code), 0))
    gone = [job for job in jobs if ended_instead(job, until)]
    if gone:
        which = ", ".join(f"{job.id} {job.state}" for job in gone)
        click.echo(f"luzia: ended before {_GOAL[until]}: {which}", err=True)
        ctx.exit(EXIT_ENDED)
    ctx.exit(0)


_DONE = {"end": "ended", "idle": "idle or ended", "input": "waiting or ended"}
"""How the live line counts the jobs already waited for."""

_GOAL = {"end": "ending", "idle": "being idle", "input": "waiting for a person"}
"""What a job ended before, in the line that says so."""


def _reached_line(job: Job) -> str:
    """The outcome line of a job the wait is over for; with its message while it still runs
    (``k3v9q0tz idle for 4.1s: waiting for a person: Allow edit? [y/n]``)."""
    from luzia.render import one_line, outcome

    line = outcome(job)
    if not job.state.is_final and job.message:
        line += f": {one_line(job.message, 200)}"
    return line


def _wait_one(
    dispatcher: ResponsiveDispatcher,
    jobs: list[Job],
    index: int,
    deadline: float | None,
    live: bool,
    until: Until = "end",
) -> None:
    """Wait until ``jobs[index]`` reaches ``until``, keeping ``jobs[index]`` up to date;
    ``WaitTimeout`` at the deadline. With a live line, it looks again every ``LIVE_STEP``
    seconds so that the line shows the job's current state."""
    from luzia.errors import WaitTimeout

    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        step = left if not live else LIVE_STEP if left is None else min(LIVE_STEP, left)
        try:
            jobs[index] = dispatcher.wait_for_job(jobs[index].id, timeout=step, until=until)
            return
        except WaitTimeout as exc:
            jobs[index] = exc.job
            if not live or (left is not None and left <= LIVE_STEP):
                raise


def _span(seconds: float | None) -> str:
    from luzia.render import format_span

    return format_span(seconds)


@click.command()
@click.argument("job_ids", metavar="JOB...", nargs=-1, required=True)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Give up after this long, for all the jobs together: exit 124 (the jobs go on).",
)
@click.option(
    "--for",
    "goal",
    default="end",
    show_default=True,
    metavar="end|idle|input",
    help="end: the job has ended. idle: its turn has ended (at its prompt, or asking). "
    "input: it waits for a person's answer. A job that ends first exits 3.",
)
@json_option
@pass_app
def wait(
    app: App, job_ids: tuple[str, ...], timeout: float | None, goal: str, as_json: bool
) -> None:
    """Wait until each JOB has ended (or, with --for, its turn ended or it asks a person), then
    exit with its exit code.

    completed exits 0, failed exits with the job's own exit code (1 if it has none), killed
    exits 137; for several jobs, the first non-zero one in the order given. A timeout exits
    124. Prints one line per job as it ends (--json: an array of jobs at the end).

    With --for idle or --for input: wait until each JOB is idle (or waits for a person), then
    exit 0; exit 3 if one ended instead.
    """
    from luzia.until import check_until

    until = check_until(goal)
    wait_for_jobs(app, job_ids, timeout=timeout, as_json=as_json, until=until)
