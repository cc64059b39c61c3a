"""``luzia send``: type text, or press keys, in a running job's pane."""

from __future__ import annotations

import sys

import click

from luzia.cli.app import App, pass_app
from luzia.errors import UsageError

KEYS = {
    "Enter": "\r",
    "Escape": "\x1b",
    "Tab": "\t",
    "Space": " ",
    "BSpace": "\x7f",
    "Up": "\x1b[A",
    "Down": "\x1b[B",
    "Right": "\x1b[C",
    "Left": "\x1b[D",
    "Home": "\x1b[H",
    "End": "\x1b[F",
    "PageUp": "\x1b[5~",
    "PageDown": "\x1b[6~",
    "C-c": "\x03",
    "C-d": "\x04",
}
"""Keys by tmux's names: what a terminal sends for each. Agents' menus (Claude Code's trust
dialog) take arrows and Enter, not digits."""


def _key(name: str) -> str:
    for known, sequence in KEYS.items():
        if name.lower() == known.lower():
            return sequence
    raise UsageError(f"--key: unknown key {name!r}: one of {', '.join(KEYS)}")


@click.command()
@click.argument("job_id", metavar="JOB")
@click.argument("text", required=False)
@click.option("--no-enter", is_flag=True, help="Do not press Enter after the text.")
@click.option(
    "-k",
    "--key",
    "keys",
    multiple=True,
    metavar="KEY",
    help=f"Press KEY instead of typing text (repeatable, in order): {', '.join(KEYS)}. "
    "E.g. --key Down --key Enter picks the second entry of a menu.",
)
@pass_app
def send(app: App, job_id: str, text: str | None, no_enter: bool, keys: tuple[str, ...]) -> None:
    """Type TEXT into JOB's pane, then press Enter (`-` reads TEXT from stdin, less one
    final newline); or press the keys given with --key.

    For an agent waiting at its prompt or asking a question, or a command reading its input.
    Prints nothing.
    """
    if keys:
        if text is not None:
            raise UsageError("give TEXT or --key, not both")
        sequences = [_key(k) for k in keys]
        dispatcher = app.dispatcher()
        for sequence in sequences:  # one at a time: a TUI may read a burst as one odd key
            dispatcher.send_input(job_id, sequence, enter=False)
        return
    if text is None:
        raise UsageError("missing TEXT (or --key KEY)")
    if text == "-":
        text = sys.stdin.read().removesuffix("\n")
    app.dispatcher().send_input(job_id, text, enter=not no_enter)
