"""How the CLI shows jobs: rich tables and colour on a terminal, plain stable text otherwise.

Plain text is what a pipe, a file or a test sees: aligned columns, no colour, no box drawing,
ASCII only, one record per line. It is for people and ``grep``; scripts should read ``--json``,
whose keys are documented in ``docs/cli.md``. rich is imported only when output goes to a
terminal, since importing it costs more than a whole ``luzia dispatch``.

Colour follows the usual conventions: none when the stream is not a terminal, when ``NO_COLOR``
is set (https://no-color.org) or when ``TERM=dumb``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from luzia.jobenv import shown_env

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from luzia.jobs import Job, JobEvent

STATE_STYLES = {
    "queued": "bright_black",
    "starting": "cyan",
    "running": "blue",
    "idle": "magenta",
    "waiting": "bold yellow",
    "completed": "green",
    "failed": "bold red",
    "killed": "yellow",
}
"""The colour of each job state, in rich's style syntax."""

JOB_COLUMNS = ("ID", "PROJECT", "STATE", "EXIT", "AGE", "DURATION", "TOKENS", "TASK")
TASK_WIDTH = 60
"""Characters of a task shown in a plain table row; rich fits the column to the terminal."""


# -------------------------------------------------------------------------- streams and JSON


def is_terminal(stream: IO[Any] | None = None) -> bool:
    """Whether ``stream`` (stdout by default) is an interactive terminal."""
    stream = sys.stdout if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def use_color(stream: IO[Any] | None = None) -> bool:
    """Whether to colour ``stream``: a terminal, no ``NO_COLOR``, not ``TERM=dumb``."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def to_json(data: object) -> str:
    """One JSON document, indented, keys in the order the schema gives them.

    >>> print(to_json({"id": "k3v9q0tz", "exit_code": None}))
    {
      "id": "k3v9q0tz",
      "exit_code": null
    }
    """
    import json

    return json.dumps(data, indent=2, ensure_ascii=False)


def to_json_line(data: object) -> str:
    """One JSON document on one line (JSON Lines), for streams of records."""
    import json

    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr); rich itself honours ``NO_COLOR``."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


# -------------------------------------------------------------------------- small formatters


def format_span(seconds: float | None) -> str:
    """A length of time for people: ``0.4s``, ``12s``, ``3m05s``, ``2h10m``, ``3d4h``.

    >>> [format_span(s) for s in (None, 0.42, 12.3, 185, 7800, 273600)]
    ['-', '0.4s', '12s', '3m05s', '2h10m', '3d04h']
    """
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def format_time(at: float | None) -> str:
    """A unix time as local ``YYYY-MM-DD HH:MM:SS.mmm``, or ``-``."""
    if at is None:
        return "-"
    millis = int((at % 1) * 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) + f".{millis:03d}"


def one_line(text: str, width: int | None = None) -> str:
    """``text`` on one line (runs of blanks and newlines become one space), cut to ``width``.

    >>> one_line("make\\n  test", 20), one_line("abcdefghij", 6)
    ('make test', 'abc...')
    """
    flat = " ".join(text.split())
    if width is not None and len(flat) > width:
        return flat[: max(0, width - 3)] + "..."
    return flat


def exit_text(job: Job) -> str:
    return "-" if job.exit_code is None else str(job.exit_code)


def outcome(job: Job) -> str:
    """One line on how a job ended (or where it is): ``k3v9q0tz completed (exit 0) in 1.2s``."""
    parts = [job.id, str(job.state)]
    if job.exit_code is not None:
        parts.append(f"(exit {job.exit_code})")
    if job.state.is_final and job.duration is not None:
        parts.append(f"in {format_span(job.duration)}")
    elif job.duration is not None:
        parts.append(f"for {format_span(job.duration)}")
    line = " ".join(parts)
    if job.message and job.state.value in ("failed", "killed"):
        line += f": {one_line(job.message, 200)}"
    return line


# -------------------------------------------------------------------------- job tables


def job_row(job: Job, now: float, task_width: int | None = TASK_WIDTH) -> list[str]:
    """The cells of one job in ``JOB_COLUMNS`` order."""
    return [
        job.id,
        job.project or "-",
        str(job.state),
        exit_text(job),
        format_span(now - job.created_at),
        format_span(job.duration),
        short_usage(job.usage),
        one_line(job.task, task_width),
    ]


def plain_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns aligned with two spaces, header first; the last column is not padded.

    >>> print(plain_table(("ID", "STATE"), [("ab", "running"), ("abcdef", "queued")]))
    ID      STATE
    ab      running
    abcdef  queued
    """
    table = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def plain_jobs(jobs: Sequence[Job], now: float | None = None) -> str:
    now = time.time() if now is None else now
    return plain_table(JOB_COLUMNS, (job_row(job, now) for job in jobs))


def rich_jobs(jobs: Sequence[Job], now: float | None = None) -> RenderableType:
    """The jobs table for a terminal: coloured states, the task cut to the terminal's width."""
    from rich.table import Table
    from rich.text import Text

    now = time.time() if now is None else now
    table = Table(box=None, header_style="bold", pad_edge=False, expand=False)
    for name in JOB_COLUMNS:
        if name == "TASK":
            table.add_column(name, no_wrap=True, overflow="ellipsis", ratio=1)
        elif name in ("EXIT", "AGE", "DURATION", "TOKENS"):
            table.add_column(name, justify="right", no_wrap=True)
        else:
            table.add_column(name, no_wrap=True)
    for job in jobs:
        cells: list[str | Text] = list(job_row(job, now, task_width=None))
        cells[0] = Text(job.id, style="bold")
        cells[2] = Text(str(job.state), style=STATE_STYLES.get(str(job.state), ""))
        table.add_row(*cells)
    return table


def print_jobs(jobs: Sequence[Job], *, empty: str = "no jobs") -> None:
    """The jobs table on stdout: rich on a terminal, plain otherwise; ``empty`` on stderr."""
    import click

    if not jobs:
        click.echo(empty, err=True)
    elif is_terminal():
        console().print(rich_jobs(jobs))
    else:
        click.echo(plain_jobs(jobs))


# -------------------------------------------------------------------------- one job in detail

TASK_PREVIEW = 400


def job_fields(job: Job, container: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """The label/value lines of ``luzia status JOB``; ``container``: a docker job's settings."""
    task = job.task
    if len(task) > TASK_PREVIEW:
        task = (
            task[:TASK_PREVIEW]
            + f"... ({len(job.task.encode())} bytes; all of it in {job.job_dir}/task.txt)"
        )
    fields = [
        ("id", job.id),
        ("state", str(job.state)),
        ("exit code", exit_text(job)),
        ("message", job.message or "-"),
        ("project", job.project or "-"),
        ("task", task),
        ("backend", job.backend),
        ("mode", job.mode),
        ("agent", job.agent or "- (the task is the command)"),
        ("image", job.image or "-"),
        ("workdir", str(job.workdir)),
        ("container", job.container_id or "-"),
        ("tmux", job.tmux_target or "-"),
        ("created", format_time(job.created_at)),
        ("started", format_time(job.started_at)),
        ("finished", format_time(job.finished_at)),
        ("duration", format_span(job.duration)),
        ("log", str(job.log_path)),
    ]
    if job.env:
        shown = sorted(shown_env(job.env).items())
        fields.append(("env", " ".join(f"{k}={v}" for k, v in shown)))
    if container is not None:
        if "node" in container:  # a swarm job: the node its task runs on
            fields.append(("node", str(container["node"] or "-")))
        fields.append(("network", str(container["network"])))
        if "mounts" in container:
            fields.append(("mounts", ", ".join(container["mounts"]) or "-"))
            fields.append(("memory", str(container["memory"] or "-")))
            cpus = container["cpus"]
            fields.append(("cpus", f"{cpus:g}" if cpus is not None else "no limit"))
            fields.append(("pids", str(container["pids"] or "-")))
            fields.append(("user", str(container["user"] or "-")))
    if job.usage:
        fields.append(("usage", usage_text(job.usage)))
    return fields


def usage_text(usage: Mapping[str, float]) -> str:
    """What an agent reported it used, e.g. ``1200 tokens in, 85 out, $0.0042``."""
    parts = []
    if "input_tokens" in usage:
        parts.append(f"{int(usage['input_tokens'])} tokens in")
    if "output_tokens" in usage:
        parts.append(f"{int(usage['output_tokens'])} out")
    if "cost_usd" in usage:
        parts.append(f"${usage['cost_usd']:.4f}")
    return ", ".join(parts) or "-"


def short_usage(usage: Mapping[str, float]) -> str:
    """Tokens in/out (and cost) in a table cell: ``12.3k/850 $0.04``; ``-`` for none.

    >>> short_usage({"input_tokens": 12345, "output_tokens": 850, "cost_usd": 0.0412})
    '12.3k/850 $0.04'
    """
    if not usage:
        return "-"
    cell = "/".join(_count(usage.get(key, 0)) for key in ("input_tokens", "output_tokens"))
    if "cost_usd" in usage:
        cell += f" ${usage['cost_usd']:.2f}"
    return cell


def _count(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return str(int(value))


def event_line(event: JobEvent) -> str:
    line = f"{format_time(event.at)}  {event.state.value:<9}  {event.reason}"
    if event.usage:
        line += f"  [{usage_text(event.usage)}]"
    return line


def plain_job(
    job: Job, events: Sequence[JobEvent], container: Mapping[str, Any] | None = None
) -> str:
    fields = job_fields(job, container)
    width = max(len(label) for label, _ in fields) + 1
    lines = [f"{label + ':':<{width}} {value}" for label, value in fields]
    lines.append("events:")
    lines.extend(f"  {event_line(event)}" for event in events)
    return "\n".join(lines)


def rich_job(
    job: Job, events: Sequence[JobEvent], container: Mapping[str, Any] | None = None
) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    details = Table.grid(padding=(0, 2))
    details.add_column(style="bold", no_wrap=True)
    details.add_column(overflow="fold")
    for label, value in job_fields(job, container):
        style = STATE_STYLES.get(value, "") if label == "state" else ""
        details.add_row(label, Text(value, style=style))
    history = Table(box=None, header_style="bold", pad_edge=False, title_justify="left")
    history.add_column("TIME", no_wrap=True)
    history.add_column("STATE", no_wrap=True)
    history.add_column("REASON", overflow="fold")
    for event in events:
        state = event.state.value
        history.add_row(format_time(event.at), Text(state, style=STATE_STYLES[state]), event.reason)
    return Group(details, Text(""), history)


def print_job(
    job: Job, events: Sequence[JobEvent], container: Mapping[str, Any] | None = None
) -> None:
    import click

    if is_terminal():
        console().print(rich_job(job, events, container))
    else:
        click.echo(plain_job(job, events, container))


# -------------------------------------------------------------------------- live line


@contextmanager
def live_line(
    text: Callable[[], str], *, stderr: bool = True
) -> Iterator[Callable[[str, bool], None]]:
    """Show ``text()`` as one line that refreshes in place while the block runs.

    Yields ``emit(line, err)``, which prints a line on stdout (or stderr) above the live one.
    The live line is drawn only on a terminal; ``emit`` to a pipe or file writes plain lines
    there, untouched by the live line.
    """
    import click

    live_stream = sys.stderr if stderr else sys.stdout

    def plain(line: str, err: bool = False) -> None:
        click.echo(line, err=err)

    if not is_terminal(live_stream):
        yield plain
        return
    from rich.live import Live
    from rich.spinner import Spinner

    spinner = Spinner("dots", text=text(), style="cyan")

    def render() -> RenderableType:
        spinner.update(text=text())
        return spinner

    out = console(stderr=stderr)
    with Live(
        get_renderable=render,
        console=out,
        refresh_per_second=8,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as live:

        def emit(line: str, err: bool = False) -> None:
            if is_terminal(sys.stderr if err else sys.stdout):
                live.console.print(line, markup=False, highlight=False)
            else:
                plain(line, err)

        yield emit
