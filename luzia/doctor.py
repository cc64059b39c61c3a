"""``luzia doctor``: is everything luzia needs here, and if not, what to do about it.

Each check is independent and returns a ``Check``: ``ok``, ``warn`` (luzia works, with less)
or ``fail`` (something will not work), a one-line detail and, unless ok, a one-line fix.
A check never raises: a broken config, a missing Docker Engine or an unwritable home are what
it is there to report. Nothing is changed on the way, except that the job store's directory
is written to (and cleaned up) to prove it is writable.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from controllers.docker_engine import first_line

if TYPE_CHECKING:
    import docker

    from luzia.config import Config

Status = Literal["ok", "warn", "fail"]

MIN_TMUX = (3, 0)
"""Control mode with ``%begin``/``%end`` framing and ``pipe-pane -O`` as the controllers use it."""

_PROBE_SECONDS = 5.0


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def run_checks(home: Path, config_file: Path | None = None) -> list[Check]:
    """Every check, in the order a person would fix things."""
    config, config_check = check_config(config_file)
    backends = _backends(config)
    checks = [check_tmux(), check_docker_cli()]
    client, engine_check = check_docker_engine(needed="docker" in backends)
    checks.append(engine_check)
    checks.extend(check_images(client, config, needed="docker" in backends))
    checks.extend(check_agents(client, config))
    checks.extend(check_networks(client, config))
    checks.extend(check_swarm(config))
    checks += [check_home(home), check_sockets(), check_store(home), config_check]
    checks.extend(check_project_paths(config))
    checks.append(check_engine(home))
    return checks


def failed(checks: list[Check]) -> bool:
    return any(check.status == "fail" for check in checks)


def _backends(config: Config | None) -> set[str]:
    """The backends jobs may ask for under this config (``auto`` counts as wanting docker)."""
    if config is None:
        return {"auto"}
    return {config.defaults.backend} | {
        project.backend for project in config.projects.values() if project.backend
    }


# -------------------------------------------------------------------------- host tools


def _run(argv: list[str]) -> str | None:
    """The program's stdout (stripped), or ``None`` if it cannot be run or fails."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_PROBE_SECONDS, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def parse_tmux_version(text: str) -> tuple[int, int] | None:
    """``tmux 3.3a`` -> ``(3, 3)``; ``tmux next-3.4`` -> ``(3, 4)``.

    >>> parse_tmux_version("tmux 3.3a"), parse_tmux_version("tmux master")
    ((3, 3), None)
    """
    match = re.search(r"(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_tmux() -> Check:
    name = "tmux"
    path = shutil.which("tmux")
    if path is None:
        return Check(
            name,
            "fail",
            "tmux is not installed",
            "install it (apt-get install tmux); local jobs and the offline image build need it",
        )
    version_text = _run([path, "-V"]) or "an unknown version"
    version = parse_tmux_version(version_text)
    if version is not None and version < MIN_TMUX:
        wanted = ".".join(map(str, MIN_TMUX))
        return Check(name, "fail", f"{version_text} at {path}", f"install tmux {wanted} or newer")
    return Check(name, "ok", f"{version_text} at {path}")


def check_docker_cli() -> Check:
    name = "docker CLI"
    path = shutil.which("docker")
    if path is None:
        return Check(
            name,
            "warn",
            "the docker command is not installed",
            "install it (apt-get install docker.io) to `luzia attach` to container jobs",
        )
    version = _run([path, "--version"]) or "an unknown version"
    return Check(name, "ok", f"{version} at {path}")


def check_docker_engine(needed: bool) -> tuple[docker.DockerClient | None, Check]:
    """The client when the engine answers; ``fail`` if the config asks for docker outright."""
    name = "Docker Engine"
    try:
        from controllers.docker_engine import docker_client
        from controllers.errors import ControllerError

        client = docker_client()
        version = client.version().get("Version", "unknown version")
    except ControllerError as exc:
        return None, Check(
            name,
            "fail" if needed else "warn",
            first_line(exc),
            "start the Docker Engine, or point DOCKER_HOST at it"
            + ("" if needed else "; until then, jobs run on the local backend"),
        )
    except Exception as exc:  # the SDK's own errors, when docker_client let one through
        return None, Check(
            name,
            "fail" if needed else "warn",
            f"cannot reach it: {first_line(exc)}",
            "start the Docker Engine, or point DOCKER_HOST at it",
        )
    host = os.environ.get("DOCKER_HOST", "the default socket")
    return client, Check(name, "ok", f"Docker Engine {version} via {host}")


def check_images(
    client: docker.DockerClient | None, config: Config | None, needed: bool
) -> list[Check]:
    """One check per image that docker jobs may use (the default and the projects' own)."""
    images = {config.defaults.image if config else _default_image()}
    if config is not None:
        images |= {
            project.image
            for project in config.projects.values()
            if project.image and project.backend != "local"
        }
    from luzia.agent_check import build_command

    wanted: dict[str, set[str]] = {}
    for agent, backend, tag in agent_uses(config):
        if backend != "local":
            wanted.setdefault(tag, set()).add(agent)
    checks = []
    for tag in sorted(images):
        name = f"image {tag}"
        if client is None:
            checks.append(Check(name, "warn", "not checked: no Docker Engine", None))
            continue
        try:
            from controllers.image import image_exists

            present = image_exists(tag, client)
        except Exception as exc:
            checks.append(Check(name, "warn", f"cannot inspect it: {first_line(exc)}", None))
            continue
        if present:
            checks.append(Check(name, "ok", "present"))
        else:
            checks.append(
                Check(
                    name,
                    "fail" if needed else "warn",
                    "not built",
                    build_command(tag, wanted.get(tag, ())),
                )
            )
    return checks


def agent_uses(config: Config | None) -> list[tuple[str, str, str]]:
    """(agent, backend, image) for each configured agent that is Claude Code, Codex or aider:
    the projects' ``agent``, and ``[agents.NAME]`` profiles (as a job of the defaults runs them)."""
    from luzia.agent_check import needed_agent

    if config is None:
        return []
    defaults = config.defaults
    uses = []
    for project in sorted(config.projects.values(), key=lambda p: p.name):
        if project.agent:
            agent = needed_agent(project.agent, config.agent_profile(project.agent))
            if agent is not None:
                backend = project.backend or defaults.backend
                uses.append((agent, backend, project.image or defaults.image))
    for profile in config.agents.values():
        agent = needed_agent(None, profile)
        if agent is not None:
            uses.append((agent, defaults.backend, defaults.image))
    return sorted(set(uses))


def check_agents(client: docker.DockerClient | None, config: Config | None) -> list[Check]:
    """Each configured agent where its jobs run: in its image's labels (docker, or auto with an
    engine), else on PATH; the fix is the exact ``luzia image build --agent`` line."""
    from luzia.agent_check import INSTALL, image_problem

    checks: list[Check] = []
    seen: set[tuple[str, str]] = set()
    for agent, backend, tag in agent_uses(config):
        docker_job = backend == "docker" or (backend == "auto" and client is not None)
        where = tag if docker_job else "local"
        if (agent, where) in seen:
            continue
        seen.add((agent, where))
        name = f"agent {agent} ({'image ' + tag if docker_job else 'local'})"
        if not docker_job:
            path = shutil.which(agent)
            if path is None:
                checks.append(Check(name, "fail", f"{agent} is not on PATH", INSTALL[agent]))
            else:
                checks.append(Check(name, "ok", f"{agent} at {path}"))
            continue
        if client is None:
            checks.append(Check(name, "warn", "not checked: no Docker Engine", None))
            continue
        try:
            from controllers.image import image_labels
            from controllers.image.agents import agents_in

            labels = image_labels(tag, client)
        except Exception as exc:
            checks.append(Check(name, "warn", f"cannot inspect {tag}: {first_line(exc)}", None))
            continue
        problem = image_problem(labels, tag, agent)
        version = agents_in(labels).get(agent)
        if problem is not None:
            checks.append(Check(name, "fail", problem[0], problem[1]))
        elif version:
            checks.append(Check(name, "ok", f"{agent} {version} in {tag}"))
        else:
            checks.append(Check(name, "warn", f"{tag} was not built by luzia: not checked", None))
    return checks


def check_networks(client: docker.DockerClient | None, config: Config | None) -> list[Check]:
    """The network docker jobs get by default, then each project's own: does it exist, and can
    jobs on it reach each other's containers."""
    from luzia.network import describe, managed_network

    default = (config.defaults.network if config else None) or managed_network()
    names = [default]
    if config is not None:
        for project in sorted(config.projects.values(), key=lambda p: p.name):
            if project.network and project.backend != "local" and project.network not in names:
                names.append(project.network)
    checks = []
    for network in names:
        name = f"network {network}" + (" (default)" if network == default else "")
        if client is None:
            checks.append(Check(name, "warn", "not checked: no Docker Engine", None))
            continue
        try:
            state = describe(client, network)
        except Exception as exc:
            checks.append(Check(name, "warn", f"cannot inspect it: {first_line(exc)}", None))
            continue
        checks.append(Check(name, state.status, state.detail, state.fix))
    return checks


def check_swarm(config: Config | None) -> list[Check]:
    """When swarm jobs may run: the manager, every swarm node (can luzia drive a job placed
    there?), and the image every node pulls. Nothing when the config has no swarm."""
    if config is None:
        return []
    settings = config.swarm
    wanted = "swarm" in _backends(config) or settings.nodes or settings.manager
    if not wanted:
        return []
    from luzia.swarm import SwarmBackend

    where = settings.manager or os.environ.get("DOCKER_HOST", "the default socket")
    backend = SwarmBackend(settings, config)
    try:
        manager = backend.manager
        swarm = manager.info().get("Swarm") or {}
    except Exception as exc:
        fix = "start it, or set [swarm] manager to a manager's endpoint"
        return [Check("swarm manager", "fail", f"{where}: {first_line(exc)}", fix)]
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        fix = "docker swarm init there, or set [swarm] manager to a manager's endpoint"
        return [Check("swarm manager", "fail", f"{where} is not a swarm manager", fix)]
    nodes = manager.nodes.list()
    ready = sum(1 for n in nodes if n.attrs.get("Status", {}).get("State") == "ready")
    checks = [Check("swarm manager", "ok", f"{where}: {len(nodes)} nodes, {ready} ready")]
    endpoints, silent = backend.endpoints()  # as the backend matches them when it drives jobs
    for name, why in sorted(silent.items()):
        detail = f"{settings.nodes[name]} does not answer: {why}"
        checks.append(Check(f"swarm endpoint {name}", "warn", detail, None))
    reached = {node_id: f"{n.name} ({n.endpoint})" for node_id, n in endpoints.items()}
    for node in sorted(nodes, key=lambda n: str(n.attrs["Description"].get("Hostname", ""))):
        hostname = str(node.attrs["Description"].get("Hostname", node.id[:12]))
        state = node.attrs.get("Status", {}).get("State")
        label = f"swarm node {hostname}"
        if state != "ready":
            checks.append(Check(label, "warn", f"{state}: swarm places no job there", None))
        elif node.id in reached:
            checks.append(Check(label, "ok", f"ready, driven through {reached[node.id]}"))
        else:
            fix = f'add {hostname} = "tcp://HOST:2376" (or "ssh://USER@HOST") to [swarm.nodes]'
            checks.append(
                Check(
                    label,
                    "fail",
                    "ready, but no [swarm.nodes] endpoint reaches it: a job placed there "
                    "cannot be driven",
                    fix,
                )
            )
    checks.append(_swarm_image(manager, settings.registry))
    return checks


def _swarm_image(manager: docker.DockerClient, registry: str | None) -> Check:
    """Whether the image swarm jobs run is where every node pulls it from."""
    from controllers.image import DEFAULT_IMAGE
    from controllers.image.push import registry_name

    if not registry:
        detail = f"no [swarm] registry: every node must hold {DEFAULT_IMAGE} already"
        return Check("swarm image", "warn", detail, "set [swarm] registry, then luzia image push")
    image = registry_name(DEFAULT_IMAGE, registry)
    try:
        digest = manager.images.get_registry_data(image).id
    except Exception as exc:
        why = getattr(exc, "explanation", None) or first_line(exc)  # the registry's words
        detail = f"{image} is not in the registry, as the manager sees it: {why}"
        return Check("swarm image", "fail", detail, "luzia image push")
    return Check("swarm image", "ok", f"{image} in the registry ({digest[:19]})")


def _default_image() -> str:
    from luzia.config import Defaults

    return Defaults().image


# -------------------------------------------------------------------------- luzia's own state


def check_home(home: Path) -> Check:
    """Writable: create (and remove) a file in it, or in the nearest directory that exists."""
    name = "LUZIA_HOME"
    fix = "point --home or LUZIA_HOME at a writable directory"
    probe_dir = home
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        return Check(name, "fail", f"{home}: {probe_dir} is a file, not a directory", fix)
    try:
        with tempfile.TemporaryFile(dir=probe_dir, prefix=".luzia-doctor-"):
            pass
    except OSError as exc:
        return Check(name, "fail", f"{home}: {probe_dir} is not writable ({exc.strerror})", fix)
    if probe_dir != home:
        return Check(name, "ok", f"{home} (created on first use, mode 0700)")
    from luzia.paths import home_warning

    warning = home_warning(home)
    if warning:
        return Check(name, "warn", warning.removeprefix("warning: "), f"chmod 700 {home}")
    return Check(name, "ok", f"{home} is writable and private")


def check_sockets() -> Check:
    """The directory for the engine's and the local jobs' sockets is ours alone."""
    from luzia.paths import UnsafeRuntimeDir, runtime_dir

    try:
        path = runtime_dir()
    except UnsafeRuntimeDir as exc:
        return Check("sockets", "fail", str(exc), "remove it, or set XDG_RUNTIME_DIR")
    return Check("sockets", "ok", f"{path} is private")


def check_store(home: Path) -> Check:
    """The job store opens and answers, if there is one yet."""
    name = "job store"
    from luzia.paths import db_path

    if not db_path(home).exists():
        return Check(name, "ok", "no jobs yet (created on the first dispatch)")
    try:
        from luzia.errors import LuziaError
        from luzia.store import JobStore

        with JobStore(home) as store:
            count = len(store.list())
    except LuziaError as exc:
        return Check(
            name, "fail", str(exc), f"move {db_path(home)} aside; luzia starts a new store"
        )
    return Check(name, "ok", f"{db_path(home)}: {count} job(s)")


def check_config(config_file: Path | None) -> tuple[Config | None, Check]:
    """The config parses; ``None`` in its place when it does not."""
    from luzia.config import Config
    from luzia.errors import ConfigError
    from luzia.paths import config_path

    name = "config"
    try:
        config = Config.load(config_file)
    except ConfigError as exc:
        return None, Check(
            name, "fail", str(exc), "fix that line (format: docs/config.example.toml)"
        )
    if config.path is None:
        where = config_file or config_path()
        return config, Check(name, "ok", f"no file at {where}; built-in defaults")
    count = len(config.projects)
    return config, Check(name, "ok", f"{config.path}: {count} project(s)")


def check_project_paths(config: Config | None) -> list[Check]:
    """Each configured project's workspace exists (a job there would fail otherwise)."""
    if config is None:
        return []
    checks = []
    for project in sorted(config.projects.values(), key=lambda p: p.name):
        name = f"project {project.name}"
        if project.path.is_dir():
            checks.append(Check(name, "ok", str(project.path)))
        else:
            checks.append(
                Check(
                    name,
                    "warn",
                    f"{project.path} is not a directory",
                    f"create it, or fix projects.{project.name}.path in {config.path}",
                )
            )
    return checks


def check_engine(home: Path) -> Check:
    name = "engine"
    from luzia.daemon import engine_status

    try:
        status = engine_status(home)
    except OSError as exc:
        return Check(name, "warn", f"cannot tell: {exc.strerror}", None)
    if status.running:
        return Check(name, "ok", f"running (pid {status.pid})")
    return Check(
        name,
        "warn",
        "not running",
        "nothing to do: `luzia dispatch` starts it; or `luzia daemon start`",
    )
