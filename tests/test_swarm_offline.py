"""The swarm backend's parts that need no cluster: a job's copy of its workspace as its
container's archive brings it back (whatever the job made of the copy, nothing lands outside the
directory it is unpacked into), and what a swarm job refuses at dispatch."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from luzia.config import Config
from luzia.dispatcher import ResponsiveDispatcher
from luzia.errors import UsageError
from luzia.swarm import _tar, _tree, _unpack_workspace


def archive(*members: tuple[str, bytes | str | None, int]) -> list[bytes]:
    """A tar like ``GET /containers/ID/archive?path=/workspace``, in small chunks: ``data`` is
    bytes for a file, ``None`` for a directory, a target for a link (mode 0: a hard link)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(data, str):
                info.type, info.linkname = (tarfile.LNKTYPE if mode == 0 else tarfile.SYMTYPE), data
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    raw = out.getvalue()
    return [raw[i : i + 777] for i in range(0, len(raw), 777)]


def test_files_links_and_modes_come_back_and_nothing_escapes(tmp_path: Path) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    chunks = archive(
        ("workspace", None, 0o755),
        ("workspace/src", None, 0o755),
        ("workspace/src/app.py", b"print(1)\n", 0o644),
        ("workspace/run.sh", b"#!/bin/sh\n", 0o700),
        ("workspace/link", "src/app.py", 0o777),
        ("workspace/same", "workspace/src/app.py", 0),  # a hard link
        ("workspace/.git", None, 0o755),
        ("workspace/.git/config", b"[core]\n", 0o644),
        ("workspace/../escape.txt", b"no", 0o644),
        ("workspace/out", str(outside), 0o777),
        ("workspace/out/planted.txt", b"through a link", 0o644),
        ("workspace/link", b"a second entry over the link", 0o644),
    )
    _unpack_workspace(chunks, dest)
    assert (dest / "src" / "app.py").read_bytes() == b"print(1)\n"
    assert os.stat(dest / "run.sh").st_mode & 0o777 == 0o755
    assert os.stat(dest / "src" / "app.py").st_mode & 0o777 == 0o644
    assert os.readlink(dest / "link") == "src/app.py"
    assert (dest / "same").read_bytes() == b"print(1)\n"
    assert not (dest / ".git").exists()
    assert not (tmp_path / "escape.txt").exists()
    assert os.readlink(dest / "out") == str(outside)
    assert list(outside.iterdir()) == []
    assert (dest / "src" / "app.py").read_bytes() == b"print(1)\n"


def test_what_goes_into_the_container_comes_back_the_same(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "deep").mkdir(parents=True)
    (src / "deep" / "tool").write_bytes(b"#!/bin/sh\n")
    (src / "deep" / "tool").chmod(0o755)
    (src / "notes.txt").write_text("notes\n")
    (src / "to-notes").symlink_to("notes.txt")
    (src / "to-etc").symlink_to("/etc")
    dest.mkdir()
    raw = _tar(_tree(src, "workspace"), (os.getuid(), os.getgid()))
    _unpack_workspace([raw], dest)
    assert (dest / "deep" / "tool").read_bytes() == b"#!/bin/sh\n"
    assert os.stat(dest / "deep" / "tool").st_mode & 0o111
    assert os.readlink(dest / "to-notes") == "notes.txt"
    assert os.readlink(dest / "to-etc") == "/etc"


def test_a_swarm_job_refuses_host_mounts_at_dispatch(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[swarm]\nmanager = "unix:///nowhere.sock"\n')
    d = ResponsiveDispatcher(home=tmp_path / "home", config=Config.load(config))
    with pytest.raises(UsageError, match=r"mounts \(/tmp:/data\) are not for swarm jobs"):
        d.dispatch_task("true", workdir=tmp_path, backend="swarm", mounts=["/tmp:/data"])
    assert d.list_jobs() == []


def test_a_swarm_job_refuses_network_none_at_dispatch(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[swarm]\nmanager = "unix:///nowhere.sock"\n')
    d = ResponsiveDispatcher(home=tmp_path / "home", config=Config.load(config))
    with pytest.raises(UsageError, match="network none is not for swarm jobs"):
        d.dispatch_task("true", workdir=tmp_path, backend="swarm", network="none")
    assert d.list_jobs() == []


def test_a_record_through_the_bell_lands_only_under_a_name_signal_sh_makes(tmp_path: Path) -> None:
    from luzia.signals import put_record, read_signal

    assert put_record(tmp_path, "1764470000123456789.42.Stop", b'{"last_assistant_message": "x"}')
    for forged in ("../escape.1.Stop", "1.2.Stop/..", ".1.2.Stop", "1.2.", "a.b.Stop"):
        assert not put_record(tmp_path, forged, b"{}")
    assert [p.name for p in tmp_path.iterdir()] == ["1764470000123456789.42.Stop"]
    record = read_signal(tmp_path / "1764470000123456789.42.Stop", 0.0)
    assert record is not None and record.name == "Stop"
    assert record.payload == {"last_assistant_message": "x"}


def test_a_docker_context_gives_its_host_and_tls_material(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read from the CLI's own store, as ``docker context create`` leaves it (no config.json)."""
    import hashlib
    import json

    from controllers.docker_engine import _cli_context, endpoint_args

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    digest = hashlib.sha256(b"w1").hexdigest()
    meta = tmp_path / "contexts" / "meta" / digest
    meta.mkdir(parents=True)
    endpoint = {"Host": "tcp://10.0.0.2:2376", "SkipTLSVerify": False}
    (meta / "meta.json").write_text(json.dumps({"Name": "w1", "Endpoints": {"docker": endpoint}}))
    assert _cli_context("w1") == ("tcp://10.0.0.2:2376", False)
    material = tmp_path / "contexts" / "tls" / digest / "docker"
    material.mkdir(parents=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (material / name).write_text("-----")
    host, tls = _cli_context("w1")
    assert host == "tcp://10.0.0.2:2376"
    assert tls.ca_cert == str(material / "ca.pem") and tls.verify
    assert tls.cert == (str(material / "cert.pem"), str(material / "key.pem"))
    assert _cli_context("w2") == (None, False)
    assert endpoint_args("context:w1") == ["--context", "w1"]
    assert endpoint_args("ssh://me@node") == ["-H", "ssh://me@node"]


def test_swarm_endpoints_in_the_config(tmp_path: Path) -> None:
    from luzia.errors import ConfigError

    config = tmp_path / "config.toml"
    config.write_text('[swarm]\nmanager = "context:prod"\n[swarm.nodes]\nw1 = "context:w1"\n')
    settings = Config.load(config).swarm
    assert (settings.manager, dict(settings.nodes)) == ("context:prod", {"w1": "context:w1"})
    config.write_text('[swarm.nodes]\nw1 = "ftp://w1"\n')
    with pytest.raises(ConfigError, match=r"swarm\.nodes\.w1.*context:NAME"):
        Config.load(config)


def test_retries_are_asked_for_swarm_jobs_only_and_counted_sanely(tmp_path: Path) -> None:
    from luzia.errors import ConfigError
    from luzia.launch import read_launch

    config = tmp_path / "config.toml"
    config.write_text('[swarm]\nmanager = "unix:///nowhere.sock"\nretries = 2\n')
    d = ResponsiveDispatcher(home=tmp_path / "home", config=Config.load(config))
    with pytest.raises(UsageError, match=r"retries: only for swarm jobs.*backend is local"):
        d.dispatch_task("true", workdir=tmp_path, backend="local", retries=1)
    for bad in (-1, 11, "two"):
        with pytest.raises(UsageError, match="retries must be a whole number from 0 to 10"):
            d.dispatch_task("true", workdir=tmp_path, backend="swarm", retries=bad)  # type: ignore[arg-type]
    assert d.list_jobs() == []
    default = d.dispatch_task("true", workdir=tmp_path, backend="swarm")
    asked = d.dispatch_task("true", workdir=tmp_path, backend="swarm", retries=0)
    retries = [read_launch(d.get_status(j).job_dir).retries for j in (default, asked)]  # type: ignore[union-attr]
    assert retries == [2, 0]
    config.write_text("[swarm]\nretries = true\n")
    with pytest.raises(ConfigError, match=r"swarm\.retries must be a whole number from 0 to 10"):
        Config.load(config)
