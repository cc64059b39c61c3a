"""A docker job's container settings: mounts, memory, cpus, pids, user, and the host by name.

The checks and their precedence (job over project over ``[defaults]``) need no Docker; what a
setting does is seen inside a real job container and in ``docker inspect`` of it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from luzia.config import Config
from luzia.container_settings import ContainerSettings, Mount, settings
from luzia.dispatcher import ResponsiveDispatcher
from luzia.errors import ConfigError, UsageError
from luzia.jobs import JobState
from luzia.launch import LAUNCH_FILE, Launch, read_launch

SCRIPT = shutil.which("luzia") or str(Path(sys.executable).parent / "luzia")


# -------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"memory": "lots"}, "memory must be a size like"),
        ({"memory": "1m"}, "memory must be at least 6m"),
        ({"cpus": "0"}, "cpus must be a number of CPUs >= 0.01"),
        ({"cpus": "many"}, "cpus must be a number"),
        ({"pids": "0"}, "pids must be a whole number >= 1"),
        ({"pids": "1.5"}, "pids must be a whole number >= 1"),
        ({"user": "agent"}, "user must be UID or UID:GID"),
        ({"mounts": ["/nonexistent-luzia-src:/data"]}, "does not exist on this host"),
        ({"mounts": ["/tmp:data"]}, "the destination must be an absolute path"),
        ({"mounts": ["/tmp:/workspace/sub"]}, "/workspace is luzia's own"),
        ({"mounts": ["/tmp:/luzia/job"]}, "/luzia/job is luzia's own"),
        ({"mounts": ["/tmp:/home/agent/.cache/../x"]}, "/home/agent is luzia's own"),
        ({"mounts": ["/tmp:/"]}, "cannot mount over the container's root"),
        ({"mounts": ["/tmp:/data:rx"]}, "mount must be SRC:DST or SRC:DST:ro"),
        ({"mounts": ["/tmp"]}, "mount must be SRC:DST or SRC:DST:ro"),
        ({"mounts": ["/tmp:/data", "/var:/data/"]}, "two mounts at /data"),
    ],
)
def test_bad_settings_are_one_line_usage_errors(given: dict[str, object], problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        settings(**given)  # type: ignore[arg-type]
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_settings_are_normalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    checked = settings(
        mounts=["data:/srv/data/:ro", "/tmp:/scratch:rw"],
        memory="512M",
        cpus="1.5",
        pids="64",
        user="1000:1000",
    )
    assert checked == ContainerSettings(
        mounts=(Mount(str(tmp_path / "data"), "/srv/data", True), Mount("/tmp", "/scratch")),
        memory="512m",
        cpus=1.5,
        pids=64,
        user="1000:1000",
    )
    record = Launch(None, "/bin", "none", checked)
    (tmp_path / LAUNCH_FILE).write_bytes(record.to_json())
    assert read_launch(tmp_path) == record


# -------------------------------------------------------------------------- precedence


def config_file(tmp_path: Path, workspace: Path, text: str) -> Config:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "cache").mkdir(exist_ok=True)
    file = tmp_path / "config.toml"
    file.write_text(text.replace("WORKSPACE", str(workspace)))
    return Config.load(file)


CONFIG = """
[defaults]
memory = "1g"
cpus = 1
pids = 100
mounts = ["cache:/cache:ro", "data:/data"]
[projects.web]
path = "WORKSPACE"
memory = "3g"
mounts = ["data:/data:ro"]
"""


def launched(d: ResponsiveDispatcher, job_id: str) -> ContainerSettings | None:
    launch = read_launch(d.get_status(job_id).job_dir)
    assert launch is not None
    return launch.container


def test_the_job_wins_over_its_project_which_wins_over_defaults(
    tmp_path: Path, workspace: Path
) -> None:
    config = config_file(tmp_path, workspace, CONFIG)
    d = ResponsiveDispatcher(home=tmp_path / "home", config=config)
    owner = f"{workspace.stat().st_uid}:{workspace.stat().st_gid}"
    cache, data = str(tmp_path / "cache"), str(tmp_path / "data")

    plain = launched(d, d.dispatch_task("true", workdir=workspace, backend="docker"))
    assert plain == ContainerSettings(
        (Mount(cache, "/cache", True), Mount(data, "/data")), "1g", 1.0, 100, owner
    )
    project = launched(d, d.dispatch_task("true", "web", backend="docker"))
    assert project == ContainerSettings(
        (Mount(cache, "/cache", True), Mount(data, "/data", True)), "3g", 1.0, 100, owner
    )
    job = launched(
        d,
        d.dispatch_task(
            "true",
            "web",
            backend="docker",
            mounts=[f"{tmp_path}:/cache", f"{tmp_path}:/extra:ro"],
            memory="64m",
            cpus=0.5,
            pids=10,
            user="1234:5678",
        ),
    )
    assert job == ContainerSettings(
        (
            Mount(str(tmp_path), "/cache"),
            Mount(data, "/data", True),
            Mount(str(tmp_path), "/extra", True),
        ),
        "64m",
        0.5,
        10,
        "1234:5678",
    )
    assert launched(d, d.dispatch_task("true", "web", backend="local")) is None
    d.close()


def test_nothing_set_means_2g_512_pids_and_the_workspace_owner(
    tmp_path: Path, workspace: Path
) -> None:
    d = ResponsiveDispatcher(home=tmp_path / "home", config=Config())
    st = workspace.stat()
    got = launched(d, d.dispatch_task("true", workdir=workspace, backend="docker"))
    assert got == ContainerSettings((), "2g", None, 512, f"{st.st_uid}:{st.st_gid}")
    d.close()


def test_settings_given_to_a_local_job_are_refused_and_nothing_recorded(
    tmp_path: Path, workspace: Path
) -> None:
    d = ResponsiveDispatcher(home=tmp_path / "home", config=Config())
    given: list[dict[str, Any]] = [
        {"memory": "1g"},
        {"cpus": 1.0},
        {"mounts": ["/tmp:/x"]},
        {"network": "none"},
    ]
    for options in given:
        with pytest.raises(UsageError) as caught:
            d.dispatch_task("true", workdir=workspace, backend="local", **options)
        assert str(caught.value).endswith("only for docker jobs; this job's backend is local")
    assert d.list_jobs() == []
    d.close()


def test_config_errors_name_the_file_line_and_key(tmp_path: Path, workspace: Path) -> None:
    file = tmp_path / "config.toml"
    cases = {
        '[defaults]\nmemory = "huge"\n': "line 2: defaults.memory must be a size like",
        "[defaults]\npids = 0\n": "line 2: defaults.pids must be a whole number >= 1",
        '[defaults]\nmounts = "/tmp:/x"\n': 'line 2: defaults.mounts must be a list of "SRC:DST',
        '[projects.a]\npath = "/"\nmounts = ["nope:/x"]\n': "line 3: projects.a.mounts nope:/x:",
        '[projects.a]\npath = "/"\nuser = "root"\n': "line 3: projects.a.user must be UID",
        '[projects.a]\npath = "/"\nbackend = "local"\ncpus = 2\n': (
            "line 4: projects.a.cpus applies only to docker jobs; this project's backend is local"
        ),
    }
    for text, problem in cases.items():
        with pytest.raises(ConfigError) as caught:
            Config.parse(text, file)
        assert problem in str(caught.value), str(caught.value)
    relative = Config.parse(
        '[defaults]\nmounts = ["workspace:/ws:ro"]\n', workspace.parent / "c.toml"
    )
    assert relative.defaults.container.mounts == (Mount(str(workspace), "/ws", True),)


# -------------------------------------------------------------------------- the command line


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LUZIA_")}
    return clean | {
        "LUZIA_HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "LUZIA_NO_AUTOSTART": "1",
    }


def luzia(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_bad_values_on_the_command_line_exit_2_with_one_line_and_record_nothing(
    env: dict[str, str], workspace: Path
) -> None:
    docker_job = ("dispatch", "-w", str(workspace), "--backend", "docker")
    for args in (
        (*docker_job, "--memory", "lots", "true"),
        (*docker_job, "--cpus", "-1", "true"),
        (*docker_job, "--pids", "none", "true"),
        (*docker_job, "--user", "agent", "true"),
        (*docker_job, "--mount", "/nonexistent-luzia-src:/data", "true"),
        (*docker_job, "--mount", "/tmp:/workspace", "true"),
        ("dispatch", "-w", str(workspace), "--backend", "local", "--memory", "1g", "true"),
    ):
        done = luzia(env, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stdout == "" and "Traceback" not in done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("luzia: error: "), done.stderr
    assert json.loads(luzia(env, "jobs", "--json").stdout) == []


def test_status_shows_a_docker_jobs_container_settings(
    env: dict[str, str], workspace: Path, tmp_path: Path
) -> None:
    args = ["--backend", "docker", "--network", "none", "--memory", "300m", "--cpus", "0.5"]
    args += ["--pids", "77", "--user", "1000:1000", "--mount", f"{tmp_path}:/data:ro"]
    job_id = luzia(env, "dispatch", "-w", str(workspace), *args, "true").stdout.strip()
    shown = json.loads(luzia(env, "status", job_id, "--json").stdout)["container"]
    assert shown == {
        "network": "none",
        "mounts": [f"{tmp_path}:/data:ro"],
        "memory": "300m",
        "cpus": 0.5,
        "pids": 77,
        "user": "1000:1000",
    }
    text = luzia(env, "status", job_id).stdout
    for line in (
        "network: none",
        f"mounts:  {tmp_path}:/data:ro",
        "memory:  300m",
        "cpus:  0.5",
        "pids:  77",
        "user:  1000:1000",
    ):
        label, value = line.split(":", 1)
        assert any(
            row.startswith(label + ":") and row.split(":", 1)[1].strip() == value.strip()
            for row in text.splitlines()
        ), (line, text)
    local = luzia(env, "dispatch", "-w", str(workspace), "--backend", "local", "true")
    local_id = local.stdout.strip()
    assert json.loads(luzia(env, "status", local_id, "--json").stdout)["container"] is None
    assert "network:" not in luzia(env, "status", local_id).stdout


# -------------------------------------------------------------------------- in a real container


@pytest.fixture
def host_server() -> Iterator[tuple[int, bytes]]:
    """A TCP server on all of this host's addresses, on a free port; says a token and closes."""
    token = secrets.token_hex(8).encode()
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(None)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(token + b"\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], token
    server.close()
    thread.join(5)


def run_docker_job(
    d: ResponsiveDispatcher, workspace: Path, task: str, **options: object
) -> tuple[str, str]:
    job_id = d.dispatch_task(task, workdir=workspace, backend="docker", **options)  # type: ignore[arg-type]
    job = d.wait_for_job(job_id, timeout=120)
    log = d.read_log(job_id, plain=True).decode()
    assert (job.state, job.exit_code) == (JobState.COMPLETED, 0), (job.message, log)
    assert job.container_id is not None
    return job.container_id, log


@pytest.mark.docker
@pytest.mark.parametrize("network", [None, "bridge"], ids=["luzia's own", "bridge"])
def test_a_job_reaches_a_server_on_the_host_as_host_docker_internal(
    dispatcher: ResponsiveDispatcher,
    workspace: Path,
    agent_image: str,
    host_server: tuple[int, bytes],
    network: str | None,
) -> None:
    port, token = host_server
    task = f"exec 3<>/dev/tcp/host.docker.internal/{port} && cat <&3"
    _, log = run_docker_job(dispatcher, workspace, task, network=network)
    assert token.decode() in log


@pytest.mark.docker
def test_limits_mounts_and_user_take_effect_in_the_job_container(
    dispatcher: ResponsiveDispatcher,
    workspace: Path,
    tmp_path: Path,
    agent_image: str,
    docker_engine: docker.DockerClient,
) -> None:
    read_only, writable = tmp_path / "ro", tmp_path / "rw"
    read_only.mkdir()
    writable.mkdir()
    (read_only / "given.txt").write_text("from the host\n")
    os.chown(writable, 4321, 4321) if os.getuid() == 0 else writable.chmod(0o777)
    task = (
        "id -u; id -g; cat /in/given.txt; "
        "touch /in/new 2>/dev/null && echo ro-written || echo ro-refused; "
        "echo from-the-job > /out/made.txt && echo rw-written"
    )
    container_id, log = run_docker_job(
        dispatcher,
        workspace,
        task,
        mounts=[f"{read_only}:/in:ro", f"{writable}:/out"],
        memory="300m",
        cpus=0.5,
        pids=77,
        user="4321:4321",
    )
    assert log.split() == ["4321", "4321", "from", "the", "host", "ro-refused", "rw-written"]
    assert (writable / "made.txt").read_text() == "from-the-job\n"
    assert not (read_only / "new").exists()
    host = docker_engine.containers.get(container_id).attrs["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (300 * 1024**2, 5 * 10**8, 77)
    assert host["ExtraHosts"] == ["host.docker.internal:host-gateway"]
    binds = {m["Target"]: (m["Source"], m.get("ReadOnly", False)) for m in host["Mounts"]}
    assert binds == {"/in": (str(read_only), True), "/out": (str(writable), False)}


def test_settings_for_an_auto_job_with_no_docker_engine_are_refused(
    env: dict[str, str], workspace: Path, tmp_path: Path
) -> None:
    away = env | {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    done = luzia(away, "dispatch", "-w", str(workspace), "--memory", "1g", "true")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.splitlines() == [
        "luzia: error: memory: only for docker jobs, and no Docker Engine answers (backend auto "
        "would run this job locally); start the Docker Engine, or leave them out"
    ]
    assert luzia(away, "dispatch", "-w", str(workspace), "true").returncode == 0
