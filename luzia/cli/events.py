"""``luzia events``: every job's state changes, oldest first, and with ``-f`` as they happen."""

from __future__ import annotations

import re
import time
from datetime import datetime
from datetime import time as clock_time

import click

from luzia.cli.app import App, pass_app

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


@click.command()
@click.argument("job_ids", metavar="[JOB]...", nargs=-1)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing new events as they are recorded, until Ctrl-C (with JOBs: until they "
    "have all ended).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per line (JSON Lines; schema: docs/cli.md).",
)
@click.option(
    "--since",
    metavar="DURATION|TIME",
    help='Only events from this long ago ("30s", "10m", "2h", "1d") or from this time on '
    '("2025-01-31T12:00:00", "14:30", local time unless it says Z or +HH:MM).',
)
@click.option("-p", "--project", metavar="PROJECT", help="Only the jobs of this project.")
@pass_app
def events(
    app: App,
    job_ids: tuple[str, ...],
    follow: bool,
    as_json: bool,
    since: str | None,
    project: str | None,
) -> None:
    """Print every state change of every job (or of the JOBs, or a project's), oldest first:
    time, job, project, state and why.

    Without -f it prints what is recorded and exits.
    """
    from luzia.errors import AmbiguousJobId, JobNotFound, UsageError
    from luzia.render import format_time, one_line, to_json_line

    start = None if since is None else parse_since(since)
    stream = app.dispatcher().stream_events(
        follow=follow, since=start, job_ids=job_ids or None, project=project
    )
    try:
        for event in stream:
            if as_json:
                click.echo(to_json_line(event.to_dict()))
            else:
                click.echo(
                    f"{format_time(event.at)}  {event.job_id}  {event.project or '-'}  "
                    f"{event.state.value:<9}  {one_line(event.reason)}"
                )
    except (JobNotFound, AmbiguousJobId) as exc:
        raise UsageError(str(exc)) from None  # a JOB argument that names no job: bad input
    except KeyboardInterrupt:
        return  # Ctrl-C is how a follower ends: no error


def parse_since(text: str, now: float | None = None) -> float:
    """``--since`` as a unix time: a duration back from ``now``, or a date and time, or a time
    of today (local unless the text gives a zone).

    >>> parse_since("90s", now=1000.0), parse_since("2m", now=1000.0)
    (910.0, 880.0)
    >>> parse_since("2025-01-31T12:00:00Z")
    1738324800.0
    """
    from luzia.errors import UsageError

    now = time.time() if now is None else now
    value = text.strip()
    match = _DURATION.fullmatch(value)
    if match is not None:
        return now - float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        pass
    try:
        of_day = clock_time.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--since must be a duration like 30s, 10m, 2h, 1d or a time like 14:30 or "
            f"2025-01-31T12:00:00, not {text!r}"
        ) from None
    today = datetime.fromtimestamp(now, of_day.tzinfo).date()
    return datetime.combine(today, of_day).timestamp()
