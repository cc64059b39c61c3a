"""The swarm backend: a job is a one-task Docker Swarm service, placed by swarm, driven through
the Docker Engine of the node its task runs on.

Swarm has no exec across nodes (moby/moby#27552), so the manager only creates, finds and removes
the service; the task's container is reached through its node's own endpoint (``[swarm.nodes]``),
and the control-mode stream runs there exactly as for a local container (a
``DockerTmuxController`` whose ``docker exec`` names that endpoint). The job directory cannot
be bind-mounted from this host: ``run.sh`` and the job's files are copied into the container,
and what it records there (its pid, the exit status, the pane's log) is copied back over the
same endpoint whenever the engine looks (:meth:`SwarmBackend.sync`), also after an engine
restart. The workspace is a copy of the job's workdir in the task's container; the engine
records what the job made of it (a snapshot of the copy, in the workdir's repository here), so
``luzia diff``, ``commit``, ``apply`` and ``revert`` work as for any job (docs/swarm.md says
why). A task is never restarted: the restart policy is ``none``, so a job
whose node is lost ends ``failed`` with ``node NAME lost`` and runs nowhere else.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import stat
import tarfile
import threading
import time
from base64 import b64decode
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from controllers.docker_engine import endpoint_args, first_line
from controllers.docker_tmux import TMUX_SOCKET, DockerTmuxController
from controllers.errors import ControllerError
from controllers.events import Output, PaneEvent
from luzia.agents import agent_kind
from luzia.agents.home import prepare_home
from luzia.backends import (
    COMMAND_FILE,
    JOB_MOUNT,
    PID_FILE,
    RUN_FILE,
    DockerBackend,
    _docker_errors,
    read_exit_code,
    read_pid,
    write_job_scripts,
)
from luzia.config import Config, SwarmSettings
from luzia.errors import BackendError, LuziaError
from luzia.jobenv import ENV_FILE
from luzia.jobs import Job
from luzia.paths import EXIT_CODE_FILE, LOG_FILE, private_opener, write_private
from luzia.proctree import PGROUP_FILE
from luzia.signals import (
    BELL_BUFFER,
    BELL_FILE,
    BELL_SESSION,
    SIGNAL_SCRIPT,
    SIGNALS_DIR,
    put_record,
)

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

    from controllers.controller import TmuxController
    from luzia.launch import Launch
    from luzia.workspace import Fetch

log = logging.getLogger(__name__)

TASK_START_TIMEOUT = 120.0
"""How long a task may wait for a node (resources, an image pull) before the start fails."""
TASK_POLL = 0.02
NODE_FILE = "swarm-node"
"""In the job directory: the name of the node its task was placed on."""
COPIED_BACK = (PID_FILE, EXIT_CODE_FILE, PGROUP_FILE, LOG_FILE)
"""What the container's job directory sends back to this host's."""
WORKSPACE = "/workspace"
"""The job's copy of its workdir, in its container."""


class NodeLost(BackendError):
    """The node running a job is down, as its manager says and its endpoint confirms."""

    def __init__(self, node: str) -> None:
        super().__init__(f"node {node} lost")
        self.node = node


@dataclass
class _Node:
    name: str
    endpoint: str
    client: docker.DockerClient


@dataclass
class _Task:
    node_id: str
    container_id: str | None
    state: str
    error: str


class SwarmBackend(DockerBackend):
    """One swarm service per job: one replica, restart policy ``none``, the job's resource
    reservations and the configured placement constraints, labelled like docker jobs."""

    name = "swarm"

    def __init__(self, settings: SwarmSettings, config: Config | None = None) -> None:
        super().__init__(None)
        self.settings = settings
        self.config = config
        self._manager: docker.DockerClient | None = None
        self._nodes: dict[str, _Node] = {}
        self._nodes_lock = threading.Lock()
        self._lost: dict[str, str] = {}

    # -- the manager and the nodes --

    @property
    def manager(self) -> docker.DockerClient:
        if self._manager is None:
            self._manager = _client(self.settings.manager)
        return self._manager

    @property
    def client(self) -> docker.DockerClient:
        return self.manager

    def _node(self, node_id: str) -> _Node:
        """The configured endpoint of swarm node ``node_id`` (matched by the id its engine
        reports); ``BackendError`` naming the fix when none is configured for it."""
        if node_id in self._nodes:
            return self._nodes[node_id]
        reached, silent = self.endpoints()
        if node_id in reached:
            return reached[node_id]
        name = self._node_name(node_id)
        if self._node_state(node_id) != "ready":
            raise NodeLost(name)
        if silent:
            raise BackendError(
                f"cannot reach swarm node {name}: no configured endpoint of it answers "
                f"(silent: {', '.join(silent)})"
            )
        raise BackendError(
            f"no endpoint for swarm node {name}: add it to [swarm.nodes] in the config "
            f'({name} = "tcp://HOST:2376" or "ssh://USER@HOST")'
        )

    def endpoints(self) -> tuple[dict[str, _Node], dict[str, str]]:
        """The configured endpoints that answer, by the swarm node id each engine reports, and
        those that do not, by name, with why. An endpoint matched once is not asked again."""
        with self._nodes_lock:
            known = {node.endpoint for node in self._nodes.values()}
            silent = {}
            for name, endpoint in self.settings.nodes.items():
                if endpoint in known:
                    continue
                try:
                    client = _client(endpoint)
                    found = str(client.info().get("Swarm", {}).get("NodeID") or "")
                except Exception as exc:  # unreachable, or an engine that answers badly
                    log.info("swarm node %s (%s) does not answer: %s", name, endpoint, exc)
                    silent[name] = first_line(exc)
                    continue
                self._nodes[found] = _Node(name, endpoint, client)
            return dict(self._nodes), silent

    def _node_name(self, node_id: str) -> str:
        """The configured name of a node, else its host name, else its id."""
        if node_id in self._nodes:
            return self._nodes[node_id].name
        with contextlib.suppress(Exception):
            node_attrs = self.manager.nodes.get(node_id).attrs
            hostname = str(node_attrs.get("Description", {}).get("Hostname", ""))
            for name, endpoint in self.settings.nodes.items():
                if name == hostname or endpoint.endswith(f"//{hostname}"):
                    return name
            return hostname or node_id[:12]
        return node_id[:12]

    def _node_state(self, node_id: str) -> str:
        with _docker_errors(f"cannot ask the swarm manager about node {node_id[:12]}"):
            return str(self.manager.nodes.get(node_id).attrs["Status"]["State"])

    # -- the service and its task --

    def _service(self, job: Job) -> Any:
        with _docker_errors(f"cannot find the swarm service of job {job.id}"):
            found = self.manager.services.list(filters={"label": f"luzia.job={job.id}"})
        return found[0] if found else None

    def _task(self, service: Any) -> _Task | None:
        with _docker_errors(f"cannot list the tasks of service {service.name}"):
            tasks = service.tasks()
        if not tasks:
            return None
        task = max(tasks, key=lambda t: str(t.get("CreatedAt", "")))
        status = task.get("Status", {})
        return _Task(
            node_id=str(task.get("NodeID") or ""),
            container_id=status.get("ContainerStatus", {}).get("ContainerID"),
            state=str(status.get("State", "")),
            error=str(status.get("Err") or status.get("Message") or ""),
        )

    def _locate(self, job: Job) -> tuple[_Node, Container] | None:
        """The job's node and container, or ``None`` when its service or container is gone;
        ``NodeLost`` (naming the node it was placed on) when its node is down."""
        try:
            return self._find(job)
        except NodeLost as exc:
            recorded = _recorded_node(job)  # a restarted engine may not reach it to ask its name
            raise NodeLost(recorded or exc.node) from None

    def _find(self, job: Job) -> tuple[_Node, Container] | None:
        """:meth:`_locate`. A down node's task may have lost its container id, and its engine
        cannot be asked: the manager's word decides."""
        import docker.errors

        service = self._service(job)
        if service is None:
            return None
        task = self._task(service)
        if task is None or not task.node_id:
            return None
        node = self._node(task.node_id)
        try:
            with _docker_errors(f"cannot find the container of job {job.id}"):
                try:
                    if task.container_id:
                        return node, node.client.containers.get(task.container_id)
                except docker.errors.NotFound:
                    pass
        except BackendError:
            self._check_node(task.node_id, node.name)
            raise
        self._check_node(task.node_id, node.name)
        return None

    def _check_node(self, node_id: str, name: str) -> None:
        if self._node_state(node_id) != "ready":
            raise NodeLost(name)

    def node_of(self, job: Job) -> str | None:
        """The name of the node the job's task runs on (``None``: no task placed)."""
        service = self._service(job)
        task = self._task(service) if service is not None else None
        if task is None or not task.node_id:
            return None
        try:
            return self._node(task.node_id).name
        except BackendError:
            return self._node_name(task.node_id)

    def _container(self, job: Job) -> Container | None:
        located = self._locate(job)
        return located[1] if located else None

    # -- the backend --

    def start(self, job: Job, home: Path, command: str) -> TmuxController:
        from controllers.container import default_user
        from luzia.launch import read_launch

        write_job_scripts(job, command)
        launch = read_launch(job.job_dir)
        settings = launch.container if launch and launch.container else None
        user = (settings.user if settings else None) or default_user(job.workdir)
        self._create_service(job, home, user, launch)
        node, container = self._wait_running(job)
        write_private(job.job_dir / NODE_FILE, f"{node.name}\n".encode())
        owner = _owner(user)
        files = _job_files(job)
        kind = agent_kind(launch.profile if launch else None)
        if kind is not None:
            from controllers.image.rootfs import AGENT_HOME

            files[f"{JOB_MOUNT.lstrip('/')}/{BELL_FILE}"] = (TMUX_SOCKET.encode(), 0o600)

            caller_home = Path(launch.caller_home if launch and launch.caller_home else Path.home())
            agent_home = prepare_home(job.job_dir, kind, caller_home, owner)
            files.update(_tree(agent_home, AGENT_HOME.lstrip("/")))
        if job.workdir is not None:
            files.update(_tree(Path(job.workdir), WORKSPACE.lstrip("/")))
        with _docker_errors(f"cannot copy job {job.id} into container {container.short_id}"):
            if not container.put_archive("/", _tar(files, owner)):
                raise BackendError(f"cannot copy job {job.id} into container {container.short_id}")
        controller = self._controller(job, node, container, owned=True)
        if kind is not None:
            controller.tmux("new-session", "-d", "-s", BELL_SESSION, "sleep infinity")
        controller.pipe_output(f"{JOB_MOUNT}/{LOG_FILE}", size_now=0)
        return controller

    def _create_service(self, job: Job, home: Path, user: str, launch: Launch | None) -> None:
        from docker.types import Resources, RestartPolicy

        from controllers.container import MANAGED_LABEL
        from controllers.image import DEFAULT_IMAGE
        from controllers.image.push import registry_name

        image = job.image or DEFAULT_IMAGE
        if self.settings.registry and not _names_registry(image):
            image = registry_name(image, self.settings.registry)
        labels = {"luzia.job": job.id, "luzia.home": str(home), "luzia.backend": "swarm"}
        if job.project:
            labels["luzia.project"] = job.project
        settings = launch.container if launch else None
        network = launch.network if launch else None
        cpus = settings.cpus if settings else None
        memory = _bytes(settings.memory) if settings and settings.memory else None
        resources = Resources(
            cpu_limit=int(cpus * 1e9) if cpus else None,
            cpu_reservation=int(cpus * 1e9) if cpus else None,
            mem_limit=memory,
            mem_reservation=memory,
        )
        if settings and settings.pids:  # API 1.41; the SDK's Resources has no argument for it
            resources.setdefault("Limits", {})["Pids"] = settings.pids
        with _docker_errors(f"cannot create the swarm service of job {job.id}"):
            self.manager.services.create(
                image,
                command=["sleep", "infinity"],
                name=f"luzia-{job.id}",
                labels=labels,
                container_labels={**labels, MANAGED_LABEL: "1"},
                env=["LANG=C.UTF-8"],
                user=user,
                workdir=WORKSPACE,
                resources=resources,
                restart_policy=RestartPolicy(condition="none"),
                constraints=self._constraints(job),
                init=True,
                cap_drop=["ALL"],
                networks=self._networks(job, network, labels),
            )

    def _networks(self, job: Job, network: str | None, labels: dict[str, str]) -> list[str]:
        """The networks a job's service joins. For luzia's own: an overlay of the job's own
        (``luzia-job-<id>``, made here or kept from an earlier attempt), so no other job can
        reach it, as luzia's network keeps docker jobs apart (swarm has no bridge with
        inter-container traffic off). ``bridge``: none named (the node's default network).
        Else the one named: ``host``, or a swarm-scoped network such as an overlay (swarm
        refuses the service, with its words, for any other)."""
        from luzia.network import is_own

        if network == "bridge":
            return []
        if network is not None and not is_own(network):
            return [network]
        with _docker_errors(f"cannot make the network of job {job.id}"):
            kept = self.manager.networks.list(filters={"label": f"luzia.job={job.id}"})
            if kept:
                return [str(kept[0].id)]
            own = self.manager.networks.create(
                f"luzia-job-{job.id}", driver="overlay", labels=labels, check_duplicate=True
            )
        return [str(own.id)]

    def _constraints(self, job: Job) -> list[str]:
        """``[swarm]``'s placement constraints and the job's project's."""
        own: tuple[str, ...] = ()
        if self.config is not None and job.project and job.project in self.config.projects:
            own = self.config.projects[job.project].constraints
        return [*self.settings.constraints, *own]

    def _wait_running(self, job: Job) -> tuple[_Node, Container]:
        """Wait until swarm has placed the task and its container runs; a task swarm rejects
        (no node fits, the image cannot be pulled) fails the start with swarm's reason."""
        deadline = time.monotonic() + TASK_START_TIMEOUT
        while True:
            service = self._service(job)
            if service is None:
                raise BackendError(f"the swarm service of job {job.id} was removed")
            task = self._task(service)
            if task is not None and task.state in ("failed", "rejected", "shutdown", "orphaned"):
                raise BackendError(f"swarm task of job {job.id} {task.state}: {task.error}")
            if task is not None and task.state == "running" and task.container_id:
                located = self._locate(job)
                if located is not None:
                    return located
            if time.monotonic() > deadline:
                why = f" ({task.state}: {task.error})" if task is not None else ""
                raise BackendError(f"swarm placed no task for job {job.id}{why}")
            time.sleep(TASK_POLL)

    def _controller(
        self, job: Job, node: _Node, container: Container, *, owned: bool
    ) -> _SwarmPane:
        from luzia.launch import read_launch

        pane = _SwarmPane(container, owned=owned, docker_host=node.endpoint)
        pane.mirror_to(job.log_path)
        launch = read_launch(job.job_dir)
        if agent_kind(launch.profile if launch else None) is not None:
            pane.forward_signals(job.job_dir / SIGNALS_DIR)
        return pane

    def reattach(self, job: Job) -> TmuxController | None:
        try:
            located = self._locate(job)
        except BackendError:
            return None
        if located is None or located[1].status != "running":
            return None
        node, container = located
        try:
            return self._controller(job, node, container, owned=False)
        except ControllerError:
            return None

    def sync(self, job: Job) -> None:
        """Copy what ``run.sh`` and the pane's pipe recorded in the container (pid, process
        group, exit status, log) into the job directory here.

        A job whose node is lost may have run there: its pid is then recorded as unknown
        (``0``), so that an engine reconciling it after a restart judges it (``node NAME
        lost``) instead of taking it for one that never started and queueing it again."""
        import docker.errors

        try:
            located = self._locate(job)
        except NodeLost as exc:
            self._lost[job.id] = exc.node
            if read_pid(job) is None:
                write_private(job.job_dir / PID_FILE, b"0\n")
            return
        if located is None:
            return
        _, container = located
        action = f"cannot read the job directory of job {job.id} in its container"
        with _docker_errors(action):
            try:
                stream, _ = container.get_archive(JOB_MOUNT)
            except docker.errors.NotFound:
                return
            # Streamed, as the workspace is: the log can be large, and is never held whole.
            reader = io.BufferedReader(_Chunks(stream), buffer_size=1 << 16)
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    name = member.name.rpartition("/")[2]
                    if name in COPIED_BACK and member.isfile():
                        extracted = tar.extractfile(member)
                        if extracted is not None:
                            _replace(job.job_dir / name, extracted)

    def workspace_copy(self, job: Job) -> Fetch:
        return lambda dest: self._fetch_workspace(job, dest)

    def _fetch_workspace(self, job: Job, dest: Path) -> None:
        """The job's copy of its workspace, from its container (running or not) into ``dest``."""
        import docker.errors

        located = self._locate(job)
        gone = f"the container of job {job.id} is gone, and with it its copy of the workspace"
        if located is None:
            raise BackendError(gone)
        with _docker_errors(f"cannot copy the workspace of job {job.id} from its container"):
            try:
                stream, _ = located[1].get_archive(WORKSPACE)
            except docker.errors.NotFound:
                raise BackendError(gone) from None
            _unpack_workspace(stream, dest)

    def job_alive(self, job: Job) -> bool:
        try:
            return super().job_alive(job)
        except NodeLost:
            return False

    def process_alive(self, job: Job, pid: int) -> bool:
        try:
            return super().process_alive(job, pid)
        except NodeLost:
            return False

    def describe_container(self, job: Job) -> str | None:
        """Why the job's container is gone, or ``None`` if it runs. A container that vanished
        with no exit status recorded may be the first sign of its node going down (a stopping
        dockerd ends its containers before it stops answering): the node is watched for three
        heartbeats, and while its engine does not answer the manager's word is awaited
        (``BackendError``: the engine looks again); only a node that answers and is ``ready``
        lets the container alone be blamed."""
        try:
            why = super().describe_container(job)
            if why is None or read_exit_code(job) is not None:
                return why
            deadline = time.monotonic() + self._settle()
            while time.monotonic() < deadline:
                try:
                    self._locate(job)  # NodeLost once the manager calls the node down
                except NodeLost:
                    raise
                except BackendError:  # its engine stopped answering: the manager decides
                    pass
                time.sleep(0.2)
            node = self._task_node(job)
            if node is not None and not _answers(node.client):
                raise BackendError(f"node {node.name} does not answer; asking its manager again")
            return why
        except NodeLost as exc:
            self._lost[job.id] = exc.node
            return str(exc)

    def lost_node(self, job: Job) -> str | None:
        return self._lost.get(job.id)

    def _task_node(self, job: Job) -> _Node | None:
        service = self._service(job)
        task = self._task(service) if service is not None else None
        if task is None or not task.node_id:
            return None
        return self._node(task.node_id)

    def _settle(self) -> float:
        """Three of the swarm's heartbeats: about when its manager calls a silent node down."""
        with contextlib.suppress(Exception):
            spec = self.manager.swarm.attrs["Spec"]
            return 3 * float(spec["Dispatcher"]["HeartbeatPeriod"]) / 1e9
        return 15.0

    def kill(self, job: Job, grace: float = 10.0) -> None:
        with contextlib.suppress(NodeLost):
            self.sync(job)
        try:
            super().kill(job, grace)
        except NodeLost:
            self._remove_service(job)  # nothing of it runs where swarm can see: let none return

    def finished(self, job: Job) -> None:
        with contextlib.suppress(LuziaError):
            self.sync(job)
        try:
            super().finished(job)
        except NodeLost:
            self._remove_service(job)

    def remove(self, job: Job) -> None:
        """Remove the service: swarm removes its container, and the workspace copy in it. The
        job's network goes once the task has (:meth:`tidy`; at once if it already has)."""
        self._remove_service(job)
        self._lost.pop(job.id, None)
        self._remove_networks(f"luzia.job={job.id}", keep=set())

    def tidy(self, home: Path, busy_ids: set[str]) -> None:
        """Remove the networks of this home's jobs that are not in ``busy_ids`` and have no
        service left (one whose task swarm is still removing refuses, and is tried next time)."""
        with contextlib.suppress(Exception):  # the manager is away: next time
            services = self.manager.services.list(filters={"label": f"luzia.home={home}"})
            kept = {str(s.attrs["Spec"].get("Labels", {}).get("luzia.job")) for s in services}
            self._remove_networks(f"luzia.home={home}", keep=busy_ids | kept)

    def _remove_networks(self, label: str, keep: set[str]) -> None:
        with contextlib.suppress(Exception):  # the manager is away: next time
            for network in self.manager.networks.list(filters={"label": label}):
                if (network.attrs.get("Labels") or {}).get("luzia.job") in keep:
                    continue
                with contextlib.suppress(Exception):  # in use until swarm removes the task
                    network.remove()

    def _remove_service(self, job: Job) -> None:
        service = self._service(job)
        if service is not None:
            with contextlib.suppress(Exception):  # removed meanwhile, or the manager is away
                service.remove()

    def remove_orphans(self, home: Path, known_ids: set[str]) -> list[str]:
        with _docker_errors("cannot list luzia's swarm services"):
            found = self.manager.services.list(filters={"label": f"luzia.home={home}"})
        removed = []
        for service in found:
            if service.attrs["Spec"].get("Labels", {}).get("luzia.job") not in known_ids:
                with _docker_errors(f"cannot remove swarm service {service.name}"):
                    service.remove()
                removed.append(str(service.name))
        self._remove_networks(f"luzia.home={home}", keep=known_ids)
        return removed

    def attach_command(self, job: Job, read_only: bool) -> list[str]:
        from controllers.docker_tmux import TMUX_SOCKET
        from luzia.backends import SESSION

        located = self._locate(job)
        if located is None or located[1].status != "running":
            raise LuziaError(f"job {job.id} has no running container to attach to")
        node, container = located
        docker_cli = shutil.which("docker") or "docker"
        argv = [
            docker_cli, *endpoint_args(node.endpoint), "exec", "-it", "-e", "LANG=C.UTF-8",
            container.id, "tmux", "-u", "-S", TMUX_SOCKET, "attach-session", "-t", SESSION,
        ]  # fmt: skip
        return [*argv, "-r"] if read_only else argv

    def _ensure_default_image(self, image: str | None) -> None:
        """The image comes from the registry (``luzia image push``): nothing is built here."""


class _SwarmPane(DockerTmuxController):
    """A node's container pane whose log lives in the container: the drain waits for the
    container's own file (the job directory here gets it by :meth:`SwarmBackend.sync`).

    Meanwhile the pane's output, as the control stream brings it, is appended to the log
    here (:meth:`mirror_to`), so ``luzia logs -f`` follows a job on another node live; the
    copy from the container replaces it whenever the engine syncs, and at the end.
    """

    def mirror_to(self, path: Path) -> None:
        lock = threading.Lock()

        def on_event(event: PaneEvent) -> None:
            if isinstance(event, Output) and event.data:
                with lock, contextlib.suppress(OSError), path.open("ab") as f:
                    f.write(event.data)

        self.subscribe(on_event)

    def forward_signals(self, signals_dir: Path) -> None:
        """Bring the records the job's ``signal.sh`` hands to its tmux server (its job
        directory is on its node) into ``signals_dir`` here, where the engine's watcher reads
        them as any job's. A renamed bell window wakes a thread of this pane's, which takes
        every waiting record in order; records rung while no engine listened are taken at
        once."""
        wake = threading.Event()

        def on_event(name: str, args: list[str]) -> None:
            if name in ("unlinked-window-renamed", "window-renamed", "exit"):
                wake.set()

        def forward() -> None:
            while True:
                wake.wait()
                wake.clear()
                if self.client.closed.is_set():
                    return
                try:
                    self._take_records(signals_dir)
                except (ControllerError, OSError, ValueError) as exc:
                    if self.client.closed.is_set():
                        return
                    log.warning("signals of pane %s not taken: %s", self.pane_id, exc)

        self.client.on_event(on_event)
        name = f"luzia-bell-{self.pane_id}"
        threading.Thread(target=forward, name=name, daemon=True).start()
        wake.set()

    def _take_records(self, signals_dir: Path) -> None:
        names = self.tmux("list-buffers", "-F", "#{buffer_name}")
        for buffer in sorted(n for n in names if n.startswith(BELL_BUFFER)):
            encoded = "".join(self.tmux("show-buffer", "-b", buffer))
            try:
                taken = put_record(signals_dir, buffer[len(BELL_BUFFER) :], b64decode(encoded))
            except ValueError:
                taken = False
            # Not before: a record this host could not write (OSError) waits for the next bell.
            self.tmux("delete-buffer", "-b", buffer)  # one that is not luzia's goes too
            if not taken:
                log.warning("pane %s: signal buffer %r is not luzia's", self.pane_id, buffer)

    def stop_pipe(self, timeout: float = 60.0, *, size_of: Any = None) -> None:
        super().stop_pipe(timeout)

    def _report_loss(self) -> None:
        """Only the stream is known lost: whether the pane ended, its container did or its
        node is down, the backend finds out with the manager (``node NAME lost``)."""
        self._pane_lost("the stream from the node's Docker Engine ended", stream_only=True)


def _client(endpoint: str | None) -> docker.DockerClient:
    """A Docker client for ``endpoint`` (an address or ``context:NAME``), or for the engine
    the environment names."""
    from controllers.docker_engine import docker_client, endpoint_client

    return docker_client() if endpoint is None else endpoint_client(endpoint)


def _recorded_node(job: Job) -> str | None:
    try:
        return (job.job_dir / NODE_FILE).read_text().strip() or None
    except OSError:
        return None


def _answers(client: docker.DockerClient) -> bool:
    try:
        client.ping()
    except Exception:  # requests' connection errors, docker's: either way it does not answer
        return False
    return True


def _names_registry(image: str) -> bool:
    first = image.split("/", 1)[0]
    return "/" in image and ("." in first or ":" in first or first == "localhost")


def _bytes(memory: str) -> int:
    units = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    text = memory.strip().lower()
    if text[-1:] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _owner(user: str) -> tuple[int, int]:
    uid, _, gid = user.partition(":")
    return int(uid), int(gid) if gid else int(uid)


_Files = dict[str, tuple[bytes | str | None, int]]
"""Path in the container -> (content: bytes for a file, the target for a symlink, ``None`` for a
directory; mode)."""


def _job_files(job: Job) -> _Files:
    """The job directory as the container gets it: the scripts, the env file, an empty log."""
    base = JOB_MOUNT.lstrip("/")
    files: _Files = {
        "luzia": (None, 0o755),
        base: (None, 0o700),
        f"{base}/{LOG_FILE}": (b"", 0o600),
    }
    for name in (RUN_FILE, COMMAND_FILE, ENV_FILE, SIGNAL_SCRIPT):
        path = job.job_dir / name
        if path.exists():
            files[f"{base}/{name}"] = (path.read_bytes(), 0o600)
    files[f"{base}/{SIGNALS_DIR}"] = (None, 0o700)
    return files


def _tree(root: Path, target: str) -> _Files:
    """Every directory, regular file and symlink under ``root``, at ``target``, with its mode.
    A symlink is copied as a link, never followed: what it points to here stays here."""
    files: _Files = {target: (None, root.stat().st_mode & 0o7777)}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        prefix = target if rel == "." else f"{target}/{rel}"
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                files[f"{prefix}/{name}"] = (None, st.st_mode & 0o7777)
            elif stat.S_ISREG(st.st_mode):
                files[f"{prefix}/{name}"] = (Path(path).read_bytes(), st.st_mode & 0o7777)
            elif stat.S_ISLNK(st.st_mode):
                files[f"{prefix}/{name}"] = (os.readlink(path), 0o777)
    return files


def _tar(files: _Files, owner: tuple[int, int]) -> bytes:
    """A tar of ``files``, every entry ``owner``'s."""
    out = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.uid, info.gid = owner
            info.mtime, info.mode = now, mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _unpack_workspace(chunks: Iterable[bytes], dest: Path) -> None:
    """A container's ``/workspace`` archive into ``dest``: directories, regular files (the
    executable bit kept, as git does) and symlinks, as links, never followed. Its ``.git`` is
    left out: the repository here records the files. Whatever the job's processes made of the
    copy, nothing lands outside ``dest``: an entry under a symlink or naming ``..`` is skipped,
    and a file is never opened through a link."""
    reader = io.BufferedReader(_Chunks(chunks), buffer_size=1 << 16)
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts[1:]  # the first is "workspace"
            if not parts or parts[0] == ".git" or ".." in parts or "/" in parts:
                continue
            if not _plain_dirs(dest, parts[:-1]):
                continue
            target = dest.joinpath(*parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if os.path.lexists(target):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if member.issym():
                os.symlink(member.linkname, target)
            elif member.isfile():
                source = tar.extractfile(member)
                mode = 0o755 if member.mode & 0o100 else 0o644
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                with os.fdopen(os.open(target, flags, mode), "wb") as out:
                    if source is not None:
                        shutil.copyfileobj(source, out)
            elif member.islnk():
                linked = PurePosixPath(member.linkname).parts[1:]
                original = dest.joinpath(*linked)
                if linked and ".." not in linked and _plain_dirs(dest, linked[:-1]):
                    with contextlib.suppress(OSError):
                        if original.is_file() and not original.is_symlink():
                            shutil.copy2(original, target)


def _plain_dirs(dest: Path, parts: tuple[str, ...]) -> bool:
    """Whether each of ``parts`` below ``dest`` is a real directory or not there yet."""
    path = dest
    for part in parts:
        path = path / part
        if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
            return False
    return True


class _Chunks(io.RawIOBase):
    """An iterable of byte chunks (a Docker API stream) read as a file."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._rest = chunk
        size = min(len(buffer), len(self._rest))
        buffer[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size


def _replace(path: Path, source: IO[bytes]) -> None:
    """``path``'s content from ``source``, 0600, in one rename: a reader sees the old file or
    the new one, whole."""
    tmp = path.with_name(f".{path.name}.sync")
    with open(tmp, "wb", opener=private_opener) as out:
        shutil.copyfileobj(source, out)
    os.replace(tmp, path)
