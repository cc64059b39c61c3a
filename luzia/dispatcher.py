"""The public API: dispatch a task and get a job id at once; ask what any job is doing.

``ResponsiveDispatcher`` only records and reads; it never starts a container or touches tmux. The
engine (``luzia.engine``) picks queued jobs up from the store, runs them and records what happens,
from this process or another one. Everything here reads the store afresh: there is no cache to go
stale, because a read by primary key costs tens of microseconds.

>>> import tempfile
>>> dispatcher = ResponsiveDispatcher(home=tempfile.mkdtemp(), config=Config())
>>> job_id = dispatcher.dispatch_task("echo hello", workdir="/tmp")
>>> dispatcher.get_status(job_id[:4]).state
<JobState.QUEUED: 'queued'>
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from luzia.agent_check import check_dispatch, needed_agent
from luzia.agents import BUILTIN_PROFILES, AgentProfile
from luzia.config import Config, ProjectConfig
from luzia.container_settings import settings as container_settings
from luzia.daemon import notify_engine
from luzia.errors import ConfigError, UsageError, WaitTimeout
from luzia.jobenv import ENV_FILE, check_env, env_file, forwarded_env, recorded_env
from luzia.jobs import (
    BACKENDS,
    FINAL_STATES,
    MODES,
    Backend,
    FeedEvent,
    Job,
    JobEvent,
    JobState,
    Mode,
)
from luzia.launch import LAUNCH_FILE, Launch
from luzia.network import job_network
from luzia.paths import luzia_home
from luzia.store import JobStore
from luzia.until import check_until, reached

if TYPE_CHECKING:
    from luzia.backends import Backend as JobBackend
    from luzia.engine import Engine
    from luzia.workspace import Fetch

MAX_TASK_BYTES = 1024 * 1024
"""The largest task accepted (UTF-8 bytes): far beyond any prompt, small enough to paste."""

_FEED_BATCH = 500
"""Events read from the store at once by ``stream_events`` (``JobStore.feed``'s default)."""

_LIVE_STATES = [state.value for state in JobState if state not in FINAL_STATES]

DEFAULT_POLL = 0.02
"""Seconds between two looks at the store's change counter while waiting (a pragma, no query)."""


class ResponsiveDispatcher:
    """Records tasks as jobs and reports on them, without ever blocking on a container.

    ``home`` defaults to ``paths.luzia_home()`` and ``config`` to ``Config.load()``. ``store`` is
    the underlying ``JobStore``, for the engine and for removals (``store.delete``).
    """

    def __init__(self, home: Path | str | None = None, config: Config | None = None) -> None:
        self.home = Path(home) if home is not None else luzia_home()
        self.config = config if config is not None else Config.load()
        self.store = JobStore(self.home)

    def dispatch_task(
        self,
        task: str,
        project: str | None = None,
        *,
        backend: Backend | None = None,
        image: str | None = None,
        workdir: Path | str | None = None,
        agent: str | None = None,
        mode: Mode | None = None,
        env: Mapping[str, str] | None = None,
        network: str | None = None,
        mounts: Sequence[str] = (),
        memory: str | None = None,
        cpus: float | None = None,
        pids: int | None = None,
        user: str | None = None,
        retries: int | None = None,
    ) -> str:
        """Validate ``task``, record it as a ``queued`` job and return the job's id.

        Options left as ``None`` come from the project's config, then from ``[defaults]``; ``env``
        is merged over the project's; its values reach the job through a file only it can read,
        and the store keeps secret ones by name only (``luzia.jobenv``). The workspace is
        ``workdir``, else the project's ``path``, else the current directory.

        Projects: a configured project supplies its path, agent, backend, image and env. A name
        the config does not know is a plain label when ``workdir`` is given or no project is
        configured at all; but when projects are configured and no ``workdir`` is given it is
        ``ProjectNotFound``, so that a mistyped name in ``luzia <project> "<task>"`` never runs an
        agent in whatever directory the shell happened to be in.

        ``network`` (``luzia.network``): ``bridge``, ``none``, ``host`` or a Docker network's name;
        unset, the project's, then ``[defaults]``, then luzia's own network. A docker job's
        network must exist (``UsageError``) when the Docker Engine answers.

        Container settings (``luzia.container_settings``), over the project's and ``[defaults]``:
        ``mounts`` (``SRC:DST[:ro]``, SRC an existing host path, added to the configured ones),
        ``memory`` (``"2g"``), ``cpus`` (``1.5``), ``pids`` (most processes) and ``user``
        (``"1000:1000"``). They, and ``network``, apply only to docker jobs: given for a local
        job (or an ``auto`` one with no Docker Engine answering) they are a ``UsageError``.

        ``retries`` (swarm jobs only; default ``[swarm] retries``, else 0): how many times the
        job runs again elsewhere when the node it runs on is lost; never, unless asked.

        ``agent`` is a profile name (``luzia.agents``) or a command template; ``mode`` follows from
        it (``interactive`` for a profile that takes tasks at its prompt) and need not be given.

        A docker job whose image does not exist, or lacks the agent its profile runs (``claude``,
        ``codex``, ``aider``: ``luzia.agent_check``), is refused with the exact ``luzia image
        build`` command; luzia's default image without an agent is built on first use instead.

        Raises ``UsageError`` for an empty task, one over 1 MiB, one holding a NUL byte, for bad
        options and bad variables (name, NUL byte); nothing is recorded then.
        """
        _check_task(task)
        if mode is not None and mode not in MODES:
            raise UsageError(f'mode must be "command" or "interactive", not {mode!r}')
        settings = self._project(project, workdir)
        chosen_backend = backend or (settings.backend if settings else None)
        chosen_backend = chosen_backend or self.config.defaults.backend
        if chosen_backend not in BACKENDS:
            raise UsageError(
                f'backend must be "auto", "docker", "local" or "swarm", not {chosen_backend!r}'
            )
        chosen_agent = agent if agent is not None else (settings.agent if settings else None)
        if chosen_agent is not None and not chosen_agent.strip():
            raise UsageError("the agent command is empty; leave it unset to run the task itself")
        profile = self.config.agent_profile(chosen_agent)
        mode = _choose_mode(mode, profile, chosen_agent)
        chosen_image = image or (settings.image if settings else None) or self.config.defaults.image
        forwarded = forwarded_env(profile.forward_env, os.environ) if profile else {}
        merged_env = {**forwarded, **(settings.env if settings else {}), **(env or {})}
        check_env(merged_env)
        secret = self.config.secret_patterns(settings.name if settings else None, profile)
        own = container_settings(mounts=mounts, memory=memory, cpus=cpus, pids=pids, user=user)
        given = (["network"] if network is not None else []) + own.given()
        if given:
            _check_docker_job(given, chosen_backend)
        configured = (settings.network if settings else None) or self.config.defaults.network
        chosen_network = job_network(
            network if network is not None else configured,
            check=chosen_backend not in ("local", "swarm"),  # swarm's are the manager's
        )
        if chosen_backend == "swarm" and chosen_network == "none":
            raise UsageError(
                "network none is not for swarm jobs: a swarm service cannot run without a "
                "network; leave it out (the node's default network) or name an overlay network"
            )
        workspace = self._workdir(workdir, settings)
        container = None
        if chosen_backend != "local":
            layered = own.over(settings.container) if settings else own
            container = layered.over(self.config.defaults.container).resolved(workspace)
            if chosen_backend == "swarm" and container.mounts:
                named = ", ".join(map(str, container.mounts))
                raise UsageError(
                    f"mounts ({named}) are not for swarm jobs: a host path would name a path on "
                    "whichever node runs the job; put what the job needs in its workdir or image"
                )
        if retries is not None and chosen_backend != "swarm":
            raise UsageError(
                f"retries: only for swarm jobs (run again when their node is lost); this job's "
                f"backend is {chosen_backend}"
            )
        launch = Launch(
            profile,
            os.environ.get("PATH"),
            chosen_network,
            container,
            os.path.expanduser("~"),
            retries=self.config.swarm.retries if retries is None else check_retries(retries),
        )
        files = {LAUNCH_FILE: launch.to_json()}
        if merged_env:
            files[ENV_FILE] = env_file(merged_env)
        if chosen_backend not in ("local", "swarm"):  # a swarm job's image is in the registry
            refusal = check_dispatch(chosen_image, needed_agent(chosen_agent, profile))
            if refusal is not None:
                raise UsageError(refusal)
        job = self.store.create_job(
            task,
            project=project,
            workdir=workspace,
            backend=chosen_backend,
            mode=mode,
            agent=chosen_agent,
            image=None if chosen_backend == "local" else chosen_image,
            env=recorded_env(merged_env, secret),
            files=files,
        )
        notify_engine(self.home)  # a datagram (~40 us): a running engine starts it at once
        return job.id

    def _project(self, name: str | None, workdir: Path | str | None) -> ProjectConfig | None:
        if name is None:
            return None
        if not name.strip():
            raise UsageError("the project name is empty")
        if name in self.config.projects or (workdir is None and self.config.projects):
            return self.config.project(name)
        return None

    def _workdir(self, workdir: Path | str | None, settings: ProjectConfig | None) -> Path:
        if workdir is not None:
            path = Path(os.path.abspath(os.path.expanduser(workdir)))
            if not path.is_dir():
                raise UsageError(f"workdir {path} is not a directory")
            return path
        if settings is not None:
            if not settings.path.is_dir():
                where = self.config.path or "the config file"
                raise ConfigError(
                    f"{where}: projects.{settings.name}.path {settings.path} is not a directory; "
                    "create it or fix the path"
                )
            return settings.path
        return Path.cwd()

    def get_status(self, job_id: str) -> Job:
        """The job with this id or unique id prefix, as the store has it now."""
        return self.store.resolve(job_id)

    def update_status(self, job_id: str, state: JobState | str, reason: str, **fields: Any) -> Job:
        """Record a state change (the engine's call); see ``JobStore.transition`` for the rules."""
        return self.store.transition(job_id, state, reason, **fields)

    def list_jobs(
        self,
        project: str | None = None,
        state: str | Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs newest first, filtered by project and by one or several states."""
        return self.store.list(project=project, state=state, limit=limit)

    def wait_for_job(
        self,
        job_id: str,
        timeout: float | None = None,
        *,
        until: str = "end",
        poll: float = DEFAULT_POLL,
    ) -> Job:
        """Block until the job is final and return it; ``WaitTimeout`` after ``timeout`` seconds.

        ``until="idle"`` returns as soon as its turn has ended (at its prompt, or asking),
        ``until="input"`` as soon as it waits for a person's answer; either returns a job that
        ended first too (see ``luzia.until``). Any process may change the job: the wait watches
        the store's change counter, so it notices within ``poll`` seconds and reads the job only
        when something changed.
        """
        goal = check_until(until)
        job = self.store.resolve(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            counter = self.store.change_counter()
            job = self.store.get(job.id)
            if reached(job, goal):
                return job
            if not self._wait_for_change(counter, deadline, poll):
                raise WaitTimeout(job, timeout or 0.0)

    def stream_status(self, job_id: str, poll: float = DEFAULT_POLL) -> Iterator[JobEvent]:
        """Yield each of the job's events from the first, as they happen; end after a final one.

        Raises ``JobNotFound`` if the job is removed while streaming.
        """
        job_id = self.store.resolve(job_id).id
        seq = 0
        while True:
            counter = self.store.change_counter()
            events = self.store.events(job_id, after_seq=seq)
            for event in events:
                yield event
                if event.state in FINAL_STATES:
                    return
            if events:
                seq = events[-1].seq
            else:
                self.store.get(job_id)
            self._wait_for_change(counter, None, poll)

    def stream_events(
        self,
        *,
        follow: bool = False,
        since: float | None = None,
        job_ids: Sequence[str] | None = None,
        project: str | None = None,
        poll: float = DEFAULT_POLL,
    ) -> Generator[FeedEvent, None, None]:
        """Every job's state changes, oldest first, in the order the store recorded them.

        Only those of ``job_ids`` (ids or unique prefixes, checked before the first event:
        ``JobNotFound``), or of ``project``, or recorded at ``since`` (unix time) or later.
        Without ``follow`` it ends with the last event recorded; with it, it goes on yielding
        new events as any process records them (within ``poll`` seconds), each exactly once,
        until the caller stops, or, given ``job_ids``, until every one of them has ended.
        """
        ids = None
        if job_ids is not None:
            ids = list(dict.fromkeys(self.store.resolve(job_id).id for job_id in job_ids))
        cursor = 0
        while True:
            counter = self.store.change_counter()
            ended = follow and ids is not None and self._all_ended(ids)
            head = self.store.last_event_num()
            while cursor < head:
                batch = self.store.feed(
                    cursor, head, job_ids=ids, project=project, since=since, limit=_FEED_BATCH
                )
                yield from batch
                cursor = batch[-1].num if len(batch) == _FEED_BATCH else head
            since = None  # caught up: from here on every new event counts
            if not follow or ended:
                return
            self._wait_for_change(counter, None, poll)

    def _all_ended(self, job_ids: Sequence[str]) -> bool:
        """Whether every job is final (or removed): a feed of them alone has nothing to come."""
        live = {job.id for job in self.store.list(state=_LIVE_STATES)}
        return live.isdisjoint(job_ids)

    def _wait_for_change(self, counter: int, deadline: float | None, poll: float) -> bool:
        """Sleep in ``poll`` steps until the store changes (True) or the deadline passes (False)."""
        while self.store.change_counter() == counter:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                time.sleep(min(poll, left))
            else:
                time.sleep(poll)
        return True

    # -- acting on jobs: the engine acts, this process asks (luzia.control) --

    def kill_job(self, job_id: str) -> Job:
        """Stop the job; return it as it ends (``killed``, or the final state it already had).

        A queued job is marked killed here (it has nothing to stop); a live one is the engine's
        to kill: it ends every process of the job first and records ``killed`` after, so when
        the kill fails nothing is recorded and the error is raised.
        """
        job = self.store.kill_if_queued(self.store.resolve(job_id).id)
        if job.state in FINAL_STATES:
            return job
        self._ask("kill", job.id)
        return self.store.get(job.id)

    def send_input(self, job_id: str, text: str, *, enter: bool = True) -> None:
        """Send ``text`` to the job (then Enter, unless ``enter`` is false), through the engine.

        An interactive agent gets it when its turn has ended: pasted as one block, then a
        separate Enter that is checked to have taken. Any other job's pane has it typed at
        once, byte for byte. Returns once the engine has taken it; raises when it cannot.
        """
        _check_input(text, enter)
        job = self.store.resolve(job_id)
        if job.state in FINAL_STATES:
            raise UsageError(f"cannot send input to job {job.id}: it is {job.state}")
        if job.mode == "command" and job.state is JobState.QUEUED:
            raise UsageError(f"cannot send input to job {job.id}: it is queued, no live pane yet")
        self._ask("send", job.id, text=text, enter=enter)

    def _ask(self, op: str, job_id: str, **args: object) -> dict[str, object]:
        from luzia.control import ask_engine

        return ask_engine(self.home, {"op": op, "job": job_id, **args})

    def read_log(
        self, job_id: str, *, tail: int | None = None, plain: bool = False, whole: bool = False
    ) -> bytes:
        """What the job's command printed so far; ``whole``: all the pane showed, ``tail``: the
        last lines."""
        from luzia import joblog

        job = self.store.resolve(job_id)
        return joblog.read_log(job.log_path, tail=tail, plain=plain, whole=whole)

    def follow_log(
        self, job_id: str, *, tail: int | None = None, plain: bool = False, whole: bool = False
    ) -> Iterator[bytes]:
        """The log as it grows; ends once the job is final and every byte has been read."""
        from luzia import joblog

        job = self.store.resolve(job_id)
        return joblog.follow_log(
            job.log_path,
            lambda: self.store.get(job.id).state in FINAL_STATES,
            tail=tail,
            plain=plain,
            whole=whole,
        )

    def attach_command(self, job_id: str, *, read_only: bool = False) -> list[str]:
        """The argv that puts a person's terminal in the job's pane (detach: C-b d)."""
        job = self.store.resolve(job_id)
        if job.state is JobState.QUEUED or (job.state is JobState.STARTING and not job.tmux_target):
            raise UsageError(f"job {job.id} is {job.state}: it has no pane yet")
        if job.backend == "auto" or (not job.container_id and not job.tmux_target):
            raise UsageError(f"job {job.id} never got a pane ({job.message or job.state})")
        return self._backend(job).attach_command(job, read_only)

    def remove_job(self, job_id: str, *, force: bool = False) -> Job:
        """Remove the job's container or tmux server, its record and its directory.

        An active or queued job is refused unless ``force``, which has it killed first (by the
        engine); a kill that fails removes nothing.
        """
        job = self.store.resolve(job_id)
        if job.state not in FINAL_STATES:
            if not force:
                raise UsageError(f"job {job.id} is {job.state}; kill it first or use --force")
            job = self.kill_job(job.id)
        if job.backend != "auto":
            self._backend(job).remove(job)  # also finds a container by label, id or not
        from luzia import workspace

        with contextlib.suppress(workspace.WorkspaceError):
            workspace.forget(job.workdir, job.id)
        self.store.delete(job.id)
        return job

    # -- the job's change to its workspace (luzia.workspace) --

    def diff_job(self, job_id: str, *, stat: bool = False) -> str:
        """Exactly what the job changed in its workspace (so far, while it runs)."""
        from luzia import workspace

        job = self.store.resolve(job_id)
        fetch = self._workspace_copy(job)
        return workspace.diff(job.workdir, job.id, stat=stat, fetch=fetch)

    def commit_job(
        self, job_id: str, *, branch: str | None = None, message: str | None = None
    ) -> str:
        """Commit the job's change, on ``branch`` (new) or the current branch; returns the sha."""
        from luzia import workspace

        job = self._finished_job(job_id, "commit")
        copied = self._workspace_copy(job) is not None
        return workspace.commit(
            job.workdir, job.id, branch=branch, message=message, task=job.task, copied=copied
        )

    def apply_job(self, job_id: str) -> bool:
        """Bring the job's change into its workspace: a swarm job's from its copy, or one that
        was reverted; ``False`` when the workspace already holds it."""
        from luzia import workspace

        job = self._finished_job(job_id, "apply")
        return workspace.apply(job.workdir, job.id)

    def revert_job(self, job_id: str) -> Job:
        """Put the workspace back as it was before the job (refused if edited since)."""
        from luzia import workspace

        job = self._finished_job(job_id, "revert")
        workspace.revert(job.workdir, job.id)
        return job

    def _finished_job(self, job_id: str, action: str) -> Job:
        """A job that has ended, with its post-task snapshot taken.

        The engine takes that snapshot just after recording the end; a command that comes in
        between takes it here (the job has ended, so the live workspace, or its copy, is its
        post state).
        """
        from luzia import workspace

        job = self.store.resolve(job_id)
        if job.state not in FINAL_STATES:
            raise UsageError(
                f"cannot {action} job {job.id} while it is {job.state}; wait or kill it"
            )
        workspace.ensure_post_task(job.workdir, job.id, self._workspace_copy(job))
        return job

    def _workspace_copy(self, job: Job) -> Fetch | None:
        """Where a job that changed a copy of its workspace keeps it (its backend says); ``None``
        for the others, and for an ``auto`` job, which has not started anywhere yet. Asking
        costs no connection: a backend reaches its engine when it first needs it."""
        return self._backend(job).workspace_copy(job) if job.backend != "auto" else None

    def clean(self, *, all: bool = False) -> list[str]:
        """Remove every finished job (``all``: every job) with its container; return their ids.

        ``all`` also removes this home's containers and tmux servers whose job is no longer in
        the store (a crash between creating one and recording it).
        """
        states = None if all else FINAL_STATES
        removed = []
        for job in self.store.list(state=states):
            self.remove_job(job.id, force=all)
            removed.append(job.id)
        if all:
            from luzia.backends import backend_for
            from luzia.errors import LuziaError

            known = {job.id for job in self.store.list()}
            swarm = ("swarm",) if self.config.swarm.nodes else ()
            for name in ("local", "docker", *swarm):
                with contextlib.suppress(LuziaError):  # no Docker Engine: no containers either
                    backend_for(name, config=self.config).remove_orphans(self.home, known)
        return removed

    def ensure_engine(self) -> None:
        """Start the detached engine for this home if none runs, else wake it; returns at once."""
        from luzia.daemon import ensure_engine

        ensure_engine(self.home)

    def start_background_monitor(self) -> Engine:
        """Run the engine in a thread of this process (instead of the detached daemon)."""
        from luzia.engine import Engine

        return Engine(self.home, self.config).start()

    def _backend(self, job: Job) -> JobBackend:
        from luzia.backends import backend_for

        return backend_for(job.backend, config=self.config)

    def close(self) -> None:
        """Close the store's connections (they also close when the dispatcher is collected)."""
        self.store.close()


def _check_docker_job(given: list[str], backend: str) -> None:
    """Container settings given for one job refuse a job that will not run in a container."""
    named = ", ".join(given)
    if backend == "local":
        raise UsageError(f"{named}: only for docker jobs; this job's backend is local")
    if backend == "auto":
        from controllers.docker_engine import docker_client
        from controllers.errors import ControllerError

        try:
            docker_client()
        except ControllerError:
            raise UsageError(
                f"{named}: only for docker jobs, and no Docker Engine answers (backend auto "
                "would run this job locally); start the Docker Engine, or leave them out"
            ) from None


def check_retries(value: object) -> int:
    """How many times a swarm job may run again after losing its node: 0 to ``MAX_RETRIES``."""
    from luzia.config import MAX_RETRIES

    try:
        number = int(value) if isinstance(value, int | str) and not isinstance(value, bool) else -1
    except ValueError:
        number = -1
    if not 0 <= number <= MAX_RETRIES:
        raise UsageError(f"retries must be a whole number from 0 to {MAX_RETRIES}, not {value!r}")
    return number


def _check_task(task: str) -> None:
    if not isinstance(task, str):
        raise UsageError(f"the task must be text, not {type(task).__name__}")
    if not task or task.isspace():
        raise UsageError("the task is empty; give a shell command or instructions for the agent")
    if "\0" in task:
        raise UsageError("the task holds a NUL byte, which no terminal can carry; remove it")
    try:
        size = len(task.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise UsageError(f"the task is not valid text (position {exc.start})") from exc
    if size > MAX_TASK_BYTES:
        raise UsageError(
            f"the task is {size} bytes, over the 1 MiB limit; put long instructions in a file in "
            "the workspace and point the task at it"
        )


def _check_input(text: str, enter: bool) -> None:
    if not isinstance(text, str):
        raise UsageError(f"input must be text, not {type(text).__name__}")
    if not text and not enter:
        raise UsageError("nothing to send: the text is empty and no Enter was asked for")
    if "\0" in text:
        raise UsageError("the input holds a NUL byte, which no terminal can carry; remove it")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(
            f"the input is not valid UTF-8 (byte {_raw(exc.object[exc.start : exc.end])!r} at "
            f"position {exc.start})"
        ) from exc


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _choose_mode(mode: Mode | None, profile: AgentProfile | None, agent: str | None) -> Mode:
    """The job's mode: as asked, else the profile's own (``interactive`` for one that takes
    tasks at its prompt); ``UsageError`` when the agent cannot run so."""
    natural: Mode = "interactive" if profile is not None and profile.interactive else "command"
    if mode is None or mode == natural:
        return natural
    if mode == "interactive":
        raise UsageError(
            'interactive mode needs an agent profile with delivery = "prompt" '
            f"(built in: {', '.join(BUILTIN_PROFILES)}; or [agents.NAME] in the config), "
            f"not {agent!r}"
        )
    if profile is not None and not profile.runs_commands:
        raise UsageError(
            f"agent {agent!r} is interactive and has no exec_command; it cannot run in command mode"
        )
    return mode
