"""A job's environment: names checked, secret ones told apart, values carried in a private file.

Every user on the machine can read every process's argv (``ps -eo args``), so values never go
on a command line. The dispatcher writes them all to ``jobs/<id>/env`` (mode 0600 from its
creation) and ``run.sh`` loads that file just before the command, then deletes it once the
command has ended. The store keeps the values of ordinary variables, which ``luzia status``
shows, but only the names of secret ones: they show as ``NAME=***``.

A variable is secret when its name matches one of ``DEFAULT_SECRET_PATTERNS`` or a pattern the
config adds (``secret_env`` under ``[defaults]``, a project or an agent profile): shell-style
wildcards, any case.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

from luzia.errors import UsageError
from luzia.paths import write_private
from luzia.proctree import TAG_VAR

ENV_FILE = "env"
"""In the job directory: the job's variables as ``export NAME='value'`` lines for bash."""

MASK = "***"
"""What is shown instead of a secret value."""

DEFAULT_SECRET_PATTERNS: tuple[str, ...] = ("*_KEY", "*_TOKEN", "*SECRET*", "*PASSWORD*")

NAME_RULE = "letters, digits and _, not starting with a digit"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def valid_name(name: object) -> bool:
    """Whether ``name`` is a variable name bash can export."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_name(name: object) -> str:
    """``name`` if it is a valid variable name and not luzia's own, else ``UsageError``."""
    if not valid_name(name):
        raise UsageError(f"env: {name!r} is not a valid variable name ({NAME_RULE})")
    if name == TAG_VAR:
        raise UsageError(f"env: {TAG_VAR} is luzia's own: it marks the job's processes")
    return str(name)


def check_env(env: Mapping[str, str]) -> None:
    """``UsageError`` for a bad name, or a value that is not text or holds a NUL byte."""
    for name, value in env.items():
        check_name(name)
        if not isinstance(value, str):
            raise UsageError(f"env: {name} must be text, not {type(value).__name__}")
        if "\0" in value:
            raise UsageError(f"env: the value of {name} holds a NUL byte, which no variable can")
        try:
            value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as exc:
            problem = f"env: the value of {name} is not valid text (position {exc.start})"
            raise UsageError(problem) from None


def is_secret(name: str, patterns: Iterable[str] = DEFAULT_SECRET_PATTERNS) -> bool:
    """Whether ``name`` matches one of ``patterns`` (fnmatch, any case)."""
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, pattern.upper()) for pattern in patterns)


def forwarded_env(names: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``environ`` (the dispatching caller's) that ``names`` (shell-style
    patterns) select: an agent profile's credentials and endpoints travel this way."""
    names = tuple(names)
    return {
        name: value
        for name, value in environ.items()
        if valid_name(name) and name != TAG_VAR and is_secret(name, names)
    }


def recorded_env(env: Mapping[str, str], patterns: Iterable[str]) -> dict[str, str | None]:
    """What the store keeps: ordinary values, and ``None`` for each secret one."""
    patterns = tuple(patterns)
    return {name: None if is_secret(name, patterns) else value for name, value in env.items()}


def shown_env(env: Mapping[str, str | None]) -> dict[str, str]:
    """The environment as luzia prints and returns it: secret values as ``***``."""
    return {name: MASK if value is None else value for name, value in env.items()}


def env_file(env: Mapping[str, str]) -> bytes:
    """The env file's content: one ``export`` per variable, each value single-quoted, so any
    byte but NUL (newlines, quotes, ``$``) reaches the command as it was given."""
    lines = [f"export {name}={shlex.quote(value)}\n" for name, value in env.items()]
    return "".join(lines).encode("utf-8", "surrogateescape")


def write_env_file(job_dir: Path, env: Mapping[str, str]) -> None:
    """Write the job's env file, readable by its owner alone from the moment it exists."""
    write_private(job_dir / ENV_FILE, env_file(env))


def read_env_file(job_dir: Path) -> dict[str, str]:
    """The variables the job's env file holds (``{}`` once it is gone): what seeding an agent's
    HOME may need, e.g. to approve the API key it is given."""
    try:
        text = (job_dir / ENV_FILE).read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return {}
    words = shlex.split(text)
    pairs = (word.partition("=") for word in words if word != "export")
    return {name: value for name, _, value in pairs}


def remove_env_file(job_dir: Path) -> None:
    """Delete the job's env file: the job has ended, nothing will read it again."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(job_dir / ENV_FILE)
