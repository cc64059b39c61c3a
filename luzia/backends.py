"""Where a job's pane lives: a container of its own (docker) or a tmux server on the host (local).

Each backend starts a job's pane, finds it again after the engine restarts, kills and removes
it, and says how a person attaches to it. The pane runs ``run.sh`` from the job directory,
which runs the job's command and records its exit status in ``exit_code`` before the prompt
comes back, so the result survives an engine that is not there to see it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from controllers.errors import ControllerError
from luzia.agents import AgentProfile, agent_kind
from luzia.agents.home import HOME_DIR, prepare_home
from luzia.config import agent_command
from luzia.errors import BackendError, LuziaError
from luzia.jobenv import ENV_FILE, remove_env_file, write_env_file
from luzia.jobs import Job
from luzia.paths import (
    EXIT_CODE_FILE,
    LOG_FILE,
    check_private_dir,
    home_tag,
    runtime_dir,
    write_private,
)
from luzia.proctree import (
    KILL_GRACE,
    KILL_WAIT,
    PGROUP_FILE,
    TAG_VAR,
    alive_local,
    end_local,
    process_ids,
    reaper_argv,
    reaper_setup,
)
from luzia.signals import SIGNAL_SCRIPT, SIGNAL_VAR, write_signal_script

if TYPE_CHECKING:
    import docker

    from controllers.controller import TmuxController
    from luzia.config import Config
    from luzia.workspace import Fetch

JOB_MOUNT = "/luzia/job"
"""Where a container sees its job directory."""

_CONTAINER_PGROUP = f"{JOB_MOUNT}/{PGROUP_FILE}"

COMMAND_FILE = "command.sh"
PID_FILE = "pid"
RUN_FILE = "run.sh"
SESSION = "luzia"

EXIT_CODE_WIDTH = 10
"""The exit status is written padded to this width, over a blank line of the same size."""

_RUN_HEAD = """\
# Written by luzia: runs the job's command in the workspace ($1), ends every process it left
# behind, then records its exit status.
"""
_RUN_BODY = f"""\
dir=${{0%/*}}
# What this script writes is the user's alone; the command gets the umask it was given.
umask_was=$(umask)
umask 077
echo $$ > "$dir/pid"
read -r stat < /proc/$$/stat && stat=(${{stat##*) }})
(( stat[2] == $$ )) && echo "${{stat[2]}} ${{stat[3]}}" > "$dir/{PGROUP_FILE}"
# The status's place, reserved now: at the end it is overwritten in place, so a full disk
# cannot lose it.
printf '%-{EXIT_CODE_WIDTH}s\\n' '' > "$dir/exit_code"
# Outlive a hangup, Ctrl-C or SIGTERM (the command still gets them) to clean up after it.
trap : HUP INT TERM
umask "$umask_was"
# Where the agent's hooks report its state (luzia.signals).
export {SIGNAL_VAR}="$dir/{SIGNAL_SCRIPT}"
# The job's variables, from the file only its user can read (never a command line), for the
# command alone: a subshell that becomes the command (this bash, whatever PATH they set).
cd "$1" && (if [[ -e $dir/{ENV_FILE} ]]; then . "$dir/{ENV_FILE}" || exit; fi
    exec "$BASH" "$dir/command.sh")
status=$?
{{reap}}rm -f "$dir/{ENV_FILE}"
printf '%-{EXIT_CODE_WIDTH}d\\n' "$status" 1<> "$dir/exit_code"
exit "$status"
"""


_REAP = f"""{reaper_setup()}luzia_end "$LUZIA_JOB" "$dir/{PGROUP_FILE}" "$luzia_grace"\n"""


def run_script(job: Job, *, reap: bool = True) -> str:
    """``run.sh``: tags every process of the job (see ``luzia.proctree``), runs the command, ends
    whatever it left running, then records the status: "ended" means nothing of it is left.

    ``reap=False`` leaves the reaping to the engine, before it records the end: on this host,
    where a bash scan of every process costs tens of milliseconds and Python reads ``/proc``
    far faster. A container has few processes, and no Python.
    """
    tag = f"{TAG_VAR}={shlex.quote(job.id)}"
    # Again with the tag in the environment it starts with (what /proc shows), same pid.
    again = f'[[ ${{{TAG_VAR}-}} == {shlex.quote(job.id)} ]] || {tag} exec bash "$0" "$@"\n'
    return f"{_RUN_HEAD}{again}{_RUN_BODY.replace('{reap}', _REAP if reap else '')}"


def job_command(job: Job, profile: AgentProfile | None) -> str:
    """What the pane runs: an interactive agent's command, the agent with the task, or the task."""
    if profile is None:
        return agent_command(job.agent, job.task)
    if job.mode == "interactive":
        kind = agent_kind(profile)
        hooks = kind.signal_args() if kind is not None else ""
        return f"{profile.command} {hooks}" if hooks else profile.command
    return agent_command(profile.command_for(job.mode), job.task)


def write_job_scripts(job: Job, command: str, *, reap: bool = True) -> None:
    """``command.sh`` (what the job runs) and ``run.sh`` (runs it, records its exit status), and
    an empty log for tmux to append to: all 0600, whatever umask the pane has.

    A job dispatched before env files (its values in the store) gets one written now.
    """
    write_private(job.job_dir / COMMAND_FILE, (command + "\n").encode())
    write_private(job.job_dir / RUN_FILE, run_script(job, reap=reap).encode())
    write_private(job.job_dir / LOG_FILE, b"")
    write_signal_script(job.job_dir)
    values = {name: value for name, value in job.env.items() if value is not None}
    if values and not (job.job_dir / ENV_FILE).exists():
        write_env_file(job.job_dir, values)


def read_exit_code(job: Job) -> int | None:
    """The status ``run.sh`` recorded, or ``None`` while the command has not ended (the file is
    blank from the start until then)."""
    try:
        return int((job.job_dir / EXIT_CODE_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def log_size(job: Job) -> int:
    """The size of the job's log as this host sees it (the container's is a bind mount)."""
    try:
        return job.log_path.stat().st_size
    except FileNotFoundError:
        return 0


def read_pid(job: Job) -> int | None:
    """The pid ``run.sh`` recorded as it started (in its own pid namespace), or ``None``."""
    try:
        return int((job.job_dir / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


class Backend(ABC):
    """What the engine and the CLI need from a place jobs run in."""

    name: str

    @abstractmethod
    def start(self, job: Job, home: Path, command: str) -> TmuxController:
        """Create the job's pane and its log pipe, ready to run ``command``; return a controller."""

    def sync(self, job: Job) -> None:  # noqa: B027 - a hook most backends need not fill
        """Bring what the job recorded where it runs (pid, exit status, log) into its job
        directory here; a no-op where that directory is shared (local, docker's bind mount)."""

    @abstractmethod
    def reattach(self, job: Job) -> TmuxController | None:
        """A controller on the job's live pane, or ``None`` when it no longer exists."""

    @abstractmethod
    def run_line(self, job: Job) -> str:
        """The line typed into the pane to run the job."""

    def host_path(self, job: Job, path: str) -> Path:
        """Where this host sees a file the job's processes name ``path``."""
        return Path(path)

    def tidy(self, home: Path, busy_ids: set[str]) -> None:  # noqa: B027 - most have nothing
        """Release what ``home``'s jobs other than ``busy_ids`` held and could not give back
        at once (a swarm job's network, freed once swarm has removed its task); every minute."""

    def lost_node(self, job: Job) -> str | None:
        """The node this backend found lost under the job (swarm), which may then run again
        elsewhere if it was dispatched with ``retries``; ``None``: no node was lost."""
        return None

    def workspace_copy(self, job: Job) -> Fetch | None:
        """How to bring the job's workspace here when it works on a copy of the workdir (a
        swarm job's is on its node); ``None``: it works on the workdir itself."""
        return None

    @abstractmethod
    def process_alive(self, job: Job, pid: int) -> bool:
        """Whether the job's ``run.sh`` (``pid`` where it runs) is still running."""

    @abstractmethod
    def job_alive(self, job: Job) -> bool:
        """Whether any process of the job (``run.sh``, its command, what they started) runs."""

    @abstractmethod
    def kill(self, job: Job, grace: float = KILL_GRACE) -> None:
        """SIGTERM every process of the job, SIGKILL what outlives ``grace``; return once none is
        left (``BackendError`` if that cannot be done). Keep what a person may inspect.

        A job that already ended loses only what it left running. The env file goes too.
        """

    @abstractmethod
    def finished(self, job: Job) -> None:
        """The job's command ended: release what is not worth keeping, and end what it left
        running unless ``run.sh`` did (a recorded exit status says so): a pane closed under it,
        SIGKILL. Delete the env file, as ``run.sh`` does unless it was cut short."""

    @abstractmethod
    def remove(self, job: Job) -> None:
        """End everything of the job and remove every trace outside the job directory (whose
        env file stays: the engine removes a job it never finished starting to queue it again)."""

    @abstractmethod
    def remove_orphans(self, home: Path, known_ids: set[str]) -> list[str]:
        """End and remove the panes of ``home``'s jobs not in ``known_ids``; return their names."""

    @abstractmethod
    def attach_command(self, job: Job, read_only: bool) -> list[str]:
        """The argv that puts a person's terminal into the job's pane."""


class DockerBackend(Backend):
    """One hardened container per job, from the job's image, workspace at ``/workspace``."""

    name = "docker"

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client
        self._image_lock = threading.Lock()
        self._image_ready = False

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            from controllers.docker_engine import docker_client

            self._client = docker_client()
        return self._client

    def start(self, job: Job, home: Path, command: str) -> TmuxController:
        from controllers.container import default_user
        from controllers.docker_tmux import DockerTmuxController
        from controllers.image.rootfs import AGENT_HOME
        from luzia.container_settings import DEFAULT_MEMORY, DEFAULT_PIDS, ContainerSettings
        from luzia.launch import read_launch
        from luzia.network import container_network

        write_job_scripts(job, command)
        launch = read_launch(job.job_dir)
        settings = (launch.container if launch else None) or ContainerSettings()
        owner = _owner(settings.user or default_user(job.workdir))
        volumes = {str(job.job_dir): JOB_MOUNT}
        kind = agent_kind(launch.profile if launch else None)
        if kind is not None:
            caller_home = Path(launch.caller_home if launch and launch.caller_home else Path.home())
            volumes[str(prepare_home(job.job_dir, kind, caller_home, owner))] = AGENT_HOME
        _share_job_dir(job, owner)
        self._ensure_default_image(job.image)
        network = container_network(self.client, launch.network if launch else None)
        labels = {"luzia.job": job.id, "luzia.home": str(home)}
        if job.project:
            labels["luzia.project"] = job.project
        controller = DockerTmuxController.create(
            job.image,
            workspace=job.workdir,
            labels=labels,
            name=f"luzia-{job.id}",
            volumes=volumes,
            mounts=settings.mounts,
            user=settings.user,
            memory=settings.memory or DEFAULT_MEMORY,
            pids_limit=settings.pids or DEFAULT_PIDS,
            cpus=settings.cpus,
            network=network,
            client=self.client,
        )
        controller.pipe_output(f"{JOB_MOUNT}/{LOG_FILE}", size_now=log_size(job))
        return controller

    def run_line(self, job: Job) -> str:
        return f"bash {JOB_MOUNT}/{RUN_FILE} /workspace"

    def host_path(self, job: Job, path: str) -> Path:
        """Through the job's bind mounts: its directory, its agent HOME, its workspace."""
        from controllers.image.rootfs import AGENT_HOME

        mounts = (
            (JOB_MOUNT, job.job_dir),
            (AGENT_HOME, job.job_dir / HOME_DIR),
            ("/workspace", job.workdir),
        )
        for inside, outside in mounts:
            if path == inside or path.startswith(inside.rstrip("/") + "/"):
                return outside / path[len(inside) :].lstrip("/")
        return job.job_dir / "no-such-mount" / path.lstrip("/")

    def _ensure_default_image(self, image: str | None) -> None:
        """Build luzia's own image (offline, about a second) the first time a job needs it.

        Any other image is the user's: if it is missing, starting the job says so.
        """
        from controllers.image import DEFAULT_IMAGE, ensure_agent_image

        if image in (None, DEFAULT_IMAGE) and not self._image_ready:
            with self._image_lock:
                ensure_agent_image(DEFAULT_IMAGE, client=self.client)
                self._image_ready = True

    def reattach(self, job: Job) -> TmuxController | None:
        from controllers.docker_tmux import DockerTmuxController

        container = self._container(job)
        if container is None or container.status != "running":
            return None
        try:
            return DockerTmuxController(container, owned=False)
        except ControllerError:
            return None

    def process_alive(self, job: Job, pid: int) -> bool:
        container = self._container(job)
        if container is None or container.status != "running":
            return False
        probe = ["bash", "-c", f"kill -0 {pid}"]  # the image has no kill binary: bash's builtin
        return int(container.exec_run(probe).exit_code) == 0

    def job_alive(self, job: Job) -> bool:
        container = self._container(job)
        if container is None or container.status != "running":
            return False
        with _docker_errors(f"cannot look inside container {container.short_id}"):
            result = container.exec_run(reaper_argv("alive", job.id, _CONTAINER_PGROUP))
        return int(result.exit_code) == 0

    def kill(self, job: Job, grace: float = KILL_GRACE) -> None:
        """The reaper inside gives the job ``grace`` to exit on SIGTERM; then killing the
        container ends everything in it. A job that ended keeps its container."""
        self._stop(job, grace)
        remove_env_file(job.job_dir)

    def _stop(self, job: Job, grace: float) -> None:
        container = self._container(job)
        if container is None or container.status != "running":
            return
        if read_exit_code(job) is not None:
            self._end_processes(container, job, grace)
            return
        action = f"cannot kill container {container.short_id}"
        try:
            with _docker_errors(action):
                container.exec_run(reaper_argv("end", job.id, _CONTAINER_PGROUP, grace))
                container.kill()
        except BackendError:
            if _still_running(container):
                raise
        with _docker_errors(action):
            container.wait(condition="not-running", timeout=KILL_WAIT + 30)
        if _still_running(container):
            raise BackendError(f"{action}: it still runs after SIGKILL")

    def finished(self, job: Job) -> None:
        """End what the command left running (a daemon could go on writing to the workspace);
        keep the container and its tmux: a person may want to look inside (``luzia attach``).
        The agent's HOME goes: it holds copies of the user's credentials."""
        remove_env_file(job.job_dir)
        shutil.rmtree(job.job_dir / HOME_DIR, ignore_errors=True)
        if read_exit_code(job) is not None:
            return
        container = self._container(job)
        if container is not None and container.status == "running":
            self._end_processes(container, job, KILL_GRACE)

    def _end_processes(
        self, container: docker.models.containers.Container, job: Job, grace: float
    ) -> None:
        with _docker_errors(f"cannot end the processes of job {job.id}"):
            result = container.exec_run(reaper_argv("end", job.id, _CONTAINER_PGROUP, grace))
        if int(result.exit_code) != 0:
            output = bytes(result.output or b"").decode(errors="replace").strip()
            why = output.splitlines()[-1] if output else f"exit status {result.exit_code}"
            raise BackendError(f"cannot end the processes of job {job.id}: {why}")

    def remove(self, job: Job) -> None:
        from controllers.container import remove_container

        container = self._container(job)
        if container is not None:
            with _docker_errors(f"cannot remove the container of job {job.id}"):
                remove_container(container)

    def orphans(self, home: Path, known_ids: set[str]) -> list[docker.models.containers.Container]:
        """This home's containers whose job the store does not know (a crash between creating
        the container and recording it, a store reset)."""
        with _docker_errors("cannot list luzia's containers"):
            found = self.client.containers.list(all=True, filters={"label": f"luzia.home={home}"})
        return [c for c in found if c.labels.get("luzia.job") not in known_ids]

    def remove_orphans(self, home: Path, known_ids: set[str]) -> list[str]:
        from controllers.container import remove_container

        removed = []
        for container in self.orphans(home, known_ids):
            with _docker_errors(f"cannot remove container {container.short_id}"):
                remove_container(container)
            removed.append(str(container.name))
        return removed

    def attach_command(self, job: Job, read_only: bool) -> list[str]:
        from controllers.docker_tmux import TMUX_SOCKET

        container = self._container(job)
        if container is None or container.status != "running":
            raise LuziaError(f"job {job.id} has no running container to attach to")
        docker_cli = shutil.which("docker") or "docker"
        argv = [
            docker_cli,
            "exec",
            "-it",
            "-e",
            "LANG=C.UTF-8",
            container.id,
            "tmux",
            "-u",
            "-S",
            TMUX_SOCKET,
            "attach-session",
            "-t",
            SESSION,
        ]
        return [*argv, "-r"] if read_only else argv

    def read_in_container(self, job: Job, path: str) -> str:
        """A small file inside the job's running container (e.g. ``/proc/PID/stat``)."""
        container = self._container(job)
        if container is None or container.status != "running":
            raise LuziaError(f"job {job.id} has no running container")
        result = container.exec_run(["cat", path])
        if result.exit_code != 0:
            raise LuziaError(f"cannot read {path} in container {container.short_id}")
        return bytes(result.output).decode("utf-8", "replace")

    def describe_container(self, job: Job) -> str | None:
        """``container 1a2b3c4d5e6f removed`` / ``... exited (137)``, or ``None`` if it runs."""
        from controllers.container import loss_state

        container = self._container(job)
        if container is None:
            return f"container {(job.container_id or '')[:12] or f'of job {job.id}'} removed"
        still_running, why = loss_state(container, settle=0)
        return None if still_running else why

    def _container(self, job: Job) -> docker.models.containers.Container | None:
        """The job's container, by recorded id, else by label (a start cut short)."""
        import docker.errors

        with _docker_errors(f"cannot find the container of job {job.id}"):
            try:
                if job.container_id:
                    return self.client.containers.get(job.container_id)
                found = self.client.containers.list(
                    all=True, filters={"label": f"luzia.job={job.id}"}
                )
                return found[0] if found else None
            except docker.errors.NotFound:
                return None


class LocalBackend(Backend):
    """A tmux server of the job's own on this host, its socket in a private directory."""

    name = "local"

    def start(self, job: Job, home: Path, command: str) -> TmuxController:
        from controllers.local import LocalTmuxController
        from luzia.launch import read_launch

        write_job_scripts(job, command, reap=False)  # the engine reaps: see run_script
        # The only variable tmux is given (as its client's PATH: it starts the pane with it,
        # never on a command line); run.sh loads the rest.
        env = {}
        launch = read_launch(job.job_dir)
        path = job.env.get("PATH") or (launch.caller_path if launch is not None else None)
        if path:
            env["PATH"] = path  # the job's, else the dispatcher's, not the engine's
        controller = LocalTmuxController(
            local_socket(home, job.id), session=SESSION, cwd=job.workdir, env=env
        )
        controller.pipe_output(str(job.job_dir / LOG_FILE), size_now=log_size(job))
        return controller

    def run_line(self, job: Job) -> str:
        return f"bash {shlex.quote(str(job.job_dir / RUN_FILE))} {shlex.quote(str(job.workdir))}"

    def reattach(self, job: Job) -> TmuxController | None:
        from controllers.local import LocalTmuxController

        if not job.tmux_target:
            return None
        socket = _socket_of(job)
        if not socket.exists():
            return None
        try:
            controller = LocalTmuxController(socket, session=SESSION)
        except ControllerError:
            return None
        return controller

    def process_alive(self, job: Job, pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def job_alive(self, job: Job) -> bool:
        return alive_local(job.id, _pgroup(job))

    def kill(self, job: Job, grace: float = KILL_GRACE) -> None:
        self._stop(job, grace)
        remove_env_file(job.job_dir)

    def _stop(self, job: Job, grace: float = KILL_GRACE) -> None:
        """End the job's processes, then its tmux server, then whatever the pane's hangup caught
        as it started (``run.sh`` tags itself first thing: a second look finds it)."""
        end_local(job.id, _pgroup(job), grace)
        _kill_tmux_server(_socket_of(job))
        end_local(job.id, _pgroup(job), grace)

    def remove(self, job: Job) -> None:
        """Keeps the env file: a job whose start the engine never finished is queued again."""
        self._stop(job)
        _socket_of(job).unlink(missing_ok=True)

    def finished(self, job: Job) -> None:
        """End what the command left running and the job's tmux server: the workspace is on this
        host and the log holds the pane, so unlike a container there is nothing to inspect.
        Leftovers are reaped here, not in ``run.sh`` (see ``run_script``)."""
        remove_env_file(job.job_dir)
        end_local(job.id, _pgroup(job))
        socket = _socket_of(job)
        _kill_tmux_server(socket)
        socket.unlink(missing_ok=True)

    def remove_orphans(self, home: Path, known_ids: set[str]) -> list[str]:
        removed = []
        for socket, job_id in _home_sockets(home):
            if job_id not in known_ids:
                end_local(job_id)
                _kill_tmux_server(socket)
                socket.unlink(missing_ok=True)
                removed.append(socket.name)
        return removed

    def attach_command(self, job: Job, read_only: bool) -> list[str]:
        if not job.tmux_target or not _socket_of(job).exists():
            raise LuziaError(f"job {job.id} has no tmux server to attach to")
        argv = ["tmux", "-u", "-S", job.tmux_target, "attach-session", "-t", SESSION]
        return [*argv, "-r"] if read_only else argv


def local_socket(home: Path, job_id: str) -> Path:
    """A short socket path (sockets are limited to ~107 bytes) in the checked, private runtime
    directory (raises ``UnsafeRuntimeDir``, naming it, if another user could reach it)."""
    return runtime_dir() / f"{home_tag(home)}-{job_id}.sock"


def _home_sockets(home: Path) -> list[tuple[Path, str]]:
    """The tmux sockets of ``home``'s jobs, with their job ids."""
    prefix = f"{home_tag(home)}-"
    return [
        (path, path.name.removeprefix(prefix).removesuffix(".sock"))
        for path in local_socket(home, "").parent.glob(f"{prefix}*.sock")
    ]


def _pgroup(job: Job) -> str:
    return str(job.job_dir / PGROUP_FILE)


def _socket_of(job: Job) -> Path:
    """Where the job's tmux server listens; found from its directory if a start cut short
    never recorded it (``jobs/<id>`` under the home). Its directory is checked like the runtime
    directory: a socket there that another user could swap is never used."""
    if job.tmux_target:
        socket = Path(job.tmux_target)
        if os.path.lexists(socket.parent):  # gone: so is the socket, nothing to use
            check_private_dir(socket.parent)
        return socket
    return local_socket(job.job_dir.parent.parent, job.id)


def _kill_tmux_server(socket: Path) -> None:
    """End the tmux server of ``socket``, and any tmux process started for it: an engine killed
    while its client was starting the server leaves one whose socket is not made yet, or was
    removed as stale meanwhile, which ``kill-server`` cannot reach."""
    if socket.exists():
        subprocess.run(
            ["tmux", "-S", str(socket), "kill-server"],
            capture_output=True,
            check=False,
            timeout=10,
        )
    for pid in _tmux_pids(socket):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _tmux_pids(socket: Path) -> list[int]:
    """Our processes whose command line names ``socket`` after ``-S`` (its server, clients)."""
    wanted = os.fsencode(socket)
    found = []
    for pid in process_ids(owner=os.getuid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if any(a == b"-S" and b == wanted for a, b in itertools.pairwise(argv)):
            found.append(pid)
    return found


def _owner(user: str) -> tuple[int, int]:
    """The container's user, ``UID[:GID]``, as the owner of the files it is given."""
    uid, _, gid = user.partition(":")
    return int(uid), int(gid) if gid else -1


def _share_job_dir(job: Job, owner: tuple[int, int]) -> None:
    """Let the container's user write the log and exit code."""
    if os.getuid() == 0 and owner != (0, 0):
        for path in (job.job_dir, *job.job_dir.iterdir()):
            os.chown(path, *owner)


@contextlib.contextmanager
def _docker_errors(action: str) -> Iterator[None]:
    """Docker SDK failures during ``action`` as ``BackendError`` (a ``LuziaError``)."""
    from controllers.docker_engine import translate_docker_errors

    try:
        with translate_docker_errors(action):
            yield
    except ControllerError as exc:
        raise BackendError(str(exc)) from exc


def _still_running(container: docker.models.containers.Container) -> bool:
    with _docker_errors(f"cannot inspect container {container.short_id}"):
        container.reload()
    return bool(container.status == "running")


def backend_for(
    name: str, docker_client: docker.DockerClient | None = None, config: Config | None = None
) -> Backend:
    """The backend called ``name``; ``config`` (default: the config file) says where a swarm is."""
    if name == "docker":
        return DockerBackend(docker_client)
    if name == "local":
        return LocalBackend()
    if name == "swarm":
        from luzia.config import Config
        from luzia.swarm import SwarmBackend

        config = config if config is not None else Config.load()
        return SwarmBackend(config.swarm, config)
    raise LuziaError(f"unknown backend {name!r}")
