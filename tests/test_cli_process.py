"""The ``luzia`` console script as a real process: exit codes, stdout vs stderr, no traceback on
bad input, and that starting it imports only what the command needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from luzia.network import NETWORK_VAR

SCRIPT = shutil.which("luzia") or str(Path(sys.executable).parent / "luzia")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LUZIA_") or k == NETWORK_VAR}
    return clean | {
        "LUZIA_HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "LUZIA_NO_AUTOSTART": "1",
    }


def luzia(
    env: dict[str, str], *args: str, input: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args],
        env=env,
        input=input.decode() if input is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_error_line(done: subprocess.CompletedProcess[str], code: int, *parts: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("luzia: error: "), done.stderr
    for part in parts:
        assert part in lines[0]


def no_jobs(env: dict[str, str]) -> bool:
    jobs: list[object] = json.loads(luzia(env, "jobs", "--json").stdout)
    return jobs == []


def test_dispatch_then_status_and_jobs(env: dict[str, str]) -> None:
    done = luzia(env, "dispatch", "echo hi")
    assert done.returncode == 0 and done.stderr == ""
    job_id = done.stdout.strip()
    assert done.stdout == f"{job_id}\n"
    status = json.loads(luzia(env, "status", "--json", job_id).stdout)
    assert (status["id"], status["state"], status["task"]) == (job_id, "queued", "echo hi")
    assert [job["id"] for job in json.loads(luzia(env, "jobs", "--json").stdout)] == [job_id]


def test_every_json_output_parses(env: dict[str, str]) -> None:
    job_id = json.loads(luzia(env, "dispatch", "--json", "true").stdout)["id"]
    for args in (
        ("status", "--json"),
        ("status", "--json", job_id),
        ("jobs", "--json"),
        ("list", "--json"),
        ("daemon", "status", "--json"),
        ("kill", "--json", job_id),
        ("wait", "--json", job_id),
        ("clean", "--json"),
        ("doctor", "--json"),
    ):
        done = luzia(env, *args)
        assert "Traceback" not in done.stderr, args
        json.loads(done.stdout)


def test_python_dash_m_luzia(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "luzia", "--version"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.startswith("luzia ")


def test_unknown_job_id(env: dict[str, str]) -> None:
    assert_one_error_line(luzia(env, "status", "zzzz"), 1, "no job matches 'zzzz'")
    assert_one_error_line(luzia(env, "wait", "0"), 1, "no job matches '0'")


def test_unknown_command(env: dict[str, str]) -> None:
    done = luzia(env, "nosuchcommand")
    assert done.returncode == 2 and "No such command" in done.stderr
    assert "Traceback" not in done.stderr


def test_empty_task(env: dict[str, str]) -> None:
    assert_one_error_line(luzia(env, "dispatch", ""), 2, "the task is empty")
    assert no_jobs(env)


def test_task_of_1_mib_plus_1(env: dict[str, str]) -> None:
    big = b"x" * (1024 * 1024 + 1)
    assert_one_error_line(luzia(env, "dispatch", "-", input=big), 2, "over the 1 MiB limit")
    assert no_jobs(env)


def test_task_of_exactly_1_mib_is_accepted(env: dict[str, str]) -> None:
    done = luzia(env, "dispatch", "--json", "-", input=b"x" * (1024 * 1024))
    assert done.returncode == 0
    assert len(json.loads(done.stdout)["task"]) == 1024 * 1024


def test_unwritable_home(env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "f"
    blocker.write_text("a regular file")
    env["LUZIA_HOME"] = str(blocker / "home")
    assert_one_error_line(luzia(env, "dispatch", "true"), 1, str(blocker))
    assert_one_error_line(luzia(env, "jobs"), 1, str(blocker))
    assert blocker.read_text() == "a regular file"


def test_config_syntax_error(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[defaults]\nimage = "unterminated\n')
    env["LUZIA_CONFIG"] = str(config)
    assert_one_error_line(luzia(env, "dispatch", "true"), 1, f"{config} line 2")
    del env["LUZIA_CONFIG"]
    assert no_jobs(env)


def test_timeout_exits_124(env: dict[str, str]) -> None:
    job_id = luzia(env, "dispatch", "true").stdout.strip()
    done = luzia(env, "wait", "--timeout", "0.2", job_id)
    assert done.returncode == 124
    assert done.stdout == ""
    assert done.stderr.startswith("luzia: error: timed out after 0.2 s")


def test_closed_pipe_is_quiet(env: dict[str, str]) -> None:
    for _ in range(3):
        luzia(env, "dispatch", "true")
    done = subprocess.run(
        f"{SCRIPT} jobs | head -c 1", shell=True, env=env, capture_output=True, text=True
    )
    assert "Traceback" not in done.stderr


# -------------------------------------------------------------------------- lazy imports

HEAVY = ("rich", "docker", "luzia.engine", "requests")
LIGHT_CONTROLLERS = {"controllers", "controllers.lazy", "controllers.errors"}
"""What ``luzia.errors`` imports: the root ``LuziaError`` lives in ``controllers.errors``."""


def heavy(modules: set[str]) -> set[str]:
    """The heavy modules among ``modules``: any controller module beyond the light ones."""
    controllers = {m for m in modules if m.split(".")[0] == "controllers"}
    return (modules & set(HEAVY)) | (controllers - LIGHT_CONTROLLERS)


def imported_after(env: dict[str, str], code: str) -> set[str]:
    probe = (
        "import sys, atexit, json\n"
        "atexit.register(lambda: sys.__stderr__.write('MODULES=' + json.dumps(sorted(sys.modules))"
        " + '\\n'))\n" + code
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    line = next(line for line in done.stderr.splitlines() if line.startswith("MODULES="))
    return set(json.loads(line.removeprefix("MODULES=")))


def test_import_luzia_is_cheap(env: dict[str, str]) -> None:
    modules = imported_after(env, "import luzia")
    assert not modules & {"sqlite3", "click", "rich", "docker", "luzia.dispatcher"}


def test_lazy_names_resolve(env: dict[str, str]) -> None:
    modules = imported_after(
        env,
        "from luzia import ResponsiveDispatcher, Job, JobState\n"
        "assert JobState.QUEUED.value == 'queued' and Job.__name__ == 'Job'\n"
        "assert ResponsiveDispatcher.__module__ == 'luzia.dispatcher'\n",
    )
    assert "luzia.dispatcher" in modules and "rich" not in modules


def test_help_imports_no_heavy_module(env: dict[str, str]) -> None:
    modules = imported_after(
        env, "from luzia.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert not heavy(modules) | (modules & {"sqlite3", "luzia.dispatcher"})


def test_dispatch_imports_no_heavy_module(env: dict[str, str]) -> None:
    modules = imported_after(
        env,
        "from luzia.cli import main\n"
        "try:\n    main(['dispatch', '--json', '--backend', 'local', 'true'])\n"
        "except SystemExit:\n    pass",
    )
    assert "luzia.daemon" in modules  # ensure_engine() was called
    assert not heavy(modules)
