"""``luzia doctor``: check tmux, Docker, the agent image, the jobs' network, the store, the config
and the engine."""

from __future__ import annotations

import click

from luzia.cli.app import App, json_option, pass_app

MARKS = {"ok": "ok", "warn": "warn", "fail": "FAIL"}
COLOURS = {"ok": "green", "warn": "yellow", "fail": "red"}


@click.command()
@json_option
@pass_app
def doctor(app: App, as_json: bool) -> None:
    """Check what luzia needs and say how to fix what is missing.

    Each check is ok, warn (luzia works, with less) or fail. Exits 1 if any check fails.
    """
    from luzia.doctor import failed, run_checks
    from luzia.render import to_json, use_color

    checks = run_checks(app.home, app.config_file)
    if as_json:
        data = {"ok": not failed(checks), "checks": [check.to_dict() for check in checks]}
        click.echo(to_json(data))
    else:
        color = use_color()
        width = max(len(check.name) for check in checks)
        for check in checks:
            mark = f"{MARKS[check.status]:<4}"
            if color:
                mark = click.style(mark, fg=COLOURS[check.status], bold=check.status != "ok")
            click.echo(f"{mark}  {check.name:<{width}}  {check.detail}", color=color)
            if check.fix:
                click.echo(f"{'':<4}  {'':<{width}}  fix: {check.fix}")
    if failed(checks):
        click.get_current_context().exit(1)
