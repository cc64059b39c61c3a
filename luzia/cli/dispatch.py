"""``luzia dispatch``: record a task as a job, print its id, make sure an engine will run it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from luzia.cli.app import App, json_option, pass_app
from luzia.container_settings import check_cpus, check_pids
from luzia.errors import UsageError
from luzia.jobenv import check_name


def job_env(items: tuple[str, ...], files: tuple[Path, ...]) -> dict[str, str]:
    """The job's variables from ``--env-file`` files, then ``-e`` (later ones win).

    ``NAME=VALUE`` sets a value (maybe empty); a bare ``NAME`` takes this process's value, and
    is an error when it has none: a secret silently missing is worse than a clear refusal.
    """
    env: dict[str, str] = {}
    for file in files:
        for number, line in enumerate(_env_file_lines(file), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                _set(env, line.lstrip(), f"{file} line {number}")
    for item in items:
        _set(env, item, "-e")
    return env


def _env_file_lines(file: Path) -> list[str]:
    """The lines of an ``--env-file`` (docker's format: ``NAME=VALUE`` or ``NAME``, ``#``
    comments, values taken literally)."""
    try:
        return file.read_bytes().decode("utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"--env-file {file}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"--env-file {file}: not UTF-8 text (byte {exc.start})") from None


def _set(env: dict[str, str], item: str, where: str) -> None:
    name, sep, value = item.partition("=")
    try:
        check_name(name)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    if not sep:
        if name not in os.environ:
            raise UsageError(f"{where}: {name} is not set here; give {name}=VALUE")
        value = os.environ[name]
    env[name] = value


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
    type=click.Choice(["auto", "docker", "local", "swarm"]),
    help="Where the job runs: a container of its own (docker), host tmux (local), a one-task "
    "service of a Docker Swarm (swarm: docs/swarm.md), or docker when a Docker Engine is "
    "reachable (auto). Default: the project's, else defaults.backend.",
)
@click.option("--image", metavar="IMAGE", help="The container image. Default: the config's.")
@click.option(
    "--agent",
    metavar="AGENT",
    help="An agent profile (claude, codex, aider, or an [agents.NAME] of the config), or a "
    "command template where {task} becomes the shell-quoted task, e.g. 'mytool {task}'. "
    "Default: the project's; unset, the task itself is a shell command.",
)
@click.option(
    "--mode",
    type=click.Choice(["command", "interactive"]),
    default=None,
    help="interactive: the agent at its prompt, the task pasted in, follow-ups with `luzia send`; "
    "command: one run (e.g. claude -p), the job ends with it and takes the agent's own verdict. "
    'Default: what the agent is (a profile with delivery = "prompt" is interactive).',
)
@click.option(
    "-e",
    "--env",
    "env",
    multiple=True,
    metavar="NAME[=VALUE]",
    help="An environment variable for the job (repeatable; over the project's); a bare NAME "
    "takes its value from this shell. Values reach the job through a file only it can read; "
    "secret ones (*_KEY, *_TOKEN, *SECRET*, *PASSWORD*) show as NAME=***.",
)
@click.option(
    "--env-file",
    "env_files",
    multiple=True,
    type=click.Path(path_type=Path),  # checked when read: one line, exit 2, nothing recorded
    metavar="FILE",
    help="Variables from FILE: NAME=VALUE or NAME lines, # comments (repeatable; -e wins).",
)
@click.option(
    "--network",
    metavar="NAME",
    help="The container's network: bridge, none, host or a Docker network's name. Default: the "
    "project's, else luzia's own (jobs cannot reach each other). Docker jobs only.",
)
@click.option(
    "--mount",
    "mounts",
    multiple=True,
    metavar="SRC:DST[:ro]",
    help="Bind host path SRC (must exist) at DST in the container, read-only with :ro "
    "(repeatable; added to the project's, replacing one at the same DST). DST is absolute and "
    "not under /workspace, /luzia/job or /home/agent. Docker jobs only.",
)
@click.option(
    "--memory",
    metavar="SIZE",
    help='The container\'s memory limit, e.g. "512m", "2g". Default: the project\'s, else 2g. '
    "Docker jobs only.",
)
@click.option(
    "--cpus",
    metavar="N",
    help="The CPUs the container may use, e.g. 1.5. Default: the project's, else no limit. "
    "Docker jobs only.",
)
@click.option(
    "--pids",
    metavar="N",
    help="The most processes the container may hold at once. Default: the project's, else 512. "
    "Docker jobs only.",
)
@click.option(
    "--user",
    metavar="UID[:GID]",
    help="The user the job runs as in its container, e.g. 1000:1000. Default: the project's, "
    "else the workspace's owner. Docker jobs only.",
)
@click.option(
    "--retries",
    metavar="N",
    help="Run the job again elsewhere, up to N times, when the node it runs on is lost "
    "(each attempt from the start). Default: [swarm] retries, else 0: never. Swarm jobs only.",
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
    env: tuple[str, ...],
    env_files: tuple[Path, ...],
    network: str | None,
    mounts: tuple[str, ...],
    memory: str | None,
    cpus: str | None,
    pids: str | None,
    user: str | None,
    retries: str | None,
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
    from luzia.dispatcher import check_retries

    variables = job_env(env, env_files)
    dispatcher = app.dispatcher()
    job_id = dispatcher.dispatch_task(
        read_task(task),
        project,
        backend=backend,
        image=image,
        workdir=workdir,
        agent=agent,
        mode=mode,
        env=variables or None,
        network=network,
        mounts=mounts,
        memory=memory,
        cpus=None if cpus is None else check_cpus(cpus),
        pids=None if pids is None else check_pids(pids),
        user=user,
        retries=None if retries is None else check_retries(retries),
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
