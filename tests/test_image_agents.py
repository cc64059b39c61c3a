"""Real agents in the offline image: ``luzia image build --agent claude|codex|aider[=PATH]``.

The image with all three (the session fixture ``agents_image``) is built once and reused; these
tests run each agent in it as the ``agent`` user with no network, read its labels, list it with
``luzia image ls`` and check the one-line errors for agents that cannot be added.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from controllers.errors import AgentNotFound, InvalidInput
from controllers.image import build_agent_image, find_agents
from controllers.image.agents import agents_in, parse_agent
from controllers.pytest_plugin import TEST_LABELS
from tests.agent_bins import VERSIONS, agent_program


def luzia(
    *args: str, env: dict[str, str] | None = None, home: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "luzia", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LUZIA_HOME": str(home), "LUZIA_NO_AUTOSTART": "1", **(env or {})},
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


def run_in(client: Any, image: str, script: str, **kwargs: Any) -> str:
    """``bash -c script`` in a fresh container of ``image`` (no network); its output."""
    container = client.containers.create(
        image, ["bash", "-c", script], labels=TEST_LABELS, network_disabled=True, **kwargs
    )
    try:
        container.start()
        status = container.wait(timeout=120)["StatusCode"]
        output: str = container.logs(stdout=True, stderr=True).decode()
    finally:
        container.remove(force=True)
    assert status == 0, output
    return output


# --------------------------------------------------------------------------- no Docker needed


def test_agent_specs_are_parsed_and_unknown_names_refused() -> None:
    assert parse_agent("claude") == ("claude", None)
    assert parse_agent("aider=/x/bin/aider") == ("aider", "/x/bin/aider")
    with pytest.raises(InvalidInput, match="unknown agent 'gemini': choose one of claude"):
        parse_agent("gemini")
    with pytest.raises(InvalidInput, match="given twice"):
        find_agents(["codex", "codex=/x"])


def test_agents_are_read_from_labels_only_by_name() -> None:
    labels = {"luzia.image": "agent", "luzia.agent.claude": "2.1.332", "luzia.agent.x.y": "1"}
    assert agents_in(labels) == {"claude": "2.1.332"}
    assert agents_in(None) == {}


def test_missing_programs_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(AgentNotFound, match=r"no such file; give the path of the claude program"):
        find_agents([f"claude={tmp_path / 'nope'}"])
    script = tmp_path / "codex"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    with pytest.raises(AgentNotFound, match="is a script, not the native codex executable"):
        find_agents([f"codex={script}"])
    with pytest.raises(AgentNotFound, match=r"not a virtualenv's script .*pip install aider-chat"):
        find_agents([f"aider={script}"])


def test_the_command_line_says_what_to_do_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    build = ("image", "build", "-t", "luzia-agent:never-built")
    err = one_line_error(luzia(*build, "--agent", "gemini", home=tmp_path))
    assert "unknown agent 'gemini'" in err
    no_claude = {"PATH": str(empty)}
    err = one_line_error(luzia(*build, "--agent", "claude", home=tmp_path, env=no_claude))
    assert "no 'claude' program on PATH" in err
    assert "luzia image build --agent claude=/path/to/claude" in err
    err = one_line_error(luzia(*build, "--agent", f"aider={tmp_path / 'x'}", home=tmp_path))
    assert "no such file" in err


def test_dockerfile_method_points_at_the_build_args() -> None:
    with pytest.raises(InvalidInput, match="CLAUDE_AGENT_SDK_VERSION"):
        build_agent_image(
            "luzia-agent:never-built",
            method="dockerfile",
            agents=[f"codex={agent_program('codex')}"],
            client=object(),
        )


def test_agent_versions_come_from_the_programs() -> None:
    found = find_agents([f"{name}={agent_program(name)}" for name in VERSIONS])
    assert {agent.name: agent.version for agent in found} == VERSIONS


# --------------------------------------------------------------------------- real containers


@pytest.mark.docker
def test_each_agent_runs_as_the_agent_user_offline(docker_engine: Any, agents_image: str) -> None:
    out = run_in(
        docker_engine,
        agents_image,
        "id -un; claude --version; codex --version; aider --version; "
        "bash -lc 'claude --version'; cd /tmp && HOME=/tmp aider --version",
    )
    lines = out.splitlines()
    assert lines[0] == "agent"
    assert lines[1] == f"{VERSIONS['claude']} (Claude Code)"
    assert lines[2] == f"codex-cli {VERSIONS['codex']}"
    assert lines[3] == f"aider {VERSIONS['aider']}"
    assert lines[4] == lines[1]
    assert lines[5] == lines[3]


@pytest.mark.docker
def test_agents_run_as_an_arbitrary_hardened_uid(docker_engine: Any, agents_image: str) -> None:
    out = run_in(
        docker_engine,
        agents_image,
        "claude --version && codex --version && aider --version",
        user="12345:12345",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
    )
    assert out.count("\n") == 3, out


@pytest.mark.docker
def test_aider_is_relocated_and_its_bytecode_is_current(
    docker_engine: Any, agents_image: str
) -> None:
    out = run_in(
        docker_engine,
        agents_image,
        "head -1 /opt/luzia/aider/bin/aider; grep '^home' /opt/luzia/aider/pyvenv.cfg; "
        "readlink /usr/local/bin/aider; "
        "/opt/luzia/aider/bin/python -X importtime -c 'import json' 2>&1 | tail -1; "
        "/opt/luzia/aider/bin/python -c 'import sys; print(sys.prefix, sys.base_prefix)'; "
        "python3 -V 2>&1 || echo no-system-python",
    )
    lines = out.splitlines()
    assert lines[0] == "#!/opt/luzia/aider/bin/python"
    assert lines[1] == "home = /opt/luzia/aider-python/bin"
    assert lines[2] == "/opt/luzia/aider/bin/aider"
    assert "json" in lines[3]
    assert lines[4] == "/opt/luzia/aider /opt/luzia/aider-python"
    assert lines[-1] == "no-system-python"  # the agent's Python stays the agent's


@pytest.mark.docker
def test_the_image_records_its_agents(
    docker_engine: Any, agents_image: str, tmp_path: Path
) -> None:
    labels = docker_engine.api.inspect_image(agents_image)["Config"]["Labels"]
    assert labels["luzia.image"] == "agent"
    assert labels["luzia.image.method"] == "offline"
    assert {k: v for k, v in labels.items() if k.startswith("luzia.agent.")} == {
        f"luzia.agent.{name}": version for name, version in VERSIONS.items()
    }
    proc = luzia("image", "ls", "--json", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (listed,) = [i for i in json.loads(proc.stdout) if agents_image in i["tags"]]
    assert listed["agents"] == VERSIONS and listed["method"] == "offline"
    assert listed["size_bytes"] > 500e6
    table = luzia("image", "ls", home=tmp_path).stdout
    (row,) = [line for line in table.splitlines() if line.startswith(agents_image + " ")]
    assert f"claude={VERSIONS['claude']}" in row and f"aider={VERSIONS['aider']}" in row


def test_run_paths_of_a_moved_prefix_become_origin_relative(tmp_path: Path) -> None:
    from controllers.image.elf import relocated_run_paths, run_paths

    base = os.path.realpath(sys.base_prefix)
    python = os.path.realpath(os.path.join(base, "bin", f"python{sys.version_info[0]}"))
    found = [r.value for r in run_paths(python)]
    if not any(value.startswith(base) for value in found):
        pytest.skip(f"{python} has no run path under {base} (run paths: {found})")
    patched = relocated_run_paths(python, "/opt/x/bin/python3", {base: "/opt/x"})
    assert patched is not None
    copy = tmp_path / "python3"
    copy.write_bytes(patched)
    assert [r.value for r in run_paths(str(copy))] == ["$ORIGIN/../lib"]
    assert len(patched) == os.path.getsize(python)


@pytest.mark.docker
def test_a_venv_of_the_system_python_keeps_its_paths(docker_engine: Any, tmp_path: Path) -> None:
    """Debian's python3 (base prefix /usr) stays where it is; only the venv moves."""
    system_python = "/usr/bin/python3"
    if not os.access(system_python, os.X_OK):
        pytest.skip("no /usr/bin/python3 here")
    venv = tmp_path / "venv"
    made = subprocess.run(
        [system_python, "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"the system python cannot make a venv: {made.stderr.strip()}")
    script = venv / "bin" / "aider"
    script.write_text(
        f"#!{venv}/bin/python\nimport sys, json, ssl\n"
        "print('aider 9.9.9', sys.prefix, sys.base_prefix)\n"
    )
    script.chmod(0o755)
    tag = f"luzia-agent:test-sysvenv-{uuid.uuid4().hex[:8]}"
    try:
        result = build_agent_image(tag, agents=[f"aider={script}"], client=docker_engine)
        assert result.agents == {"aider": "9.9.9"}
        out = run_in(docker_engine, tag, "aider")
        assert out.split() == ["aider", "9.9.9", "/opt/luzia/aider", "/usr"]
    finally:
        docker_engine.images.remove(tag, force=True)
