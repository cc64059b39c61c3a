"""``luzia list``: the projects the config defines."""

from __future__ import annotations

from typing import Any

import click

from luzia.cli.app import App, json_option, pass_app


@click.command("list")
@json_option
@pass_app
def list_projects(app: App, as_json: bool) -> None:
    """List the configured projects: name, path, agent and backend.

    Values are what a job gets: the project's own, else the config's [defaults].
    Projects live in the config file (see `luzia --help` for where).
    """
    from luzia.jobenv import recorded_env, shown_env
    from luzia.render import is_terminal, plain_table, to_json

    config = app.config()
    projects: list[dict[str, Any]] = [
        {
            "name": project.name,
            "path": str(project.path),
            "agent": project.agent,
            "backend": project.backend or config.defaults.backend,
            "image": project.image or config.defaults.image,
            "max_concurrent": project.max_concurrent or config.defaults.max_per_project,
            "env": shown_env(recorded_env(project.env, config.secret_patterns(project.name))),
        }
        for project in sorted(config.projects.values(), key=lambda p: p.name)
    ]
    if as_json:
        click.echo(to_json(projects))
        return
    if not projects:
        from luzia.paths import config_path

        where = config.path or config_path()
        click.echo(f"no projects; add [projects.NAME] tables to {where}", err=True)
        return
    header = ("NAME", "BACKEND", "PATH", "AGENT")
    rows = [
        (p["name"], p["backend"], p["path"], p["agent"] or "- (the task is the command)")
        for p in projects
    ]
    if is_terminal():
        from rich.table import Table

        from luzia.render import console

        table = Table(box=None, header_style="bold", pad_edge=False)
        for name in header:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console().print(table)
    else:
        click.echo(plain_table(header, rows))
