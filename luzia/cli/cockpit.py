"""``luzia cockpit`` (``luzia top``): every job at a glance, live; ``--web`` serves it to a
browser."""

from __future__ import annotations

import click

from luzia.cli.app import App, pass_app


@click.command()
@click.option("--web", is_flag=True, help="Serve the cockpit to a browser instead (textual-serve).")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="With --web: the address to listen on (0.0.0.0: every network, e.g. for a phone).",
)
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="With --web."
)
@click.option(
    "--naive-poll",
    type=float,
    hidden=True,
    help="Benchmark baseline: re-read everything every this many seconds instead of following.",
)
@pass_app
def cockpit(app: App, web: bool, host: str, port: int, naive_poll: float | None) -> None:
    """Every job of this home, live: waiting for a person first, then working, idle, queued,
    finished; the selected job's pane below it.

    Keys: Enter attach (C-b d comes back), s send a line, y/n answer a question, k kill,
    d diff, l log, c commit, r revert, / filter, ? help, q quit.
    With --web it prints a URL with a token; open it in a browser.
    """
    from luzia.errors import LuziaError

    if web:
        from luzia.cockpit.web import CockpitServer, cockpit_command, new_token

        _check_free(host, port)
        server = CockpitServer(cockpit_command(app.home, app.config_file), host, port, new_token())
        click.echo(f"luzia cockpit on {server.url()}", err=False)
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(
                f"listening on {host}: anyone who has the URL (its token) can act on your jobs",
                err=True,
            )
        try:
            server.serve()
        except OSError as exc:
            raise LuziaError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from exc
        return
    import sys

    if not (sys.stdin.isatty() and sys.stdout.isatty()) and not _web_driver():
        raise LuziaError("the cockpit needs a terminal; `luzia jobs` or `luzia events -f` print")
    from luzia.cockpit.app import Cockpit

    Cockpit(app.home, app.config(), naive_poll=naive_poll).run()


def _check_free(host: str, port: int) -> None:
    """Refuse a taken address before printing a URL that would not work."""
    import socket

    from luzia.errors import LuziaError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise LuziaError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise LuziaError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from exc


def _web_driver() -> bool:
    """textual-serve runs the cockpit with pipes and its own driver."""
    import os

    return "TEXTUAL_DRIVER" in os.environ
