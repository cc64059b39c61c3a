"""Private state: other local users can neither read luzia's home nor swap its sockets.

A second, unprivileged user is created for these tests (``useradd``, as root) and removed
afterwards; without root they skip, except under ``CI=true``, where they fail. Homes live in a
world-traversable directory, so only luzia's own modes keep that user out; every process runs
with umask 022, so a file created without an explicit mode would show up as 0644.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controllers.pytest_plugin import host_lock, in_ci
from luzia.network import NETWORK_VAR
from luzia.paths import home_tag

SCRIPT = shutil.which("luzia") or str(Path(sys.executable).parent / "luzia")
BOUND = 60.0
"""The most any wait here may take before the test fails (not a timing check)."""


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int

    def argv(self) -> list[str]:
        """The prefix that runs a command as this user."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups"]

    def python(self) -> tuple[str, dict[str, str]]:
        """An interpreter this user may run, with what it needs to find luzia.

        This one, unless it lives where the user cannot go (pyenv under a private ``/root``):
        then the system's of the same minor version, given this one's packages.
        """
        if attempt(self, lambda: os.stat(os.path.realpath(sys.executable))) == "ok":
            return sys.executable, {}
        minor = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        other = next(
            (p for p in (f"/usr/bin/{minor}", f"/usr/local/bin/{minor}") if os.access(p, os.X_OK)),
            None,
        )
        assert other, f"user {self.name} can run neither {sys.executable} nor a system {minor}"
        root = str(Path(__file__).resolve().parent.parent)
        return other, {"PYTHONPATH": f"{sysconfig.get_paths()['purelib']}:{root}"}


@pytest.fixture(scope="module")
def make_user() -> Iterator[Callable[[], User]]:
    """Creates throwaway users on demand; all are removed at the end of the module."""
    if os.geteuid() != 0:
        if in_ci():
            pytest.fail("CI=true: these tests need root, to create a second user")
        pytest.skip("needs root, to create a second, unprivileged user")
    made: list[str] = []

    def make() -> User:
        name = f"luzia-test-{secrets.token_hex(3)}"
        with host_lock("useradd"):  # parallel workers' useradd would race for /etc/passwd's lock
            subprocess.run(
                ["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True, capture_output=True
            )
        made.append(name)
        entry = pwd.getpwnam(name)
        return User(name, entry.pw_uid, entry.pw_gid)

    yield make
    for name in made:
        with host_lock("useradd"):
            subprocess.run(["userdel", name], check=True, capture_output=True)


@pytest.fixture
def other(make_user: Callable[[], User]) -> User:
    return make_user()


def attempt(user: User, action: Callable[[], object]) -> str:
    """Run ``action`` as ``user`` in a forked child: ``ok``, ``denied`` (PermissionError) or
    the unexpected error."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)
            try:
                action()
                outcome = "ok"
            except PermissionError:
                outcome = "denied"
            except BaseException as exc:
                outcome = repr(exc)
            os.write(write_end, outcome.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    return outcome


def read_file(path: Path) -> Callable[[], object]:
    return lambda: path.read_bytes()


def list_dir(path: Path) -> Callable[[], object]:
    return lambda: os.listdir(path)


def assert_private(home: Path) -> list[Path]:
    """Every directory under ``home`` (and itself) 0700, every file 0600; returns the files."""
    files = []
    assert stat.S_IMODE(home.stat().st_mode) == 0o700, home
    for path in home.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            assert mode == 0o700, (path, oct(mode))
        else:
            assert path.is_file(), path
            assert mode == 0o600, (path, oct(mode))
            files.append(path)
    return files


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory every user may traverse (unlike pytest's tmp_path): only luzia's modes guard
    what is in it."""
    path = Path(tempfile.mkdtemp(prefix="luzia-perms-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Luzia:
    """The ``luzia`` command for one home, as root or as ``user``, with umask 022."""

    def __init__(self, base: Path, home: Path, user: User | None = None) -> None:
        self.home = home
        self.user = user
        config = base / "config.toml"
        config.touch()
        tmp = base / "tmp"
        tmp.mkdir(exist_ok=True)
        tmp.chmod(0o1777)
        self.runtime = tmp / f"luzia-{user.uid if user else 0}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LUZIA_", "XDG_")) or k == NETWORK_VAR  # this run's network
        }
        self.env = env | {
            "LUZIA_HOME": str(home),
            "LUZIA_CONFIG": str(config),
            "TMPDIR": str(tmp),
            "HOME": str(home.parent),
        }
        self.argv = [SCRIPT]
        if user is not None:
            python, extra = user.python()
            self.argv = [*user.argv(), python, "-m", "luzia"]
            self.env |= extra

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv, *args],
            env=self.env,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=BOUND,
            check=False,
            umask=0o022,
        )

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def settled(self, job_id: str) -> dict[str, Any]:
        """The job's status once it is final (polls ``status``: no socket needed)."""
        deadline = time.monotonic() + BOUND
        while True:
            job: dict[str, Any] = self.json("status", job_id)
            if job["state"] in ("completed", "failed", "killed"):
                return job
            assert time.monotonic() < deadline, job
            time.sleep(0.1)

    def cleanup(self) -> None:
        """Remove the jobs, stop the engine, remove what a failed test left (containers)."""
        if _squatted(self.runtime):  # else nothing could be removed: it is refused
            shutil.rmtree(self.runtime)
        self.run("clean", "--all", "-y")
        status = self.run("daemon", "status", "--json")
        self.run("daemon", "stop")
        pid = json.loads(status.stdout or "{}").get("pid")
        if pid:
            _wait_gone(pid)
        try:
            from controllers.docker_engine import docker_client

            client = docker_client()
        except Exception:
            return
        found = client.containers.list(all=True, filters={"label": f"luzia.home={self.home}"})
        for container in found:
            container.remove(force=True)


def _squatted(path: Path) -> bool:
    return path.is_dir() and path.stat().st_uid != int(path.name.removeprefix("luzia-"))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + BOUND
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"engine {pid} still runs")
        time.sleep(0.05)


@pytest.fixture
def luzia(base: Path) -> Iterator[Luzia]:
    cli = Luzia(base, base / "home")
    yield cli
    cli.cleanup()


# ------------------------------------------------------------------ another user reads nothing


def test_another_user_reads_nothing_of_the_home(luzia: Luzia, base: Path, other: User) -> None:
    control = base / "public"
    control.write_text("anyone may read this\n")
    control.chmod(0o644)
    assert attempt(other, read_file(control)) == "ok"  # the probe itself works

    workspace = base / "ws"
    workspace.mkdir()
    job_id = luzia.ok("dispatch", "--backend", "local", "--workdir", str(workspace), "echo hi")
    job_id = job_id.strip()
    assert luzia.settled(job_id)["state"] == "completed"
    home = luzia.home
    job_dir = home / "jobs" / job_id
    for path in (home, home / "jobs", job_dir):
        assert attempt(other, list_dir(path)) == "denied", path
    files = assert_private(home)
    names = {path.name for path in files}
    expected = {"luzia.db", "engine.log", "engine.lock", "task.txt", "output.log", "run.sh"}
    assert expected | {"command.sh", "pid", "exit_code", "launch.json"} <= names
    assert (job_dir / "output.log").read_text().count("hi") >= 1

    # Opened up by hand (or made by an older luzia): the files inside still hold.
    home.chmod(0o755)
    (home / "jobs").chmod(0o755)
    for path in files:
        assert attempt(other, read_file(path)) == "denied", path
    assert attempt(other, list_dir(job_dir)) == "denied"


# ------------------------------------------------------------------ modes on every path


def test_modes_when_dispatched_through_the_api(
    base: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from luzia import Config, JobState, ResponsiveDispatcher

    home = base / "api-home"
    monkeypatch.setenv("LUZIA_NO_AUTOSTART", "1")
    monkeypatch.setenv("TMPDIR", str(base))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    old = os.umask(0o022)
    try:
        dispatcher = ResponsiveDispatcher(home=home, config=Config())
        job_id = dispatcher.dispatch_task("echo api", backend="local", workdir=workspace)
        assert {p.name for p in assert_private(home)} >= {"luzia.db", "task.txt"}
        engine = dispatcher.start_background_monitor()
        try:
            job = dispatcher.wait_for_job(job_id, timeout=BOUND)
            assert job.state is JobState.COMPLETED, job
            names = {p.name for p in assert_private(home)}
            assert {"engine.lock", "engine.json", "output.log", "exit_code"} <= names
        finally:
            engine.stop()
            dispatcher.remove_job(job_id)
            dispatcher.close()
    finally:
        os.umask(old)


def test_modes_when_the_engine_starts(luzia: Luzia) -> None:
    luzia.ok("daemon", "start")
    names = {p.name for p in assert_private(luzia.home)}
    assert {"engine.lock", "engine.log", "engine.json"} <= names


@pytest.mark.docker
def test_modes_of_a_docker_job_shared_with_the_workspace_owner(
    luzia: Luzia, base: Path, agent_image: str, make_user: Callable[[], User]
) -> None:
    owner, intruder = make_user(), make_user()
    workspace = base / "ws"
    workspace.mkdir()
    os.chown(workspace, owner.uid, owner.gid)
    job_id = luzia.ok(
        "dispatch",
        *("--backend", "docker", "--image", agent_image, "--workdir", str(workspace)),
        "echo in-container > /workspace/made; echo done",
    ).strip()
    job = luzia.settled(job_id)
    assert (job["state"], job["exit_code"]) == ("completed", 0), job
    job_dir = luzia.home / "jobs" / job_id
    assert job_dir.stat().st_uid == owner.uid  # the container's user writes its log and status
    files = assert_private(luzia.home)
    assert {"output.log", "exit_code", "pid"} <= {p.name for p in files}
    assert "done" in (job_dir / "output.log").read_text()
    assert {p.stat().st_uid for p in job_dir.iterdir()} == {owner.uid}
    assert attempt(intruder, list_dir(job_dir)) == "denied"
    # The command itself keeps the umask it was given: luzia's 077 is for its own files.
    assert stat.S_IMODE((workspace / "made").stat().st_mode) & 0o044 == 0o044


# ------------------------------------------------------------------ squatted sockets


def one_line_error(done: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert done.returncode != 0 and "Traceback" not in done.stderr, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("luzia: error: "), done.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])


def squat(user: User, path: Path) -> None:
    """``mkdir -m 777 PATH`` as ``user``, before luzia's first use of it."""

    def make() -> None:
        os.mkdir(path)
        os.chmod(path, 0o777)

    assert attempt(user, make) == "ok"
    assert path.stat().st_uid == user.uid


@pytest.mark.parametrize("engine_user", ["root", "unprivileged"])
def test_squatted_socket_directory_is_refused_and_the_engine_runs_on(
    base: Path, make_user: Callable[[], User], engine_user: str
) -> None:
    user = make_user() if engine_user == "unprivileged" else None
    squatter = make_user()
    mine = base / "mine"
    mine.mkdir(mode=0o700)
    if user is not None:
        os.chown(mine, user.uid, user.gid)
    luzia = Luzia(base, mine / "home", user)
    try:
        squat(squatter, luzia.runtime)
        luzia.ok("daemon", "start")
        status = luzia.json("daemon", "status")
        assert status["running"] is True
        assert Path(f"/proc/{status['pid']}").stat().st_uid == (user.uid if user else 0)

        job_id = luzia.ok("dispatch", "--backend", "local", "--workdir", str(mine), "echo x")
        job = luzia.settled(job_id.strip())
        assert job["state"] == "failed"
        assert f"refusing the socket directory {luzia.runtime}" in job["message"], job
        assert f"belongs to uid {squatter.uid}" in job["message"]
        assert os.listdir(luzia.runtime) == []  # never used: nothing of ours in it

        again = luzia.json("daemon", "status")
        assert again["running"] is True and again["pid"] == status["pid"]
        assert _alive(status["pid"])
        # The CLI refuses it too: removing the job would look for its tmux server there.
        one_line_error(luzia.run("rm", job_id.strip()), f"socket directory {luzia.runtime}")
        log = (luzia.home / "engine.log").read_text()
        assert f"refusing the socket directory {luzia.runtime}" in log
        assert "Traceback" not in log
    finally:
        luzia.cleanup()


def test_squatted_wake_socket_does_not_kill_an_unprivileged_engine(
    base: Path, make_user: Callable[[], User]
) -> None:
    user, squatter = make_user(), make_user()
    mine = base / "mine"
    mine.mkdir(mode=0o700)
    os.chown(mine, user.uid, user.gid)
    luzia = Luzia(base, mine / "home", user)
    try:
        # The other user's files where the engine's sockets go (put there by root: the
        # directory is the engine user's own, so no one else could).
        luzia.runtime.mkdir(mode=0o700)
        os.chown(luzia.runtime, user.uid, user.gid)
        tag = home_tag(luzia.home)
        for name in (f"{tag}.wake", f"{tag}.ctl"):
            (luzia.runtime / name).touch()
            os.chown(luzia.runtime / name, squatter.uid, squatter.gid)

        luzia.ok("daemon", "start")
        status = luzia.json("daemon", "status")
        assert status["running"] is True
        assert Path(f"/proc/{status['pid']}").stat().st_uid == (user.uid if user else 0)
        job_id = luzia.ok("dispatch", "--backend", "local", "--workdir", str(mine), "echo hi")
        job = luzia.settled(job_id.strip())
        assert (job["state"], job["exit_code"]) == ("completed", 0), job
        assert (luzia.runtime / f"{tag}.wake").lstat().st_uid == user.uid
        assert _alive(status["pid"])
        assert luzia.json("daemon", "status")["pid"] == status["pid"]
        assert attempt(squatter, list_dir(luzia.home)) == "denied"
    finally:
        luzia.cleanup()


# ------------------------------------------------------------------ a home open to others


def test_an_open_home_is_warned_about_by_the_cli_and_doctor(luzia: Luzia) -> None:
    luzia.ok("daemon", "start")
    quiet = luzia.run("jobs")
    assert quiet.returncode == 0 and "warning" not in quiet.stderr

    luzia.home.chmod(0o750)
    done = luzia.run("jobs")
    assert done.returncode == 0
    assert done.stderr.splitlines()[:1] == [
        f"luzia: warning: {luzia.home} is open to other users (mode 0750); they can read its "
        f"jobs and logs: chmod 700 {luzia.home}"
    ]
    report = luzia.run("doctor", "--json")
    checks = {check["name"]: check for check in json.loads(report.stdout)["checks"]}
    assert checks["LUZIA_HOME"]["status"] == "warn"
    assert "mode 0750" in checks["LUZIA_HOME"]["detail"]
    assert checks["LUZIA_HOME"]["fix"] == f"chmod 700 {luzia.home}"
    assert "warning" not in report.stderr
    assert checks["sockets"]["status"] == "ok"
