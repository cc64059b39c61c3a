"""The config file: defaults, projects, and errors that point at the file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from luzia.config import Config, Defaults, agent_command
from luzia.errors import ConfigError, LuziaError, ProjectNotFound
from luzia.paths import config_path, luzia_home

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_missing_default_file_means_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LUZIA_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    config = Config.load()
    assert config.defaults == Defaults()
    assert config.projects == {}
    assert config.path is None


def test_missing_named_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUZIA_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=r"nope\.toml: no such config file"):
        Config.load()


def test_example_file_parses(tmp_path: Path) -> None:
    config = Config.load(EXAMPLE)
    assert config.defaults.backend == "auto"
    assert config.defaults.max_per_project == 2
    assert config.defaults.retention == 7 * 86400
    web = config.project("web")
    assert web.path == Path("~/src/web").expanduser()
    assert web.agent == "claude"
    opus = config.agent_profile("claude-opus")
    assert opus is not None and opus.kind == "claude" and opus.forward_env[0] == "ANTHROPIC_*"
    assert opus.command_for("command").startswith("claude --model opus -p {task}")
    assert re.search(opus.prompt or "", "\u276f\u00a0")
    assert web.env == {"NODE_ENV": "development", "PORT": "3000"}
    assert config.max_concurrent_for("web") == 1
    assert config.max_concurrent_for("scripts") == 2
    assert config.project("scripts").backend == "local"
    assert (config.defaults.container.memory, web.container.memory) == ("2g", "4g")
    assert (config.defaults.container.cpus, config.defaults.container.pids) == (2.0, 512)


def test_relative_project_path_is_relative_to_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[projects.app]\npath = "src/../app"\n')
    assert Config.load(path).project("app").path == tmp_path / "app"


def test_unknown_project_names_the_configured_ones(tmp_path: Path) -> None:
    config = Config.load(write(tmp_path, '[projects.app]\npath = "."\n'))
    with pytest.raises(ProjectNotFound, match=r"unknown project 'ap' \(configured: app\)"):
        config.project("ap")


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[defaults]\nimage = 'x'\nmax_concurrent = = 3\n")
    with pytest.raises(ConfigError) as caught:
        Config.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path} line 3, column ")
    assert "\n" not in message
    assert isinstance(caught.value, LuziaError)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('[defaults]\nimage = "x"\nmax_concurrent = "four"\n', 3, "defaults.max_concurrent must"),
        ("[defaults]\n\nmax_concurrent = 0\n", 3, "whole number >= 1"),
        ("[defaults]\nmax_concurent = 3\n", 2, "defaults.max_concurent is not a setting"),
        ('[defaults]\nbackend = "podman"\n', 2, 'must be "auto", "docker", "local" or "swarm"'),
        ('[swarm]\nmanager = "x"\n[swarm.nodes]\nw1 = "http://h"\n', 4, "swarm.nodes.w1 must be"),
        ('[swarm]\nconstraints = "node.role==worker"\n', 2, "swarm.constraints must be a list"),
        ('[projects.a]\npath = "."\nconstraints = ["gpu"]\n', 3, "a.constraints must be"),
        ('[defaults]\nretention = "a week"\n', 2, "defaults.retention must be seconds"),
        ('# top\n[projects.app]\nagent = "x {task}"\n', 2, "projects.app needs a path"),
        ('[projects.app]\npath = "."\n[projects.app.env]\nPORT = 80\n', 4, "quote it"),
        ('[projects]\napp = { path = ".", max_concurrent = true }\n', 2, "app.max_concurrent"),
        ('[projects."my app"]\npath = "."\nimage = ""\n', 3, "projects.my app.image must"),
        ('[projects.a]\npath = "."\nagent = """\n[x]\nimage = 1\n"""\nimage = 3\n', 7, "a.image"),
        ("[projects]\napp = 3\n", 2, "projects.app must be a table"),
        ("\n\nlimit = 3\n", 3, "limit is not a setting"),
    ],
)
def test_bad_values_name_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        Config.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path} line {line}: "), message
    assert fragment in message
    assert "\n" not in message


def test_swarm_table(tmp_path: Path) -> None:
    text = (
        '[swarm]\nregistry = "10.0.0.1:5000"\nconstraints = ["node.role==worker"]\n'
        '[swarm.nodes]\nw1 = "tcp://10.0.0.2:2376"\nw2 = "ssh://me@h"\n'
        '[projects.a]\npath = "."\nbackend = "swarm"\nconstraints = ["node.labels.gpu==1"]\n'
    )
    config = Config.load(write(tmp_path, text))
    assert config.swarm.manager is None
    assert config.swarm.registry == "10.0.0.1:5000"
    assert dict(config.swarm.nodes) == {"w1": "tcp://10.0.0.2:2376", "w2": "ssh://me@h"}
    assert config.swarm.constraints == ("node.role==worker",)
    assert config.projects["a"].backend == "swarm"
    assert config.projects["a"].constraints == ("node.labels.gpu==1",)


def test_retention_units(tmp_path: Path) -> None:
    for text, seconds in [("90", 90.0), ('"90s"', 90.0), ('"15m"', 900.0), ('"1.5h"', 5400.0)]:
        config = Config.load(write(tmp_path, f"[defaults]\nretention = {text}\n"))
        assert config.defaults.retention == seconds


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"[defaults]\nimage = '\xff'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        Config.load(path)


def test_agent_command_quotes_the_task() -> None:
    assert agent_command("run {task} -q", "it's; rm /") == "run 'it'\"'\"'s; rm /' -q"
    assert agent_command("awk '{print}' {task}", "f") == "awk '{print}' f"
    assert agent_command(None, "make test") == "make test"


def test_paths_follow_env_then_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("LUZIA_HOME", "XDG_STATE_HOME", "LUZIA_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    assert luzia_home() == tmp_path / ".local/state/luzia"
    assert config_path() == tmp_path / ".config/luzia/config.toml"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    assert luzia_home() == tmp_path / ".local/state/luzia"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert luzia_home() == tmp_path / "state/luzia"
    assert config_path() == tmp_path / "cfg/luzia/config.toml"
    monkeypatch.setenv("LUZIA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LUZIA_CONFIG", str(tmp_path / "c.toml"))
    assert luzia_home() == tmp_path / "home"
    assert config_path() == tmp_path / "c.toml"


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('command = "x"\nkind = "gpt"', "agents.a.kind must be one of claude, codex, aider"),
        ('command = "x"\nexec_command = "x -p"', "agents.a.exec_command needs {task}"),
        (
            'command = "x {task}"\ndelivery = "argument"\nexec_command = "x {task}"',
            'agents.a.exec_command is for a delivery = "prompt" profile',
        ),
        ('command = "x"\nforward_env = "KEY"', "agents.a.forward_env must be a list"),
    ],
)
def test_bad_agent_keys_are_one_line(tmp_path: Path, table: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.load(write(tmp_path, f"[agents.a]\n{table}\n"))
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_a_profile_named_like_a_built_in_agent_is_that_kind(tmp_path: Path) -> None:
    config = Config.load(write(tmp_path, '[agents.codex]\ncommand = "codex --model o4"\n'))
    profile = config.agent_profile("codex")
    assert profile is not None and profile.kind == "codex"
