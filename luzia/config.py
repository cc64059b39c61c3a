"""The luzia configuration file: defaults and projects, in TOML.

Where: ``$LUZIA_CONFIG``, else ``$XDG_CONFIG_HOME/luzia/config.toml``, else
``~/.config/luzia/config.toml``. A missing file at the default place means built-in defaults; a file
named by ``$LUZIA_CONFIG`` (or passed to ``Config.load``) must exist. Every key is optional except a
project's ``path``; unknown keys are errors, so a typo never passes silently. Errors name the file
and line, e.g. ``config.toml line 3: defaults.max_concurrent must be a whole number >= 1``.

Format (``docs/config.example.toml`` is a commented copy)::

    [defaults]
    backend = "auto"              # "auto" (docker when reachable, else local) | "docker" | "local"
    image = "luzia-agent:latest"  # image for docker jobs
    max_concurrent = 4            # jobs running at once, all projects together
    max_per_project = 2           # jobs running at once in any one project (unset: no own limit)
    retention = "7d"              # keep finished jobs' containers this long: seconds or "30m",
                                  # "12h", "7d" (unset: until `luzia rm` / `luzia clean`)
    secret_env = ["MY_*"]         # more names of secret variables, besides *_KEY, *_TOKEN,
                                  # *SECRET*, *PASSWORD* (also per project and agent profile)
    network = "bridge"            # docker jobs' network (unset: luzia's own, jobs isolated)
    mounts = ["~/.cache/pip:/cache/pip:ro"]  # docker jobs: more bind mounts SRC:DST[:ro]
    memory = "2g"                 # docker jobs: memory limit (built in: 2g)
    cpus = 1.5                    # docker jobs: CPUs (unset: no limit)
    pids = 512                    # docker jobs: most processes at once (built in: 512)
    user = "1000:1000"            # docker jobs: the container's user (unset: the workspace's owner)

    [projects.web]
    path = "~/src/web"            # the workspace (mounted at /workspace); relative to this file
    agent = "claude -p {task}"    # command template; {task} becomes the shell-quoted task
                                  # (unset: the task is itself a shell command)
    backend = "docker"            # overrides defaults.backend
    image = "my-agent:1"          # overrides defaults.image
    max_concurrent = 1            # overrides defaults.max_per_project
    commit = "branch"             # opt-in: after a job exits 0, commit the agent's change on a
                                  # branch luzia/<job> ("branch") or the current one ("current")
    network, mounts, memory, cpus, pids, user  # as in [defaults], over them (mounts add up)
    constraints = ["node.labels.gpu==1"]  # swarm jobs: placement constraints, with [swarm]'s

    [swarm]                       # backend = "swarm" (docs/swarm.md)
    manager = "unix:///var/run/docker.sock"  # the manager's engine (unset: DOCKER_HOST's)
    registry = "10.0.0.1:5000"    # where every node pulls job images (`luzia image push`)
    constraints = ["node.role==worker"]      # placement constraints of every swarm job

    [swarm.nodes]                 # node name -> its engine: luzia drives a task's tmux there
    worker1 = "tcp://10.0.0.2:2376"          # TLS from DOCKER_CERT_PATH / DOCKER_TLS_VERIFY
    worker2 = "ssh://luzia@10.0.0.3"

    [projects.web.env]            # environment variables for this project's jobs
    NODE_ENV = "development"

    [agents.claude]               # an agent profile (see luzia.agents); `agent = "claude"` in a
    command = "claude"            # project or `--agent claude` then runs it interactively
    prompt = '(?m)^>\\s'
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from luzia.agents import DELIVERIES, AgentProfile, resolve_profile
from luzia.container_settings import (
    ContainerSettings,
    check_cpus,
    check_memory,
    check_pids,
    check_user,
    parse_mount,
)
from luzia.errors import ConfigError, ProjectNotFound, UsageError
from luzia.jobs import BACKENDS, Backend
from luzia.network import check_name
from luzia.paths import config_path, config_path_is_explicit

if TYPE_CHECKING:
    import tomllib

# Patterns stay strings, compiled (and cached by ``re``) on first use: most runs never need them.
_DURATION = r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$"
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
CONTAINER_KEYS = ("mounts", "memory", "cpus", "pids", "user")


@dataclass(frozen=True, slots=True)
class Defaults:
    """The ``[defaults]`` table."""

    backend: Backend = "auto"
    image: str = "luzia-agent:latest"
    max_concurrent: int = 4
    max_per_project: int | None = None
    retention: float | None = None
    """Seconds to keep a finished job's container; ``None`` keeps it until removed."""
    secret_env: tuple[str, ...] = ()
    """Name patterns of secret variables, besides ``jobenv.DEFAULT_SECRET_PATTERNS``."""
    network: str | None = None
    """The network of docker jobs (``luzia.network``); ``None``: luzia's own."""
    container: ContainerSettings = field(default_factory=ContainerSettings)
    """Docker jobs' mounts, limits and user (``luzia.container_settings``)."""
    on_state: str | None = None
    """A shell command run when a job needs a person or ends (``luzia.notify``)."""


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """One ``[projects.<name>]`` table; ``None`` fields fall back to ``Defaults``."""

    name: str
    path: Path
    agent: str | None = None
    backend: Backend | None = None
    image: str | None = None
    max_concurrent: int | None = None
    network: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    commit: Literal["branch", "current"] | None = None
    """Commit a successful job's change (``luzia.workspace.commit``): on a branch of its own, or
    on the current branch; ``None`` leaves it uncommitted (``luzia diff`` / ``luzia commit``)."""
    secret_env: tuple[str, ...] = ()
    container: ContainerSettings = field(default_factory=ContainerSettings)
    """Over ``Defaults.container`` for this project's docker jobs."""
    on_state: str | None = None
    """Over ``Defaults.on_state`` for this project's jobs."""
    constraints: tuple[str, ...] = ()
    """Swarm placement constraints of this project's swarm jobs, besides ``[swarm]``'s."""


MAX_RETRIES = 10
"""The most times a swarm job may run again after losing its node."""


@dataclass(frozen=True, slots=True)
class SwarmSettings:
    """The ``[swarm]`` table: where the swarm's manager, registry and nodes are (``luzia.swarm``).

    ``nodes``: node name -> Docker endpoint (``unix://``, ``tcp://`` with the environment's TLS
    settings, ``ssh://``, or ``context:NAME``, a Docker CLI context with its own TLS material),
    through which luzia drives the tmux of a task on that node.
    """

    manager: str | None = None
    """The manager's endpoint; ``None``: the Docker Engine the environment points at."""
    registry: str | None = None
    """``host:port`` every node pulls job images from (``luzia image push``)."""
    nodes: Mapping[str, str] = field(default_factory=dict)
    constraints: tuple[str, ...] = ()
    """Placement constraints of every swarm job (``node.labels.gpu==1``)."""
    retries: int = 0
    """How many times a swarm job runs again elsewhere when its node is lost (``--retries``)."""


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration; ``path`` is the file it came from (``None``: built-in defaults)."""

    defaults: Defaults = field(default_factory=Defaults)
    projects: Mapping[str, ProjectConfig] = field(default_factory=dict)
    path: Path | None = None
    agents: Mapping[str, AgentProfile] = field(default_factory=dict)
    swarm: SwarmSettings = field(default_factory=SwarmSettings)

    def agent_profile(self, agent: str | None) -> AgentProfile | None:
        """The profile a job's ``agent`` names (configured, then built in), else ``None``."""
        return resolve_profile(agent, dict(self.agents))

    @classmethod
    def load(cls, path: Path | str | None = None) -> Config:
        """Read ``path``, or the file ``paths.config_path()`` names."""
        explicit = path is not None or config_path_is_explicit()
        file = Path(path).expanduser() if path is not None else config_path()
        try:
            text = file.read_bytes().decode("utf-8")
        except FileNotFoundError as exc:
            if not explicit:
                return cls()
            raise ConfigError(
                f"{file}: no such config file; create it (format: docs/config.example.toml)"
            ) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start})") from exc
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read it: {exc.strerror}") from exc
        return cls.parse(text, file)

    @classmethod
    def parse(cls, text: str, file: Path) -> Config:
        """Parse and check TOML ``text``; ``file`` names it in errors and anchors relative paths."""
        import tomllib  # here, not at the top: most CLI runs have no config file to parse

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(_syntax_message(file, exc)) from exc
        return _Reader(file, text).config(raw)

    def project(self, name: str) -> ProjectConfig:
        """The project called ``name``, or ``ProjectNotFound`` naming the configured ones."""
        try:
            return self.projects[name]
        except KeyError:
            where = str(self.path) if self.path is not None else str(config_path())
            raise ProjectNotFound(name, list(self.projects), where) from None

    def on_state_for(self, project: str | None) -> str | None:
        """The command run when a job of ``project`` needs a person or ends, if any."""
        settings = self.projects.get(project) if project is not None else None
        own = settings.on_state if settings is not None else None
        return own or self.defaults.on_state

    def max_concurrent_for(self, project: str | None) -> int | None:
        """How many jobs of ``project`` may run at once (``None``: only the global limit)."""
        if project is not None and project in self.projects:
            own = self.projects[project].max_concurrent
            if own is not None:
                return own
        return self.defaults.max_per_project

    def secret_patterns(
        self, project: str | None = None, profile: AgentProfile | None = None
    ) -> tuple[str, ...]:
        """The name patterns that make a job's variable secret: the built-in ones, then those
        of ``[defaults]``, of ``project`` and of the agent ``profile``."""
        from luzia.jobenv import DEFAULT_SECRET_PATTERNS

        settings = self.projects.get(project) if project is not None else None
        own = settings.secret_env if settings is not None else ()
        extra = (*profile.secret_env, *profile.forward_env) if profile is not None else ()
        return (*DEFAULT_SECRET_PATTERNS, *self.defaults.secret_env, *own, *extra)


def agent_command(template: str | None, task: str) -> str:
    """The shell command a command-mode job runs: the template with ``{task}`` shell-quoted.

    Plain replacement, not ``str.format``: agent commands may hold other braces (``awk '{...}'``).

    >>> agent_command("claude -p {task}", "fix the bug; then test")
    "claude -p 'fix the bug; then test'"
    >>> agent_command(None, "make test")
    'make test'
    """
    if template is None:
        return task
    return template.replace("{task}", shlex.quote(task))


def _syntax_message(file: Path, exc: tomllib.TOMLDecodeError) -> str:
    match = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(exc))
    if match is None:
        return f"{file}: {exc}"
    problem, line, column = match.groups()
    return f"{file} line {line}, column {column}: {problem}"


_KEY_PART = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER_LINE = rf"^\s*\[\s*({_DOTTED})\s*\]\s*(?:#.*)?$"
_KEY_LINE = rf"^\s*({_DOTTED})\s*="
_PART = r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)"


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(next(g for g in m.groups() if g is not None) for m in re.finditer(_PART, dotted))


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path to the line that sets it: tomllib reports no positions for values.

    A light scan of the TOML (headers, ``key =`` lines, skipping multi-line strings), good enough
    to point a person at the line; when a path is not found, errors fall back to its parent.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_string = False
    for number, line in enumerate(text.splitlines(), start=1):
        quotes = line.count('"""') + line.count("'''")
        if not in_string:
            if header := re.match(_HEADER_LINE, line):
                table = _split_key(header.group(1))
                lines.setdefault(table, number)
            elif key := re.match(_KEY_LINE, line):
                lines.setdefault(table + _split_key(key.group(1)), number)
        if quotes % 2:
            in_string = not in_string
    return lines


class _Reader:
    """Validates the parsed TOML into ``Config``; every error names the file, line and key."""

    def __init__(self, file: Path, text: str) -> None:
        self.file = file
        self.lines = _key_lines(text)

    def error(self, keys: tuple[str, ...], problem: str) -> ConfigError:
        path = keys
        while path and path not in self.lines:
            path = path[:-1]
        where = f"{self.file} line {self.lines[path]}" if path else str(self.file)
        return ConfigError(f"{where}: {'.'.join(keys)} {problem}")

    def table(self, value: object, keys: tuple[str, ...], known: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(keys, "must be a table")
        for name in value:
            if known and name not in known:
                raise self.error((*keys, name), f"is not a setting (known: {', '.join(known)})")
        return cast(dict[str, Any], value)

    def text(self, table: dict[str, Any], keys: tuple[str, ...], name: str) -> str | None:
        value = table.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error((*keys, name), f"must be a non-empty string, not {value!r}")
        return value

    def count(self, table: dict[str, Any], keys: tuple[str, ...], name: str) -> int | None:
        value = table.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error((*keys, name), f"must be a whole number >= 1, not {value!r}")
        return value

    def backend(self, table: dict[str, Any], keys: tuple[str, ...]) -> Backend | None:
        value = table.get("backend")
        if value is None:
            return None
        if value not in BACKENDS:
            problem = f'must be "auto", "docker", "local" or "swarm", not {value!r}'
            raise self.error((*keys, "backend"), problem)
        return cast(Backend, value)

    def network(self, table: dict[str, Any], keys: tuple[str, ...]) -> str | None:
        value = self.text(table, keys, "network")
        if value is None:
            return None
        try:
            return check_name(value)
        except UsageError as exc:
            raise self.error((*keys, "network"), str(exc).removeprefix("network ")) from None

    def duration(self, table: dict[str, Any], keys: tuple[str, ...], name: str) -> float | None:
        value = table.get(name)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
        match = re.match(_DURATION, value) if isinstance(value, str) else None
        if match is None:
            problem = f'must be seconds or a duration like "30m", "12h", "7d", not {value!r}'
            raise self.error((*keys, name), problem)
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]

    def config(self, raw: dict[str, Any]) -> Config:
        top = self.table(raw, (), ("defaults", "projects", "agents", "swarm"))
        defaults = self.defaults(top.get("defaults", {}))
        projects_table = self.table(top.get("projects", {}), ("projects",), ())
        projects = {name: self.project(name, value) for name, value in projects_table.items()}
        agents_table = self.table(top.get("agents", {}), ("agents",), ())
        agents = {name: self.agent(name, value) for name, value in agents_table.items()}
        swarm = self.swarm(top.get("swarm", {}))
        return Config(
            defaults=defaults, projects=projects, path=self.file, agents=agents, swarm=swarm
        )

    def swarm(self, value: object) -> SwarmSettings:
        keys = ("swarm",)
        table = self.table(value, keys, ("manager", "registry", "nodes", "constraints", "retries"))
        nodes_table = self.table(table.get("nodes", {}), (*keys, "nodes"), ())
        nodes = {}
        for name, endpoint in nodes_table.items():
            nodes[name] = self.endpoint(endpoint, (*keys, "nodes", name))
        manager = self.text(table, keys, "manager")
        return SwarmSettings(
            manager=None if manager is None else self.endpoint(manager, (*keys, "manager")),
            registry=self.text(table, keys, "registry"),
            nodes=nodes,
            constraints=self.constraints(table, keys),
            retries=self.retries(table.get("retries", 0), (*keys, "retries")),
        )

    def retries(self, value: object, keys: tuple[str, ...]) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
            raise self.error(keys, f"must be a whole number from 0 to {MAX_RETRIES}, not {value!r}")
        return value

    def endpoint(self, value: object, keys: tuple[str, ...]) -> str:
        """A Docker endpoint: ``unix://``, ``tcp://``, ``ssh://`` or ``context:NAME``."""
        if not isinstance(value, str) or not re.match(r"^((unix|tcp|ssh)://|context:).", value):
            problem = (
                f"must be a unix://, tcp:// or ssh:// endpoint or context:NAME (a Docker "
                f"context), not {value!r}"
            )
            raise self.error(keys, problem)
        return value

    def agent(self, name: str, value: object) -> AgentProfile:
        """``[agents.NAME]``: what it leaves out comes from its kind's built-in profile (a
        ``kind = "codex"`` profile with its own command still reads Codex's screens)."""
        from luzia.agents import KINDS

        keys = ("agents", name)
        known = (
            "command",
            "delivery",
            "prompt",
            "busy",
            "busy_title",
            "questions",
            "question_title",
            "delay_enter",
            "quiet",
            "start_timeout",
            "secret_env",
            "exec_command",
            "forward_env",
            "kind",
        )
        table = self.table(value, keys, known)
        command = self.text(table, keys, "command")
        if command is None:
            raise self.error(keys, 'needs a command, e.g. command = "claude"')
        delivery = table.get("delivery", "prompt")
        if delivery not in DELIVERIES:
            raise self.error(
                (*keys, "delivery"), f'must be "prompt" or "argument", not {delivery!r}'
            )
        if delivery == "argument" and "{task}" not in command:
            raise self.error(
                (*keys, "command"), 'needs {task} where the task goes (delivery "argument")'
            )
        kind = self.kind(table, keys, name)
        base = KINDS[kind].profile if kind is not None else AgentProfile(name=name, command=command)
        questions = table.get("questions", list(base.questions))
        if isinstance(questions, str):
            questions = [questions]
        if not isinstance(questions, list):
            raise self.error((*keys, "questions"), "must be a list of regular expressions")
        for key in ("prompt", "busy", "busy_title", "question_title"):
            self.regex(table.get(key), keys, key)
        for pattern in questions:
            self.regex(pattern, keys, "questions")
        return AgentProfile(
            name=name,
            command=command,
            delivery=delivery,
            prompt=self.text(table, keys, "prompt") or base.prompt,
            busy=self.text(table, keys, "busy") or base.busy,
            questions=tuple(questions),
            busy_title=self.text(table, keys, "busy_title") or base.busy_title,
            question_title=self.text(table, keys, "question_title") or base.question_title,
            delay_enter=self.seconds(table, keys, "delay_enter", base.delay_enter),
            quiet=self.seconds(table, keys, "quiet", base.quiet),
            start_timeout=self.seconds(table, keys, "start_timeout", base.start_timeout),
            secret_env=self.patterns(table, keys),
            exec_command=self.exec_command(table, keys, delivery),
            forward_env=self.patterns(table, keys, "forward_env") or base.forward_env,
            kind=kind,
        )

    def exec_command(
        self, table: dict[str, Any], keys: tuple[str, ...], delivery: str
    ) -> str | None:
        command = self.text(table, keys, "exec_command")
        if command is not None and "{task}" not in command:
            raise self.error((*keys, "exec_command"), "needs {task} where the task goes")
        if command is not None and delivery == "argument":
            raise self.error((*keys, "exec_command"), 'is for a delivery = "prompt" profile')
        return command

    def kind(self, table: dict[str, Any], keys: tuple[str, ...], name: str) -> str | None:
        from luzia.agents import KINDS

        kind = self.text(table, keys, "kind")
        if kind is None:
            return name if name in KINDS else None
        if kind not in KINDS:
            raise self.error((*keys, "kind"), f"must be one of {', '.join(KINDS)}, not {kind!r}")
        return kind

    def regex(self, pattern: object, keys: tuple[str, ...], name: str) -> None:
        if pattern is None:
            return
        if not isinstance(pattern, str):
            raise self.error((*keys, name), f"must be a regular expression string, not {pattern!r}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise self.error((*keys, name), f"is not a valid regular expression: {exc}") from exc

    def seconds(
        self, table: dict[str, Any], keys: tuple[str, ...], name: str, default: float
    ) -> float:
        value = table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.error((*keys, name), f"must be a number of seconds >= 0, not {value!r}")
        return float(value)

    def defaults(self, value: object) -> Defaults:
        keys = ("defaults",)
        known = (
            "backend",
            "image",
            "max_concurrent",
            "max_per_project",
            "retention",
            "secret_env",
            "network",
            "on_state",
            *CONTAINER_KEYS,
        )
        table = self.table(value, keys, known)
        built = Defaults()
        return Defaults(
            backend=self.backend(table, keys) or built.backend,
            image=self.text(table, keys, "image") or built.image,
            max_concurrent=self.count(table, keys, "max_concurrent") or built.max_concurrent,
            max_per_project=self.count(table, keys, "max_per_project"),
            retention=self.duration(table, keys, "retention"),
            secret_env=self.patterns(table, keys),
            network=self.network(table, keys),
            container=self.container(table, keys),
            on_state=self.text(table, keys, "on_state"),
        )

    def project(self, name: str, value: object) -> ProjectConfig:
        keys = ("projects", name)
        known = (
            "path",
            "agent",
            "backend",
            "image",
            "max_concurrent",
            "network",
            "env",
            "commit",
            "secret_env",
            "on_state",
            "constraints",
            *CONTAINER_KEYS,
        )
        table = self.table(value, keys, known)
        path = self.text(table, keys, "path")
        if path is None:
            raise self.error(keys, 'needs a path: the workspace directory, e.g. path = "~/src/app"')
        workdir = Path(path).expanduser()
        if not workdir.is_absolute():
            workdir = self.file.parent / workdir
        backend = self.backend(table, keys)
        container = self.container(table, keys)
        if backend == "local" and (given := container.given()):
            problem = "applies only to docker jobs; this project's backend is local"
            raise self.error((*keys, given[0]), problem)
        return ProjectConfig(
            name=name,
            path=Path(os.path.normpath(workdir)),
            agent=self.text(table, keys, "agent"),
            backend=backend,
            image=self.text(table, keys, "image"),
            max_concurrent=self.count(table, keys, "max_concurrent"),
            network=self.network(table, keys),
            env=self.env(table.get("env", {}), (*keys, "env")),
            commit=self.commit(table, keys),
            secret_env=self.patterns(table, keys),
            container=container,
            on_state=self.text(table, keys, "on_state"),
            constraints=self.constraints(table, keys),
        )

    def constraints(self, table: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, ...]:
        value = table.get("constraints", [])
        if not isinstance(value, list) or not all(
            isinstance(c, str) and re.search("==|!=", c) for c in value
        ):
            problem = f'must be a list like ["node.role==worker"], not {value!r}'
            raise self.error((*keys, "constraints"), problem)
        return tuple(value)

    def commit(
        self, table: dict[str, Any], keys: tuple[str, ...]
    ) -> Literal["branch", "current"] | None:
        value = table.get("commit")
        if value is None or value in ("branch", "current"):
            return cast(Literal["branch", "current"] | None, value)
        raise self.error((*keys, "commit"), f'must be "branch" or "current", not {value!r}')

    def env(self, value: object, keys: tuple[str, ...]) -> dict[str, str]:
        from luzia.jobenv import NAME_RULE, valid_name

        table = self.table(value, keys, ())
        for name, item in table.items():
            if not isinstance(item, str) or "\0" in item:
                raise self.error((*keys, name), f"must be a string (quote it), not {item!r}")
            if not valid_name(name):
                raise self.error((*keys, name), f"is not a valid variable name ({NAME_RULE})")
        return cast(dict[str, str], table)

    def patterns(
        self, table: dict[str, Any], keys: tuple[str, ...], name: str = "secret_env"
    ) -> tuple[str, ...]:
        value = table.get(name, [])
        if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
            problem = f'must be a list of name patterns, e.g. ["MY_*"], not {value!r}'
            raise self.error((*keys, name), problem)
        return tuple(value)

    def container(self, table: dict[str, Any], keys: tuple[str, ...]) -> ContainerSettings:
        """The ``mounts``, ``memory``, ``cpus``, ``pids`` and ``user`` keys of a table."""
        checks: dict[str, Any] = {
            "memory": lambda v: check_memory(str(v) if isinstance(v, int) else v),
            "cpus": check_cpus,
            "pids": check_pids,
            "user": check_user,
        }
        values: dict[str, Any] = {}
        for name, check in checks.items():
            if table.get(name) is not None:
                try:
                    values[name] = check(table[name])
                except UsageError as exc:
                    raise self.error((*keys, name), str(exc).removeprefix(name + " ")) from None
        mounts = table.get("mounts", [])
        if not isinstance(mounts, list) or not all(isinstance(m, str) for m in mounts):
            problem = f'must be a list of "SRC:DST[:ro]", not {mounts!r}'
            raise self.error((*keys, "mounts"), problem)
        checked = []
        for spec in mounts:
            try:
                checked.append(parse_mount(spec, self.file.parent))
            except UsageError as exc:
                raise self.error((*keys, "mounts"), str(exc).removeprefix("mount ")) from None
        targets = [m.target for m in checked]
        if len(set(targets)) != len(targets):
            raise self.error((*keys, "mounts"), "has two mounts at one destination")
        return ContainerSettings(mounts=tuple(checked), **values)
