"""The ``luzia`` command in-process, with click's runner: arguments, output, errors, exit codes.

No engine runs here (``LUZIA_NO_AUTOSTART=1``); jobs are moved to their final states through the
store where a test needs them there. The engine's own behaviour is tested in test_engine.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from controllers.shell import PROMPT_MARK, START_MARK
from luzia.cli import COMMANDS, cli
from luzia.dispatcher import ResponsiveDispatcher
from luzia.jobs import JobEvent, JobState
from tests.conftest import sample_job

JOB_KEYS = set(sample_job(backend="auto", workdir=Path("/")).to_dict())
EVENT_KEYS = set(JobEvent("x", 1, 0.0, JobState.QUEUED, "r").to_dict())


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A home and config place of this test's own; no engine is ever started."""
    monkeypatch.setenv("LUZIA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("LUZIA_CONFIG", raising=False)
    monkeypatch.delenv("LUZIA_DEBUG", raising=False)
    monkeypatch.setenv("LUZIA_NO_AUTOSTART", "1")
    monkeypatch.chdir(tmp_path)
    yield


def run(*args: str, input: str | bytes | None = None) -> Result:
    """One invocation. ``--home``/``--config`` are exported to the environment (for the engine
    the CLI may spawn); naming the variables here makes the runner restore them afterwards."""
    keep = {name: os.environ.get(name) for name in ("LUZIA_HOME", "LUZIA_CONFIG")}
    return CliRunner(env=keep).invoke(cli, list(args), input=input, prog_name="luzia")


def ok(*args: str, input: str | None = None) -> Result:
    result = run(*args, input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def one_error_line(result: Result, code: int, *fragments: str) -> None:
    """A single ``luzia: error: ...`` line on stderr, nothing on stdout, and ``code``."""
    assert result.exit_code == code, (result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("luzia: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""
    assert "Traceback" not in result.output


def dispatch(*args: str) -> str:
    job_id = ok("dispatch", *args).stdout.strip()
    assert len(job_id) == 8
    return job_id


def store(tmp_path: Path) -> ResponsiveDispatcher:
    from luzia.config import Config

    return ResponsiveDispatcher(home=tmp_path / "home", config=Config())


def finish(tmp_path: Path, job_id: str, state: str, exit_code: int | None = None) -> None:
    dispatcher = store(tmp_path)
    dispatcher.update_status(job_id, "running", "test: running")
    dispatcher.update_status(job_id, state, f"test: {state}", exit_code=exit_code)
    dispatcher.close()


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


# -------------------------------------------------------------------------- the group


def test_help_lists_every_command_in_order() -> None:
    output = ok("--help").stdout
    positions = [output.index(f"  {name} ") for name in COMMANDS]
    assert positions == sorted(positions)


def every_command() -> Iterator[tuple[str, click.Command]]:
    for name in COMMANDS:
        command = cli.get_command(click.Context(cli), name)
        assert command is not None
        if isinstance(command, click.Group):
            for sub_name, sub in command.commands.items():
                yield f"{name} {sub_name}", sub
        yield name, command


@pytest.mark.parametrize("name", [name for name, _ in every_command()])
def test_every_command_and_option_has_help(name: str) -> None:
    command = dict(every_command())[name]
    assert command.help, f"{name} has no help"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name} {param.opts} has no help"
    assert ok(*name.split(), "--help").stdout.startswith("Usage: luzia ")


def test_version() -> None:
    assert ok("--version").stdout.startswith("luzia ")


def test_unknown_command_alone_is_clicks_usage_error() -> None:
    result = run("nosuchcommand")
    assert result.exit_code == 2
    assert "No such command 'nosuchcommand'" in result.stderr
    assert "Traceback" not in result.output


def test_mistyped_command_with_words_is_no_job(tmp_path: Path) -> None:
    result = run("stauts", "abc")
    assert result.exit_code == 2
    assert "No such command 'stauts', and no project 'stauts'" in result.stderr
    assert "Did you mean 'status'" in result.stderr
    assert (
        not (tmp_path / "home" / "luzia.db").exists()
        or json.loads(ok("jobs", "--json").stdout) == []
    )


def test_shorthand_dispatches_to_a_configured_project(tmp_path: Path) -> None:
    workspace = tmp_path / "web"
    workspace.mkdir()
    config = write_config(tmp_path, f'[projects.web]\npath = "{workspace}"\n')
    result = ok("--config", str(config), "web", "--json", "make test")
    job = json.loads(result.stdout)
    assert (job["project"], job["task"], job["workdir"]) == ("web", "make test", str(workspace))


def test_home_option_overrides_the_environment(tmp_path: Path) -> None:
    job_id = dispatch("true")
    other = tmp_path / "other"
    assert json.loads(ok("--home", str(other), "jobs", "--json").stdout) == []
    assert json.loads(ok("jobs", "--json").stdout)[0]["id"] == job_id


# -------------------------------------------------------------------------- dispatch


def test_dispatch_prints_only_the_id_off_a_terminal() -> None:
    result = ok("dispatch", "echo hi")
    assert result.stdout.strip().isalnum() and result.stderr == ""
    assert ok("dispatch", "-q", "echo hi").stdout.count("\n") == 1


def test_dispatch_json_status_json_jobs_json_round_trip(tmp_path: Path) -> None:
    result = ok("dispatch", "--json", "--env", "A=1", "--env", "B=", "--backend", "local", "ls")
    job = json.loads(result.stdout)
    assert set(job) == JOB_KEYS
    assert (job["state"], job["task"], job["backend"], job["env"]) == (
        "queued",
        "ls",
        "local",
        {"A": "1", "B": ""},
    )
    assert job["workdir"] == str(tmp_path)

    status = json.loads(ok("status", "--json", job["id"][:5]).stdout)
    assert set(status) == JOB_KEYS | {"container", "events"}
    assert {k: v for k, v in status.items() if k not in ("container", "events")} == job
    assert status["container"] is None  # a local job
    assert [set(event) for event in status["events"]] == [EVENT_KEYS]
    assert status["events"][0]["state"] == "queued"

    listed = json.loads(ok("jobs", "--json").stdout)
    assert [entry["id"] for entry in listed] == [job["id"]]
    assert set(listed[0]) == JOB_KEYS


def test_dispatch_reads_the_task_from_stdin() -> None:
    job = json.loads(ok("dispatch", "--json", "-", input="echo from stdin\n").stdout)
    assert job["task"] == "echo from stdin\n"


def test_dispatch_options_reach_the_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No engine answers, so the image (which does not exist) is not checked at dispatch.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    workdir = tmp_path / "w"
    workdir.mkdir()
    args = ["-p", "label", "-w", str(workdir), "--backend", "docker", "--image", "img:1"]
    args += ["--agent", "agent -p {task}", "fix it"]
    job = json.loads(ok("dispatch", "--json", *args).stdout)
    assert (job["project"], job["workdir"], job["backend"]) == ("label", str(workdir), "docker")
    assert (job["image"], job["agent"], job["mode"]) == ("img:1", "agent -p {task}", "command")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--env", "NOT_SET_BY_ANYONE", "x"), "NOT_SET_BY_ANYONE is not set here"),
        (("--env", "=v", "x"), "'' is not a valid variable name"),
        (("--backend", "cloud", "x"), "'cloud' is not one of"),
        (("--timeout", "3", "x"), "--timeout needs --wait"),
        ((), "Missing argument 'TASK'"),
    ],
)
def test_dispatch_usage_errors_exit_2(args: tuple[str, ...], fragment: str) -> None:
    result = run("dispatch", *args)
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("task", "fragment"),
    [("", "the task is empty"), ("   ", "the task is empty"), ("a\0b", "NUL byte")],
)
def test_dispatch_bad_task_is_one_line_and_records_nothing(task: str, fragment: str) -> None:
    one_error_line(run("dispatch", task), 2, fragment)
    assert json.loads(ok("jobs", "--json").stdout) == []


def test_dispatch_task_over_1_mib_is_refused() -> None:
    one_error_line(run("dispatch", "-", input="x" * (1024 * 1024 + 1)), 2, "over the 1 MiB limit")
    assert json.loads(ok("jobs", "--json").stdout) == []


def test_dispatch_to_a_missing_workdir(tmp_path: Path) -> None:
    one_error_line(run("dispatch", "-w", str(tmp_path / "nope"), "x"), 2, "is not a directory")


def test_dispatch_unknown_project_when_projects_are_configured(tmp_path: Path) -> None:
    config = write_config(tmp_path, f'[projects.web]\npath = "{tmp_path}"\n')
    one_error_line(
        run("--config", str(config), "dispatch", "-p", "wbe", "x"), 1, "unknown project 'wbe'"
    )


def test_dispatch_calls_ensure_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(ResponsiveDispatcher, "ensure_engine", lambda self: calls.append(self.home))
    dispatch("true")
    assert len(calls) == 1


def test_dispatch_wait_without_engine_times_out() -> None:
    result = run("dispatch", "--wait", "--timeout", "0", "true")
    assert result.exit_code == 124
    assert len(result.stdout.strip()) == 8
    assert "timed out after 0 s" in result.stderr


# -------------------------------------------------------------------------- status and jobs


def test_status_of_one_job_in_plain_text() -> None:
    job_id = dispatch("echo hi")
    output = ok("status", job_id).stdout
    assert f"id:        {job_id}" in output
    assert "state:     queued" in output
    assert "events:" in output and "dispatched" in output


def test_status_summary(tmp_path: Path) -> None:
    first = dispatch("one")
    second = dispatch("two")
    finish(tmp_path, first, "completed", 0)
    output = ok("status").stdout
    assert "engine: not running" in output
    assert "jobs: 2 (1 queued, 1 completed)" in output
    data = json.loads(ok("status", "--json").stdout)
    assert data["engine"]["running"] is False and data["engine"]["pid"] is None
    assert data["counts"] == {
        "queued": 1,
        "starting": 0,
        "running": 0,
        "idle": 0,
        "waiting": 0,
        "completed": 1,
        "failed": 0,
        "killed": 0,
    }
    assert [job["id"] for job in data["jobs"]] == [second, first]


def test_status_follow_needs_a_job() -> None:
    result = run("status", "--follow")
    assert result.exit_code == 2 and "--follow needs a JOB" in result.stderr


def test_status_follow_streams_events_until_final(tmp_path: Path) -> None:
    job_id = dispatch("true")
    finish(tmp_path, job_id, "failed", 4)
    lines = ok("status", "--follow", "--json", job_id).stdout.splitlines()
    assert [json.loads(line)["state"] for line in lines] == ["queued", "running", "failed"]
    text = ok("status", "-f", job_id).stdout
    assert text.splitlines()[-1].startswith(f"{job_id} failed (exit 4)")


def test_jobs_table_and_filters(tmp_path: Path) -> None:
    workdir = str(tmp_path)
    a = dispatch("-p", "alpha", "-w", workdir, "task a\nsecond line")
    b = dispatch("-p", "beta", "-w", workdir, "task b")
    finish(tmp_path, b, "failed", 2)
    table = ok("jobs").stdout.splitlines()
    assert table[0].split() == [
        "ID",
        "PROJECT",
        "STATE",
        "EXIT",
        "AGE",
        "DURATION",
        "TOKENS",
        "TASK",
    ]
    assert table[1].split()[:4] == [b, "beta", "failed", "2"]
    assert table[2].split()[:4] == [a, "alpha", "queued", "-"]
    assert table[2].endswith("task a second line")

    def ids(*args: str) -> list[str]:
        return [job["id"] for job in json.loads(ok("jobs", "--json", *args).stdout)]

    assert ids("--project", "alpha") == [a]
    assert ids("--state", "failed") == [b]
    assert ids("--state", "final") == [b]
    assert ids("--state", "active") == []
    assert ids("-s", "queued", "-s", "failed") == [b, a]
    assert ids("--limit", "1") == [b]
    assert ids("--all") == [b, a]


def test_jobs_says_when_there_are_none() -> None:
    result = ok("jobs")
    assert result.stdout == "" and "no jobs" in result.stderr


@pytest.mark.parametrize(
    "args", [("--state", "sleeping"), ("--limit", "0"), ("--limit", "2", "--all")]
)
def test_jobs_usage_errors(args: tuple[str, ...]) -> None:
    assert run("jobs", *args).exit_code == 2


def test_ambiguous_prefix_is_one_line() -> None:
    ids = [dispatch("true") for _ in range(33)]  # 32 possible first characters
    first = [job_id[0] for job_id in ids]
    shared = next(char for char in first if first.count(char) > 1)
    one_error_line(run("status", shared), 1, "is ambiguous")


# -------------------------------------------------------------------------- wait


@pytest.mark.parametrize(
    ("state", "exit_code", "expected"),
    [("completed", 0, 0), ("failed", 3, 3), ("failed", None, 1), ("killed", None, 137)],
)
def test_wait_exits_with_the_jobs_code(
    tmp_path: Path, state: str, exit_code: int | None, expected: int
) -> None:
    job_id = dispatch("true")
    finish(tmp_path, job_id, state, exit_code)
    result = run("wait", job_id)
    assert result.exit_code == expected
    assert result.stdout.startswith(f"{job_id} {state}")


def test_wait_for_several_exits_with_the_first_non_zero(tmp_path: Path) -> None:
    a, b, c = dispatch("a"), dispatch("b"), dispatch("c")
    finish(tmp_path, a, "completed", 0)
    finish(tmp_path, b, "failed", 5)
    finish(tmp_path, c, "failed", 6)
    result = run("wait", "--json", a, b, c)
    assert result.exit_code == 5
    assert [job["id"] for job in json.loads(result.stdout)] == [a, b, c]


def test_wait_timeout_exits_124_with_one_line(tmp_path: Path) -> None:
    done, pending = dispatch("a"), dispatch("b")
    finish(tmp_path, done, "completed", 0)
    result = run("wait", "--timeout", "0.1", "--json", done, pending)
    assert result.exit_code == 124
    assert [job["state"] for job in json.loads(result.stdout)] == ["completed", "queued"]
    assert result.stderr == (
        f"luzia: error: timed out after 0.1 s: job {pending} is still queued "
        "(1 of 2 ended); it goes on\n"
    )


def test_wait_checks_every_id_before_waiting() -> None:
    job_id = dispatch("true")
    one_error_line(run("wait", job_id, "zzzzzzzz"), 1, "no job matches 'zzzzzzzz'")


def test_wait_needs_a_job() -> None:
    assert run("wait").exit_code == 2


# -------------------------------------------------------------------------- acting on jobs


@pytest.mark.parametrize(
    "args",
    [
        ("status", "zzzz"),
        ("logs", "zzzz"),
        ("logs", "-f", "zzzz"),
        ("wait", "zzzz"),
        ("kill", "zzzz"),
        ("rm", "zzzz"),
        ("send", "zzzz", "text"),
        ("attach", "zzzz"),
    ],
)
def test_unknown_job_is_one_line_exit_1(args: tuple[str, ...]) -> None:
    one_error_line(run(*args), 1, "no job matches 'zzzz'")


def test_kill_queued_job_and_report_others(tmp_path: Path) -> None:
    job_id = dispatch("sleep 100")
    result = run("kill", job_id, "zzzz")
    assert result.exit_code == 1
    assert result.stdout == f"killed {job_id}\n"
    assert result.stderr.startswith("luzia: error: no job matches 'zzzz'")
    again = json.loads(ok("kill", "--json", job_id).stdout)
    assert [job["state"] for job in again] == ["killed"]
    done = dispatch("true")
    finish(tmp_path, done, "completed", 0)
    assert ok("kill", done).stdout == f"{done} had already ended: completed\n"


def test_rm_refuses_an_unfinished_job_unless_forced() -> None:
    job_id = dispatch("sleep 100")
    one_error_line(run("rm", job_id), 2, "kill it first or use --force")
    assert ok("rm", "--force", job_id).stdout == f"removed {job_id}\n"
    assert json.loads(ok("jobs", "--json").stdout) == []


def test_rm_json_and_partial_failure(tmp_path: Path) -> None:
    job_id = dispatch("true")
    finish(tmp_path, job_id, "completed", 0)
    result = run("rm", "--json", job_id, "zzzz")
    assert result.exit_code == 1
    assert [job["id"] for job in json.loads(result.stdout)] == [job_id]


def test_clean_removes_finished_jobs(tmp_path: Path) -> None:
    done, pending = dispatch("a"), dispatch("b")
    finish(tmp_path, done, "failed", 1)
    assert json.loads(ok("clean", "--json").stdout) == {"removed": [done]}
    assert "nothing to clean" in ok("clean").stderr
    assert ok("clean", "--all").stdout == f"removed {pending}\n"
    assert json.loads(ok("jobs", "--json").stdout) == []


def test_logs_of_a_job_without_output_is_empty() -> None:
    job_id = dispatch("true")
    assert ok("logs", job_id).stdout_bytes == b""


def test_logs_tail_and_plain_reach_the_log(tmp_path: Path) -> None:
    job_id = dispatch("true")
    log = tmp_path / "home" / "jobs" / job_id / "output.log"
    output = b"one\n\x1b[31mtwo\x1b[0m\nthree\n"
    log.write_bytes(
        b"/w # bash run.sh\r\n" + START_MARK + output + b"\x1b[?2004h" + PROMPT_MARK + b"0\x07/w # "
    )
    assert ok("logs", job_id).stdout_bytes == output
    assert ok("logs", "--whole", job_id).stdout_bytes == log.read_bytes()
    assert ok("logs", "--tail", "2", "--plain", job_id).stdout_bytes == b"two\nthree\n"
    finish(tmp_path, job_id, "completed", 0)
    assert ok("logs", "-f", "--plain", job_id).stdout_bytes == b"one\ntwo\nthree\n"


def test_send_to_a_job_without_pane_is_one_line() -> None:
    job_id = dispatch("true")
    one_error_line(run("send", job_id, "hello"), 2, "no live pane")
    assert run("send", job_id).exit_code == 2


def test_attach_needs_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = dispatch("true")
    monkeypatch.setattr(
        ResponsiveDispatcher, "attach_command", lambda self, job, read_only=False: ["true"]
    )
    one_error_line(run("attach", job_id), 1, "attach needs a terminal", "luzia logs -f")


def test_attach_execs_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = dispatch("true")
    execs: list[list[str]] = []
    monkeypatch.setattr("luzia.cli.attach.has_terminal", lambda: True)
    monkeypatch.setattr(
        ResponsiveDispatcher,
        "attach_command",
        lambda self, job, read_only=False: ["tmux", "attach", "-r" if read_only else "-w", job],
    )

    def fake_exec(file: str, argv: list[str]) -> None:
        execs.append(argv)

    monkeypatch.setattr("os.execvp", fake_exec)
    ok("attach", "--read-only", job_id)
    assert execs == [["tmux", "attach", "-r", job_id]]


def test_attach_to_a_queued_job_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = dispatch("true")
    monkeypatch.setattr("luzia.cli.attach.has_terminal", lambda: True)
    one_error_line(run("attach", job_id), 2, "no pane yet")


# -------------------------------------------------------------------------- daemon, list, image


def test_daemon_status_and_stop_without_an_engine(tmp_path: Path) -> None:
    data = json.loads(ok("daemon", "status", "--json").stdout)
    assert data["running"] is False and data["pid"] is None
    assert data["home"] == str(tmp_path / "home")
    assert ok("daemon", "status").stdout.startswith("engine not running")
    assert ok("daemon", "stop").stdout == "engine was not running\n"
    assert json.loads(ok("daemon", "stop", "--json").stdout)["running"] is False


def test_list_projects(tmp_path: Path) -> None:
    assert "no projects" in ok("list").stderr
    config = write_config(
        tmp_path,
        '[defaults]\nbackend = "local"\n'
        f'[projects.web]\npath = "{tmp_path}"\nagent = "claude -p {{task}}"\n'
        f'[projects.api]\npath = "{tmp_path}"\nbackend = "docker"\n',
    )
    table = ok("--config", str(config), "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "BACKEND", "PATH", "AGENT"]
    assert table[1].split()[:2] == ["api", "docker"]
    assert table[2].split()[:2] == ["web", "local"]
    data = json.loads(ok("--config", str(config), "list", "--json").stdout)
    assert [(p["name"], p["backend"], p["agent"]) for p in data] == [
        ("api", "docker", None),
        ("web", "local", "claude -p {task}"),
    ]
    assert set(data[0]) == {"name", "path", "agent", "backend", "image", "max_concurrent", "env"}


def test_image_build_reports_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import controllers.image
    from controllers.image import BuildResult

    calls: list[tuple[str, str]] = []

    def fake_build(tag: str, method: str = "auto", agents: tuple[str, ...] = ()) -> BuildResult:
        calls.append((tag, method))
        return BuildResult(tag, "offline", 0.5, 14_000_000, "sha256:abc")

    monkeypatch.setattr(controllers.image, "build_agent_image", fake_build)
    assert ok("image", "build").stdout == "built luzia-agent:latest (offline) in 0.5 s, 14.0 MB\n"
    data = json.loads(ok("image", "build", "-t", "x:1", "--method", "offline", "--json").stdout)
    assert data == {
        "tag": "x:1",
        "method": "offline",
        "seconds": 0.5,
        "size_bytes": 14_000_000,
        "image_id": "sha256:abc",
        "agents": {},
    }
    assert calls == [("luzia-agent:latest", "auto"), ("x:1", "offline")]
    assert run("image", "build", "--method", "magic").exit_code == 2


# -------------------------------------------------------------------------- doctor


def test_doctor_json_lists_every_check() -> None:
    result = run("doctor", "--json")
    data = json.loads(result.stdout)
    names = [check["name"] for check in data["checks"]]
    for name in ("tmux", "docker CLI", "Docker Engine", "LUZIA_HOME", "config", "engine"):
        assert name in names
    assert {check["status"] for check in data["checks"]} <= {"ok", "warn", "fail"}
    assert result.exit_code == (0 if data["ok"] else 1)
    for check in data["checks"]:
        assert (check["fix"] is None) == (check["status"] == "ok") or check["status"] == "warn"


def test_doctor_fails_on_a_broken_config_and_an_unwritable_home(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[defaults\n")
    blocker = tmp_path / "f"
    blocker.write_text("a file")
    result = run("--home", str(blocker / "home"), "--config", str(config), "doctor", "--json")
    assert result.exit_code == 1
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    assert checks["config"]["status"] == "fail"
    assert f"{config} line 1" in checks["config"]["detail"]
    assert checks["LUZIA_HOME"]["status"] == "fail"
    text = run("--home", str(blocker / "home"), "--config", str(config), "doctor")
    assert "FAIL  config" in text.stdout and "fix: " in text.stdout


# -------------------------------------------------------------------------- faults


def test_config_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[defaults]\nbackend = "local\n')
    one_error_line(run("--config", str(config), "jobs"), 1, f"{config} line 2")


def test_missing_named_config_file(tmp_path: Path) -> None:
    one_error_line(run("--config", str(tmp_path / "none.toml"), "list"), 1, "no such config file")


def test_unwritable_home_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "f"
    blocker.write_text("a file")
    one_error_line(run("--home", str(blocker / "home"), "dispatch", "true"), 1, str(blocker))


def test_controller_errors_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from controllers.errors import DockerUnavailable

    def broken(self: ResponsiveDispatcher, **_: object) -> None:
        raise DockerUnavailable("cannot reach the Docker Engine\n(details)")

    monkeypatch.setattr(ResponsiveDispatcher, "list_jobs", broken)
    one_error_line(run("jobs"), 1, "cannot reach the Docker Engine; (details)")


def test_keyboard_interrupt_exits_130_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: ResponsiveDispatcher, **_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ResponsiveDispatcher, "list_jobs", interrupted)
    result = run("jobs")
    assert result.exit_code == 130
    assert result.output == ""


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def buggy(self: ResponsiveDispatcher, **_: object) -> None:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(ResponsiveDispatcher, "list_jobs", buggy)
    result = run("jobs")
    assert isinstance(result.exception, ZeroDivisionError)


def test_luzia_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUZIA_DEBUG", "1")
    from luzia.errors import JobNotFound

    assert isinstance(run("status", "zzzz").exception, JobNotFound)


def test_send_from_stdin_drops_one_final_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = dispatch("cat")
    sent: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        ResponsiveDispatcher,
        "send_input",
        lambda self, job, text, enter=True: sent.append((text, enter)),
    )
    ok("send", job_id, "-", input="hello\n\n")
    ok("send", "--no-enter", job_id, "y")
    assert sent == [("hello\n", True), ("y", False)]


def test_send_presses_named_keys_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = dispatch("cat")
    sent: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        ResponsiveDispatcher,
        "send_input",
        lambda self, job, text, enter=True: sent.append((text, enter)),
    )
    ok("send", job_id, "--key", "down", "-k", "Enter")
    assert sent == [("\x1b[B", False), ("\r", False)]
    one_error_line(run("send", job_id, "--key", "Hyper"), 2, "unknown key 'Hyper'")
    one_error_line(run("send", job_id, "x", "--key", "Up"), 2, "not both")
    one_error_line(run("send", job_id), 2, "missing TEXT")
    assert len(sent) == 2
