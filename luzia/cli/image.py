"""``luzia image build`` and ``image ls``: the agent images jobs run in, built offline (with the
host's agents) or from the Dockerfile."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import click

from luzia.cli.app import App, json_option, pass_app


@click.group()
def image() -> None:
    """Build the container image that docker jobs run in."""


@image.command()
@click.option(
    "-t",
    "--tag",
    metavar="TAG",
    help="The image tag. Default: defaults.image from the config (luzia-agent:latest).",
)
@click.option(
    "--method",
    type=click.Choice(["auto", "offline", "dockerfile"]),
    default="auto",
    show_default=True,
    help="offline: assemble it from this host's binaries (no registry needed); dockerfile: "
    "docker build containers/agent; auto: the Dockerfile if its base image is here, else "
    "offline.",
)
@click.option(
    "--agent",
    "agents",
    multiple=True,
    metavar="NAME[=PATH]",
    help="Add an agent from this host: claude, codex or aider (repeatable). Without =PATH the "
    "program of that name on PATH; aider must be a virtualenv's script. Offline only.",
)
@json_option
@pass_app
def build(app: App, tag: str | None, method: str, agents: tuple[str, ...], as_json: bool) -> None:
    """Build (or rebuild) the agent image: tmux, bash, git, coreutils, a non-root user, and
    the agents asked for (each checked to run in the image)."""
    from controllers.image import build_agent_image
    from luzia.render import live_line, to_json

    tag = tag or app.config().defaults.image
    what = f"{tag} ({method}{', ' + ', '.join(agents) if agents else ''})"
    with live_line(lambda: f"building {what}", stderr=True):
        result = build_agent_image(tag, method=method, agents=agents)
    click.echo(to_json(dataclasses.asdict(result)) if as_json else result.summary())


@image.command()
@click.argument("registry", required=False)
@click.option(
    "-t",
    "--tag",
    metavar="TAG",
    help="The image to push. Default: defaults.image from the config (luzia-agent:latest).",
)
@json_option
@pass_app
def push(app: App, registry: str | None, tag: str | None, as_json: bool) -> None:
    """Push the agent image to REGISTRY (host:port; default: [swarm] registry from the config),
    so every node of a swarm can pull it (backend = "swarm", docs/swarm.md)."""
    from controllers.image.push import push_agent_image
    from luzia.errors import UsageError
    from luzia.render import live_line, to_json

    config = app.config()
    registry = registry or config.swarm.registry
    if not registry:
        raise UsageError("name the registry (luzia image push HOST:PORT) or set [swarm] registry")
    tag = tag or config.defaults.image
    with live_line(lambda: f"pushing {tag} to {registry}", stderr=True):
        pushed = push_agent_image(tag, registry)
    click.echo(to_json({"image": tag, "pushed": pushed}) if as_json else pushed)


@image.command(name="ls")
@json_option
def list_images(as_json: bool) -> None:
    """List luzia's agent images: tag, id, size, age, how built, which agents."""
    from controllers.image import agent_images
    from luzia.render import plain_table, to_json

    images = agent_images()
    if as_json:
        click.echo(to_json([dataclasses.asdict(image) for image in images]))
        return
    if not images:
        click.echo("no luzia images; build one with `luzia image build`", err=True)
        return
    rows: list[Any] = [
        (
            ", ".join(image.tags) or "<none>",
            image.image_id.removeprefix("sha256:")[:12],
            f"{image.size_bytes / 1e6:.0f} MB",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(image.created)),
            image.method,
            " ".join(f"{name}={version}" for name, version in image.agents.items()) or "-",
        )
        for image in images
    ]
    click.echo(plain_table(("TAG", "ID", "SIZE", "CREATED", "METHOD", "AGENTS"), rows))
