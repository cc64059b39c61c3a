"""A job's secrets never leave their file: no argv shows them, the store and every output name
them only, and the file is private and gone once the job ends. Real tmux, real containers."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest

from luzia.backends import backend_for
from luzia.config import Config
from luzia.dispatcher import ResponsiveDispatcher
from luzia.errors import ConfigError, UsageError
from luzia.jobenv import ENV_FILE
from luzia.jobs import JobState
from luzia.store import JobStore
from tests.test_cli_e2e import (  # noqa: F401 (fixtures)
    BOUND,
    Luzia,
    assert_one_error_line,
    backend_args,
    luzia,
)
from tests.test_private_state import User, make_user, other  # noqa: F401 (fixtures)

TOKEN = "zzSEKRIT1zz"
PASSWORD = 'zzSEKRIT2zz it\'s\n$HOME "q"'  # quotes, a newline and a $: all reach the job as is
KILLED_TOKEN = "zzSEKRIT3zz"
"""A value of its own for a test that scans every argv on the machine while the CLI test, in
another worker, passes its own to ``luzia dispatch -e`` on purpose."""


def argv_holding(*values: str) -> list[str]:
    """Every process on the machine whose argv holds one of ``values`` (root sees them all,
    those inside containers too)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if any(value.encode() in argv for value in values):
            found.append(f"{proc.name}: {argv.decode(errors='replace')}")
    return found


def store_bytes(home: Path) -> bytes:
    """The SQLite store as it lies on disk: the database, its WAL and shared memory."""
    return b"".join(p.read_bytes() for p in home.glob("luzia.db*"))


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + BOUND
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_secrets_stay_in_their_file_end_to_end(
    luzia: Luzia,  # noqa: F811
    backend_args: list[str],  # noqa: F811
    workspace: Path,
    other: User,  # noqa: F811
) -> None:
    caller = Luzia(luzia.home, {**luzia.env, "DB_PASSWORD": PASSWORD}, luzia.cwd)
    # The dispatch below has it in its argv on purpose (-e NAME=VALUE): a value of this
    # variant's own, so that another worker's variant, scanning every argv, never sees it.
    token = f"zzSEKRIT1{backend_args[1]}zz"
    secrets = (token, "zzSEKRIT2zz")
    task = (
        'printf "%s|%s|%s" "$API_TOKEN" "$DB_PASSWORD" "$PLAIN" > out.tmp && mv out.tmp out; '
        "while [ ! -e go ]; do sleep 0.1; done"
    )
    args = ["-e", f"API_TOKEN={token}", "-e", "DB_PASSWORD", "-e", "PLAIN=plain-value"]
    job_id = caller.dispatch(*backend_args, "--workdir", str(workspace), *args, task)
    job_dir = luzia.home / "jobs" / job_id

    wait_for(workspace / "out")  # the command runs, past reading its variables
    assert (workspace / "out").read_text() == f"{token}|{PASSWORD}|plain-value"
    assert argv_holding(*secrets) == []
    seen = subprocess.run([*other.argv(), "ps", "-eo", "args"], capture_output=True, text=True)
    assert seen.returncode == 0 and "tmux" in seen.stdout, seen  # another user's view, too
    assert not any(secret in seen.stdout for secret in secrets)
    assert stat.S_IMODE((job_dir / ENV_FILE).stat().st_mode) == 0o600

    status = luzia.status(job_id)
    assert status["env"] == {"API_TOKEN": "***", "DB_PASSWORD": "***", "PLAIN": "plain-value"}
    shown = luzia.ok("status", job_id) + json.dumps(luzia.json("jobs")) + json.dumps(status)
    assert "API_TOKEN=*** DB_PASSWORD=*** PLAIN=plain-value" in shown
    assert not any(secret in shown for secret in secrets)
    if status["container_id"]:  # nor in what the Docker API keeps about the container
        from controllers.docker_engine import docker_client

        container = docker_client().containers.get(status["container_id"])
        assert not any(s in json.dumps(container.attrs) for s in secrets)

    (workspace / "go").touch()
    assert luzia.run("wait", job_id).returncode == 0
    assert not (job_dir / ENV_FILE).exists()
    assert not any(s.encode() in store_bytes(luzia.home) for s in secrets)
    assert "PLAIN=plain-value" in luzia.ok("status", job_id)


@pytest.mark.parametrize(
    ("args", "part"),
    [
        (["-e", "1BAD=x"], "'1BAD' is not a valid variable name"),
        (["-e", "A-B=x"], "'A-B' is not a valid variable name"),
        (["-e", "=x"], "'' is not a valid variable name"),
        (["-e", "LUZIA_JOB=x"], "LUZIA_JOB is luzia's own"),
        (["-e", "NOT_SET_HERE"], "NOT_SET_HERE is not set here"),
        (["--env-file", "missing.env"], "--env-file missing.env: cannot read it"),
        (["--env-file", "."], "--env-file .: cannot read it (Is a directory)"),
        (["--env-file", "nul.env"], "the value of A holds a NUL byte"),
        (["--env-file", "bad.env"], "bad.env line 2: env: 'X Y' is not a valid"),
    ],
    ids=["digit", "dash", "empty", "luzia-own", "unset", "no-file", "dir", "nul", "file-name"],
)
def test_bad_variables_are_one_line_exit_2_and_record_nothing(
    luzia: Luzia,  # noqa: F811
    workspace: Path,
    args: list[str],
    part: str,
) -> None:
    (luzia.cwd / "nul.env").write_bytes(b"A=x\0y\n")
    (luzia.cwd / "bad.env").write_text("# a comment\nX Y=1\n")
    luzia.env.pop("NOT_SET_HERE", None)
    done = luzia.run("dispatch", "--backend", "local", "--workdir", str(workspace), *args, "true")
    assert_one_error_line(done, part, code=2)
    assert luzia.json("jobs", "--all") == []
    assert list((luzia.home / "jobs").iterdir()) == []


def test_env_file_and_caller_values(
    luzia: Luzia,  # noqa: F811
    workspace: Path,
) -> None:
    """``--env-file`` lines (comments, a bare name from the caller) under ``-e``, which wins."""
    (luzia.cwd / "job.env").write_text("# vars\nA=from-file\n\nB=from-file\nFROM_CALLER\n")
    caller = Luzia(luzia.home, {**luzia.env, "FROM_CALLER": "caller's"}, luzia.cwd)
    job_id = caller.dispatch(
        "--backend", "local", "--workdir", str(workspace), "--env-file", "job.env",
        "-e", "B=from-e", 'printf "%s/%s/%s" "$A" "$B" "$FROM_CALLER" > out',
    )  # fmt: skip
    assert luzia.run("wait", job_id).returncode == 0
    assert (workspace / "out").read_text() == "from-file/from-e/caller's"


# ------------------------------------------------------------------ the API


def test_a_killed_job_loses_its_env_file_and_argv_never_had_it(
    dispatcher: ResponsiveDispatcher,
    backend: str,
    workspace: Path,
    request: pytest.FixtureRequest,
) -> None:
    image = request.getfixturevalue("agent_image") if backend == "docker" else None
    job_id = dispatcher.dispatch_task(
        'echo "$SERVICE_KEY" > out; sleep 600',
        workdir=workspace,
        backend=backend,  # type: ignore[arg-type]
        image=image,
        env={"SERVICE_KEY": KILLED_TOKEN},
    )
    wait_for(workspace / "out")
    assert (workspace / "out").read_text() == f"{KILLED_TOKEN}\n"
    assert argv_holding(KILLED_TOKEN) == []
    job = dispatcher.get_status(job_id)
    assert job.env == {"SERVICE_KEY": None}
    assert job.to_dict()["env"] == {"SERVICE_KEY": "***"}
    assert (job.job_dir / ENV_FILE).exists()

    assert dispatcher.kill_job(job_id).state is JobState.KILLED
    assert not (job.job_dir / ENV_FILE).exists()
    assert KILLED_TOKEN.encode() not in store_bytes(dispatcher.home)


def test_config_patterns_mark_more_names_secret(tmp_path: Path) -> None:
    config = Config.parse(
        """
        [defaults]
        secret_env = ["ORG_*"]
        [projects.web]
        path = "."
        secret_env = ["web_cred"]
        [projects.web.env]
        WEB_CRED = "from-config"
        SHOWN = "yes"
        [agents.tool]
        command = "tool {task}"
        delivery = "argument"
        secret_env = ["TOOL_*"]
        """,
        tmp_path / "config.toml",
    )
    d = ResponsiveDispatcher(home=tmp_path / "home", config=config)
    env = {"ORG_ID": "1", "TOOL_AUTH": "2", "my_api_key": "3", "Db_Password_2": "4", "X": "5"}
    job = d.get_status(d.dispatch_task("t", "web", agent="tool", env=env))
    assert job.env == {
        "WEB_CRED": None,
        "SHOWN": "yes",
        "ORG_ID": None,
        "TOOL_AUTH": None,
        "my_api_key": None,
        "Db_Password_2": None,
        "X": "5",
    }
    # the file holds every value, for the job's user alone
    text = (job.job_dir / ENV_FILE).read_text()
    assert "export WEB_CRED=from-config\n" in text and "export TOOL_AUTH=2\n" in text
    assert stat.S_IMODE((job.job_dir / ENV_FILE).stat().st_mode) == 0o600
    assert b"from-config" not in store_bytes(d.home)
    d.close()

    with pytest.raises(ConfigError, match=r"line 3: defaults.secret_env must be a list"):
        Config.parse('[defaults]\n\nsecret_env = "X_*"\n', tmp_path / "c.toml")
    with pytest.raises(ConfigError, match=r"projects.p.env.1X is not a valid variable name"):
        Config.parse('[projects.p]\npath = "."\nenv = {1X = "v"}\n', tmp_path / "c.toml")


def test_api_bad_variables_record_nothing(tmp_path: Path) -> None:
    d = ResponsiveDispatcher(home=tmp_path / "home", config=Config())
    for env, problem in [
        ({"A": "x\0y"}, "holds a NUL byte"),
        ({"A B": "x"}, "not a valid variable name"),
        ({"A": 1}, "must be text"),
        ({"A": "\ud800"}, "not valid text"),
    ]:
        with pytest.raises(UsageError, match=problem):
            d.dispatch_task("true", workdir=tmp_path, env=env)  # type: ignore[dict-item]
    assert d.list_jobs() == []
    assert list((tmp_path / "home" / "jobs").iterdir()) == []
    d.close()


def test_a_job_queued_again_keeps_its_env_file(tmp_path: Path) -> None:
    """The engine removes the pane of a job it never finished starting and queues it again
    (``Backend.remove``): the job's variables must still be there when it starts again."""
    d = ResponsiveDispatcher(home=tmp_path / "home", config=Config())
    job = d.get_status(d.dispatch_task("true", workdir=tmp_path, env={"A_TOKEN": "v"}))
    backend = backend_for("local")
    backend.remove(job)
    assert (job.job_dir / ENV_FILE).exists()
    backend.kill(job)
    assert not (job.job_dir / ENV_FILE).exists()
    d.close()


def test_a_version_1_store_forgets_the_secret_values_it_held(tmp_path: Path) -> None:
    """A store written before env files: finished jobs lose their secret values; a queued
    job keeps them, since its start writes its env file from them."""
    home = tmp_path / "home"
    with JobStore(home) as store:
        done = store.create_job("t", project=None, workdir=tmp_path)
        queued = store.create_job("t", project=None, workdir=tmp_path)
        store.transition(done.id, JobState.COMPLETED, "done", exit_code=0)
    plain = json.dumps({"API_TOKEN": TOKEN, "PLAIN": "p"})
    with sqlite3.connect(home / "luzia.db") as con:
        con.execute("UPDATE jobs SET env = ?", (plain,))
        con.execute("PRAGMA user_version = 1")
    con.close()

    with JobStore(home) as store:
        assert store.get(done.id).env == {"API_TOKEN": None, "PLAIN": "p"}
        old = store.get(queued.id)
        assert old.env == {"API_TOKEN": TOKEN, "PLAIN": "p"}
        store.delete(queued.id)
    assert TOKEN.encode() not in store_bytes(home)


def test_a_queued_job_from_before_env_files_runs_with_its_values(
    home: Path, workspace: Path
) -> None:
    """No env file (dispatched by an older luzia): the start writes it from the store."""
    with JobStore(home) as store:
        job = store.create_job(
            'printf %s "$OLD_TOKEN" > out', project=None, workdir=workspace, backend="local"
        )
    with sqlite3.connect(home / "luzia.db") as con:
        con.execute("UPDATE jobs SET env = ?", (json.dumps({"OLD_TOKEN": TOKEN}),))
    con.close()
    d = ResponsiveDispatcher(home=home, config=Config())
    engine = d.start_background_monitor()
    try:
        assert d.wait_for_job(job.id, timeout=BOUND).exit_code == 0
        assert (workspace / "out").read_text() == TOKEN
        assert not (job.job_dir / ENV_FILE).exists()
    finally:
        d.clean(all=True)
        engine.stop()
        d.close()
