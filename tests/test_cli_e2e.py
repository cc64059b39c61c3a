"""The real ``luzia`` console script with a real detached engine, driven as a person would.

Every test has a ``LUZIA_HOME`` of its own and no ``LUZIA_NO_AUTOSTART``: ``luzia dispatch``
must start the engine itself. At the end the test removes its jobs (``luzia clean --all -y``)
and stops the engine (``luzia daemon stop``), then checks that nothing is left behind: no
container labelled with its home, no tmux socket of its home, no engine process.

Waits are bounded (a deadline on a loop that asks ``luzia status --json``, or pexpect's
timeout); nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from luzia.network import NETWORK_VAR
from tests.support import git

SCRIPT = shutil.which("luzia") or str(Path(sys.executable).parent / "luzia")

CONFIG = r"""
[agents.fake]
command = "bash ./fake-agent"
prompt = '(?m)^>\s*$'
busy = 'esc to interrupt'
questions = ['\[y/n\]\s*$']
delay_enter = 0.2
quiet = 0.3
start_timeout = 30
"""
AGENT_ENV = ("-e", "FAKE_AGENT_THINK=0.2", "-e", "FAKE_AGENT_DROP_FAST_ENTER=1")

BOUND = 60.0
"""The most any one wait in these tests may take before the test fails (not a timing check)."""

Done = subprocess.CompletedProcess[str]


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a detached engine may be reaped late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pid: int) -> bool:
    """Bounded wait for the process to go: ``daemon stop`` returns once the engine has let go
    of its lock, which it does just before the interpreter exits."""
    deadline = time.monotonic() + BOUND
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Luzia:
    """The ``luzia`` command for one home and config, run as a separate process."""

    def __init__(self, home: Path, env: dict[str, str], cwd: Path) -> None:
        self.home = home
        self.env = env
        self.cwd = cwd

    def run(self, *args: str, input: str | None = None) -> Done:
        return subprocess.run(
            [SCRIPT, *args],
            env=self.env,
            cwd=self.cwd,
            input=input,
            capture_output=True,
            text=True,
            timeout=BOUND,
            check=False,
        )

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def dispatch(self, *args: str) -> str:
        """``id=$(luzia dispatch ...)``: off a terminal it prints exactly the id."""
        out = self.ok("dispatch", *args)
        job_id = out.strip()
        assert out == f"{job_id}\n" and re.fullmatch(r"[0-9a-z]{8}", job_id), out
        return job_id

    def spawn(self, *args: str) -> pexpect.spawn:
        """``luzia ARGS`` on a real pseudo-terminal."""
        return pexpect.spawn(
            SCRIPT,
            list(args),
            env={**self.env, "TERM": "xterm"},
            cwd=str(self.cwd),
            dimensions=(30, 100),
            timeout=30,
        )

    def status(self, job_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.json("status", job_id)
        return data

    def until(
        self, job_id: str, pred: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """Ask ``luzia status JOB --json`` until ``pred`` holds; fail if the job ends first."""
        deadline = time.monotonic() + BOUND
        while True:
            job = self.status(job_id)
            if pred(job):
                return job
            assert job["state"] not in ("completed", "failed", "killed"), (what, job)
            assert time.monotonic() < deadline, f"gave up waiting for {what}: {job}"
            time.sleep(0.05)

    def new_event(
        self, job_id: str, after: int, pred: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """The first event after seq ``after`` that satisfies ``pred`` (bounded wait)."""
        found: list[dict[str, Any]] = []

        def seen(job: dict[str, Any]) -> bool:
            found[:] = [e for e in job["events"] if e["seq"] > after and pred(e)]
            return bool(found)

        self.until(job_id, seen, what)
        return found[0]

    def log(self, job_id: str) -> str:
        return self.ok("logs", job_id, "--plain")

    def wait_log(self, job_id: str, text: str) -> str:
        deadline = time.monotonic() + BOUND
        while text not in (log := self.log(job_id)):
            assert time.monotonic() < deadline, f"{text!r} never reached the log: {log!r}"
            time.sleep(0.05)
        return log


def detach(client: pexpect.spawn) -> None:
    """Press Ctrl-b d and see ``luzia attach`` end.

    tmux may take keys that come right behind typed text as part of them (its paste
    detection), so the keys are pressed again, a few times at most, if the first go is eaten.
    """
    for _ in range(5):
        client.sendcontrol("b")
        client.send("d")
        if client.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=3) == 0:
            client.close()
            return
    raise AssertionError(f"Ctrl-b d did not detach: {client.before!r}")


def assert_one_error_line(done: Done, *parts: str, code: int | None = None) -> None:
    """One ``luzia: error: ...`` line on stderr, nothing on stdout, non-zero, no traceback."""
    assert done.returncode != 0 and (code is None or done.returncode == code), (
        done.returncode,
        done.stderr,
    )
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("luzia: error: "), done.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])


def leftovers(home: Path) -> list[str]:
    """Containers labelled with this home and tmux sockets of this home that still exist."""
    from luzia.backends import local_socket

    probe = local_socket(home, "probe")
    tag = probe.name.removesuffix("-probe.sock")
    left = [str(p) for p in probe.parent.glob(f"{tag}-*.sock")]
    try:
        from controllers.docker_engine import docker_client

        client = docker_client()
    except Exception:
        return left
    containers = client.containers.list(all=True, filters={"label": f"luzia.home={home}"})
    for container in containers:
        container.remove(force=True)
    return left + [f"container {c.name}" for c in containers]


@pytest.fixture
def luzia(tmp_path: Path) -> Iterator[Luzia]:
    home = tmp_path / "home"
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUZIA_") or k == NETWORK_VAR}
    env |= {
        "LUZIA_HOME": str(home),
        "LUZIA_CONFIG": str(config),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }
    env.pop("NO_COLOR", None)
    cli = Luzia(home, env, cwd)
    yield cli
    engine = cli.json("daemon", "status")
    try:
        cli.ok("clean", "--all", "-y")
    finally:
        cli.ok("daemon", "stop")
    assert cli.json("daemon", "status")["running"] is False
    if engine["pid"] is not None:
        assert gone(engine["pid"]), f"engine {engine['pid']} still runs"
    assert cli.json("jobs", "--all") == []
    assert leftovers(home) == []


@pytest.fixture
def backend_args(backend: str, request: pytest.FixtureRequest) -> list[str]:
    """``--backend NAME`` (and the test image for docker) for ``luzia dispatch``."""
    if backend == "docker":
        image: str = request.getfixturevalue("agent_image")
        return ["--backend", "docker", "--image", image]
    return ["--backend", backend]


@pytest.fixture
def repo(agent_repo: Path) -> Path:
    """A git workspace holding the fake agent, committed, and a README."""
    (agent_repo / "README").write_text("a project\n")
    git(agent_repo, "add", "README")
    git(agent_repo, "commit", "-q", "-m", "readme")
    return agent_repo


# ------------------------------------------------------------------ command jobs, end to end


def test_dispatch_wait_logs_status_jobs(
    luzia: Luzia, backend_args: list[str], workspace: Path
) -> None:
    job_id = luzia.dispatch(*backend_args, "--workdir", str(workspace), "echo hi; exit 3")

    done = luzia.run("wait", job_id)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert done.stdout.startswith(f"{job_id} failed (exit 3)"), done.stdout

    assert "hi" in luzia.log(job_id).splitlines()  # a line of its own: the output, not the task

    status = luzia.status(job_id)
    assert (status["id"], status["state"], status["exit_code"]) == (job_id, "failed", 3)
    assert status["backend"] == backend_args[1]
    assert [e["state"] for e in status["events"]] == ["queued", "starting", "running", "failed"]

    jobs = luzia.json("jobs")
    assert [(j["id"], j["state"], j["exit_code"]) for j in jobs] == [(job_id, "failed", 3)]
    assert [j["id"] for j in luzia.json("jobs", "--state", "failed")] == [job_id]
    assert luzia.json("jobs", "--state", "active") == []


def test_attach_detach_read_only_and_kill(
    luzia: Luzia, backend_args: list[str], workspace: Path
) -> None:
    job_id = luzia.dispatch(
        *backend_args,
        "--workdir",
        str(workspace),
        '(while :; do echo "tick-$((i++))"; sleep 0.2; done) & '
        'while read -r line; do echo "got:$line"; done',
    )
    luzia.until(job_id, lambda j: j["state"] == "running", "the job to run")

    person = luzia.spawn("attach", job_id)
    try:
        person.expect(r"tick-\d+")
        detach(person)
    finally:
        person.close(force=True)
    assert person.exitstatus == 0, (person.exitstatus, person.signalstatus)
    assert luzia.status(job_id)["state"] == "running"

    watcher = luzia.spawn("attach", "--read-only", job_id)
    try:
        watcher.expect(r"tick-\d+")
        watcher.send("typed-read-only\r")
        detach(watcher)
    finally:
        watcher.close(force=True)
    assert watcher.exitstatus == 0, (watcher.exitstatus, watcher.signalstatus)
    # The pane takes input in order: what the read-only client typed would have arrived
    # before this line, so once this line is through, the other never came.
    assert luzia.ok("send", job_id, "typed-by-send") == ""
    log = luzia.wait_log(job_id, "got:typed-by-send")
    assert "typed-read-only" not in log
    assert luzia.status(job_id)["state"] == "running"

    assert_one_error_line(luzia.run("commit", job_id), "while it is running", code=2)

    assert luzia.ok("kill", job_id) == f"killed {job_id}\n"
    done = luzia.run("wait", job_id)
    assert done.returncode == 137, (done.stdout, done.stderr)
    assert luzia.status(job_id)["state"] == "killed"
    assert_one_error_line(luzia.run("send", job_id, "too late"), "it is killed", code=2)


def test_logs_follow_streams_until_the_end_and_send_types_into_the_job(
    luzia: Luzia, backend_args: list[str], workspace: Path
) -> None:
    # The quotes keep the markers out of the task text, so only the job's output matches.
    job_id = luzia.dispatch(
        *backend_args,
        "--workdir",
        str(workspace),
        'echo "fir""st"; echo "(now waiting for one line of input)"; read -r line; '
        'echo "go""t:$line"',
    )
    follower = luzia.spawn("logs", "-f", "--plain", job_id)
    try:
        follower.expect("first")  # streamed: the job cannot end before it gets a line
        assert luzia.ok("send", job_id, "semi; colon $HOME") == ""
        index = follower.expect([re.escape("got:semi; colon $HOME"), pexpect.EOF])
        assert index == 0, f"logs -f ended before the job's last line: {luzia.status(job_id)}"
        follower.expect(pexpect.EOF)  # ends by itself once the job has ended
    finally:
        follower.close(force=True)
    assert follower.exitstatus == 0, (follower.exitstatus, follower.signalstatus)
    assert luzia.run("wait", job_id).returncode == 0
    assert luzia.status(job_id)["state"] == "completed"


def test_logs_follow_shows_the_last_line_while_the_job_waits(luzia: Luzia, workspace: Path) -> None:
    job_id = luzia.dispatch(
        "--backend", "local", "--workdir", str(workspace),
        'echo "fir""st"; read -r line',
    )  # fmt: skip
    luzia.wait_log(job_id, "first")  # written: `luzia logs` (without -f) shows it
    follower = luzia.spawn("logs", "-f", "--plain", job_id)
    try:
        follower.expect("first", timeout=5)  # already in the file: printed at once
    finally:
        follower.close(force=True)


# ------------------------------------------------------------ an interactive agent in git


def test_interactive_agent_send_diff_commit_revert(luzia: Luzia, repo: Path) -> None:
    job_id = luzia.dispatch(
        "--backend", "local", "--agent", "fake",
        "--workdir", str(repo), *AGENT_ENV, "edit a.txt: hi",
    )  # fmt: skip
    job = luzia.until(job_id, lambda j: j["state"] == "idle", "the first turn to end")
    assert job["mode"] == "interactive"
    assert job["message"] == "waiting at its prompt"
    assert (repo / "a.txt").read_text() == "hi\n"

    seq = job["events"][-1]["seq"]
    luzia.ok("send", job_id, "ask: Allow edit to b.txt?\nedit b.txt: approved")
    question = luzia.new_event(
        job_id, seq, lambda e: e["state"] == "waiting", "the agent's question"
    )
    assert question["reason"] == "Allow edit to b.txt? [y/n]"
    assert luzia.status(job_id)["message"] == question["reason"]

    luzia.ok("send", job_id, "y", "--no-enter")
    answered = luzia.new_event(
        job_id,
        question["seq"],
        lambda e: e["state"] == "idle" and e["reason"] == "waiting at its prompt",
        "the answered turn to end",
    )
    assert answered["state"] == "idle"
    assert (repo / "b.txt").read_text() == "approved\n"

    luzia.ok("send", job_id, "exit 0")
    done = luzia.run("wait", job_id)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert luzia.status(job_id)["state"] == "completed"

    diff = luzia.ok("diff", job_id)
    assert "b/a.txt" in diff and "+hi" in diff and "+approved" in diff
    assert "fake-agent" not in diff and "README" not in diff
    stat = luzia.ok("diff", job_id, "--stat")
    assert "a.txt" in stat and "b.txt" in stat and "+++" not in stat

    out = luzia.ok("commit", job_id, "-b")
    assert re.fullmatch(rf"committed {job_id} as [0-9a-f]{{12}} on luzia/{job_id}\n", out), out
    names = git(repo, "show", "--name-only", "--format=%s%n%b", f"luzia/{job_id}")
    assert f"Luzia-Job: {job_id}" in names
    assert "a.txt" in names and "b.txt" in names and "fake-agent" not in names
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"

    data = luzia.json("commit", job_id, "--branch", "agent-work", "-m", "the agent's work")
    assert set(data) == {"job", "commit", "branch"}
    assert (data["job"], data["branch"]) == (job_id, "agent-work")
    assert git(repo, "rev-parse", "agent-work").strip() == data["commit"]
    assert git(repo, "log", "-1", "--format=%s", "agent-work").strip() == "the agent's work"

    out = luzia.ok("revert", job_id)
    assert out == f"reverted {job_id}: {repo} is as it was before the job\n"
    assert not (repo / "a.txt").exists() and not (repo / "b.txt").exists()
    assert git(repo, "status", "--porcelain") == ""


def test_revert_after_a_commit_on_the_current_branch_says_why(luzia: Luzia, repo: Path) -> None:
    job_id = luzia.dispatch("--backend", "local", "--workdir", str(repo), "echo x > made.txt")
    assert luzia.run("wait", job_id).returncode == 0
    sha = luzia.json("commit", job_id)["commit"]
    assert git(repo, "rev-parse", "HEAD").strip() == sha
    done = luzia.run("revert", job_id)
    assert_one_error_line(done, "refusing to revert", code=1)
    assert (repo / "made.txt").exists()  # nothing changed
    assert sha[:7] in done.stderr, done.stderr  # where HEAD is now: the commit luzia made


def test_dispatch_of_an_interactive_agent_needs_no_mode(luzia: Luzia, repo: Path) -> None:
    job_id = luzia.dispatch("--agent", "fake", "--workdir", str(repo), "/exit")
    assert luzia.status(job_id)["mode"] == "interactive"


# ------------------------------------------------------------------ engine, doctor, errors


def test_daemon_status_and_stop(luzia: Luzia, workspace: Path) -> None:
    assert luzia.json("daemon", "status")["running"] is False
    job_id = luzia.dispatch("--backend", "local", "--workdir", str(workspace), "true")
    assert luzia.run("wait", job_id).returncode == 0  # the engine started by itself

    engine = luzia.json("daemon", "status")
    assert engine["running"] is True and engine["home"] == str(luzia.home)
    pid = engine["pid"]
    assert isinstance(pid, int) and alive(pid)
    assert luzia.json("status")["engine"]["pid"] == pid

    assert luzia.ok("daemon", "stop") == f"engine stopped (was pid {pid})\n"
    assert gone(pid)
    after = luzia.json("daemon", "status")
    assert after["running"] is False
    assert luzia.ok("daemon", "stop") == "engine was not running\n"

    again = luzia.dispatch("--backend", "local", "--workdir", str(workspace), "exit 7")
    assert luzia.run("wait", again).returncode == 7  # and again, after the stop
    assert luzia.json("daemon", "status")["pid"] not in (None, pid)


@pytest.mark.docker
def test_doctor_reports_tmux_docker_and_image_ok(
    luzia: Luzia, agent_image: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[defaults]\nimage = "{agent_image}"\n' + CONFIG)
    done = luzia.run("doctor", "--json")
    assert done.returncode == 0, (done.stdout, done.stderr)
    report = json.loads(done.stdout)
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert report["ok"] is True
    for name in ("tmux", "docker CLI", "Docker Engine", f"image {agent_image}", "config"):
        assert statuses.get(name) == "ok", (name, report)


def test_bad_input_is_one_line_and_a_non_zero_exit(luzia: Luzia, workspace: Path) -> None:
    for args in (
        ("status", "zzzzzz"),
        ("wait", "zzzzzz"),
        ("logs", "zzzzzz"),
        ("attach", "zzzzzz"),
        ("send", "zzzzzz", "hello"),
        ("kill", "zzzzzz"),
        ("diff", "zzzzzz"),
        ("commit", "zzzzzz"),
        ("revert", "zzzzzz"),
        ("rm", "zzzzzz"),
    ):
        assert_one_error_line(luzia.run(*args), "no job matches 'zzzzzz'", code=1)

    job_id = luzia.dispatch("--backend", "local", "--workdir", str(workspace), "echo hi > a.txt")
    assert luzia.run("wait", job_id).returncode == 0  # jobs run outside git too
    assert (workspace / "a.txt").read_text() == "hi\n"
    assert luzia.ok("kill", job_id) == f"{job_id} had already ended: completed\n"
    for action in ("diff", "commit", "revert"):
        assert_one_error_line(luzia.run(action, job_id), str(workspace), "git")
    assert_one_error_line(luzia.run("diff", job_id, "--stat"), "nothing to diff")


def test_kill_of_a_killed_job_says_it_had_already_ended(luzia: Luzia, workspace: Path) -> None:
    job_id = luzia.dispatch("--backend", "local", "--workdir", str(workspace), "sleep 60")
    assert luzia.ok("kill", job_id) == f"killed {job_id}\n"
    assert luzia.run("wait", job_id).returncode == 137
    assert luzia.ok("kill", job_id) == f"{job_id} had already ended: killed\n"
