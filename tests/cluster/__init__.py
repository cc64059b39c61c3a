"""A Docker Swarm on this one machine, for tests and benchmarks: a manager and two workers, plus
a spare worker a test may stop.

Each node is an extra ``dockerd`` in a network namespace of its own, joined to the others by a
veth pair to a bridge that lives in a namespace of its own too, so nothing is added to the
host's network. Each has its own ``--data-root``, ``--exec-root``, socket, pidfile and
containerd namespace, no bridge and no iptables rules, and a ``--config-file`` of its own
(the host's ``daemon.json`` would conflict). It is started with ``nsenter --net`` (``ip netns
exec`` remounts /sys and dockerd then fails) inside ``unshare --uts``, so every node has its own
host name. A registry (Debian's ``docker-registry``) listens on the manager's address; every
node trusts it over plain HTTP. The host's own Docker Engine is never used.

``python -m tests.cluster up|down DIR`` does the same from a shell.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUBNET = "192.168.213"
"""The nodes' addresses, ``SUBNET.11`` upwards: only inside the cluster's own namespaces."""
REGISTRY_PORT = 5000
NODES = ("manager", "worker1", "worker2", "spare")
"""The manager and two workers; ``spare``, a third worker labelled ``spare=1``, is the one a
test may stop (the others keep ``node.labels.spare!=1`` and never see it go)."""
SPARE = "spare"
READY_TIMEOUT = 60.0
NEEDS = ("dockerd", "containerd", "nsenter", "unshare", "ip", "docker-registry")
HEARTBEAT = "1s"
"""Swarm's node heartbeat: a stopped node is ``down`` about three of these later."""


@dataclass
class Node:
    """One dockerd of the cluster."""

    name: str
    address: str
    base: Path
    netns: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def cgroup(self) -> str:
        """The cgroup its containers go under: its own, never the host engine's ``docker``."""
        return f"{self.netns}-cg"

    @property
    def socket(self) -> Path:
        return self.base / "docker.sock"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def docker(self, *args: str, timeout: float = 60) -> str:
        """Run the docker CLI against this node; its stdout."""
        result = subprocess.run(
            ["docker", "-H", self.endpoint, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} on {self.name}: {result.stderr.strip()}")
        return result.stdout


@dataclass
class Cluster:
    """The cluster's nodes, registry and the directory holding all of their state."""

    base: Path
    tag: str
    nodes: list[Node] = field(default_factory=list)
    registry_process: subprocess.Popen[bytes] | None = None

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    @property
    def registry(self) -> str:
        return f"{self.manager.address}:{REGISTRY_PORT}"

    @property
    def bridge_netns(self) -> str:
        return f"lzc{self.tag}-br"

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def config_toml(self, constraints: tuple[str, ...] = ()) -> str:
        """The ``[swarm]`` part of a luzia config for this cluster."""
        lines = ["[swarm]", f'manager = "{self.manager.endpoint}"', f'registry = "{self.registry}"']
        if constraints:
            lines.append(f"constraints = {json.dumps(list(constraints))}")
        lines += ["", "[swarm.nodes]"]
        lines += [f'{node.name} = "{node.endpoint}"' for node in self.nodes]
        return "\n".join(lines) + "\n"

    def stop_node(self, name: str) -> None:
        """Stop one node's dockerd (SIGTERM, as a service manager would), and wait for it."""
        node = self.node(name)
        pid = _dockerd_pid(node)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if node.process is not None:
            node.process.wait(timeout=10)


def restart_node(cluster: Cluster, name: str) -> None:
    """Start a stopped node's dockerd again and wait until the manager has it back."""
    node = cluster.node(name)
    _start_dockerd(node)

    def all_ready() -> bool:
        states = cluster.manager.docker("node", "ls", "--format", "{{.Status}}").split()
        return states.count("Ready") == len(NODES)

    _wait(all_ready, "every node to be Ready")


def missing_tools() -> list[str]:
    return [tool for tool in NEEDS if shutil.which(tool) is None]


def start(base: Path | None = None) -> Cluster:
    """Bring up the namespaces, three dockerds, the swarm and the registry. On any failure,
    what was made is taken down again before the error is raised."""
    tag = secrets.token_hex(2)
    base = Path(base or f"/tmp/lzc-{tag}")
    base.mkdir(parents=True, exist_ok=True)
    (base / "cluster.json").write_text(json.dumps({"tag": tag}))
    cluster = Cluster(base, tag)
    try:
        _network(cluster)
        with ThreadPoolExecutor(len(NODES)) as pool:
            list(pool.map(_start_dockerd, cluster.nodes))
        _start_registry(cluster)
        _form_swarm(cluster)
    except BaseException:
        stop(cluster)
        raise
    return cluster


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def _network(cluster: Cluster) -> None:
    br = cluster.bridge_netns
    _run("ip", "netns", "add", br)
    _run("ip", "-n", br, "link", "set", "lo", "up")
    _run("ip", "-n", br, "link", "add", "br0", "type", "bridge")
    _run("ip", "-n", br, "link", "set", "br0", "up")
    for index, name in enumerate(NODES):
        netns = f"lzc{cluster.tag}-{name}"
        node = Node(name, f"{SUBNET}.{11 + index}", cluster.base / name, netns)
        node.base.mkdir()
        cluster.nodes.append(node)
        outer, inner = f"lzc{cluster.tag}{index}a", f"lzc{cluster.tag}{index}b"
        _run("ip", "netns", "add", netns)
        _run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        _run("ip", "link", "set", outer, "netns", br)
        _run("ip", "link", "set", inner, "netns", netns)
        _run("ip", "-n", br, "link", "set", outer, "master", "br0", "up")
        _run("ip", "-n", netns, "link", "set", inner, "name", "eth0")
        _run("ip", "-n", netns, "addr", "add", f"{node.address}/24", "dev", "eth0")
        _run("ip", "-n", netns, "link", "set", "eth0", "up")
        _run("ip", "-n", netns, "link", "set", "lo", "up")


def _start_dockerd(node: Node) -> None:
    config = node.base / "daemon.json"
    registry = f"{SUBNET}.11:{REGISTRY_PORT}"
    config.write_text(json.dumps({"insecure-registries": [registry]}))
    ns = f"lzc-{node.netns}"
    dockerd = [
        "dockerd",
        "--config-file", str(config),
        "--data-root", str(node.base / "data"),
        "--exec-root", str(node.base / "exec"),
        "--host", node.endpoint,
        "--pidfile", str(node.base / "docker.pid"),
        "--containerd-namespace", ns,
        "--containerd-plugins-namespace", f"{ns}-plugins",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--storage-driver", "vfs",
        "--cgroup-parent", f"/{node.cgroup}",
        "--log-level", "warn",
    ]  # fmt: skip
    script = f'hostname "$1" && shift && exec nsenter --net=/run/netns/{node.netns} "$@"'
    argv = ["unshare", "--uts", "--", "sh", "-c", script, "sh", f"lzc-{node.name}", *dockerd]
    with (node.base / "dockerd.log").open("wb") as log:
        node.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    _wait(lambda: _answers(node), f"dockerd of {node.name} to answer", node)


def _answers(node: Node) -> bool:
    if not node.socket.exists():
        return False
    result = subprocess.run(
        ["docker", "-H", node.endpoint, "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        check=False,
        timeout=10,
    )
    return result.returncode == 0


def _wait(ready: Any, what: str, node: Node | None = None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready():
        if node is not None and node.process is not None and node.process.poll() is not None:
            log = (node.base / "dockerd.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"dockerd of {node.name} exited: {log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _start_registry(cluster: Cluster) -> None:
    config = cluster.base / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {cluster.base / 'registry'}\n"
        f"http:\n  addr: {cluster.registry}\n"
    )
    argv = [
        "nsenter",
        f"--net=/run/netns/{cluster.manager.netns}",
        "docker-registry",
        "serve",
        str(config),
    ]
    with (cluster.base / "registry.log").open("wb") as log:
        cluster.registry_process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )


def _form_swarm(cluster: Cluster) -> None:
    manager = cluster.manager
    manager.docker(
        "swarm", "init",
        "--advertise-addr", manager.address,
        "--listen-addr", f"{manager.address}:2377",
        "--dispatcher-heartbeat", HEARTBEAT,
    )  # fmt: skip
    token = manager.docker("swarm", "join-token", "-q", "worker").strip()
    for worker in cluster.workers:
        worker.docker(
            "swarm", "join", "--token", token,
            "--advertise-addr", worker.address,
            "--listen-addr", f"{worker.address}:2377",
            f"{manager.address}:2377",
        )  # fmt: skip

    def all_ready() -> bool:
        states = manager.docker("node", "ls", "--format", "{{.Status}}").split()
        return states.count("Ready") == len(NODES)

    _wait(all_ready, "every node to be Ready")
    manager.docker("node", "update", "--label-add", "spare=1", f"lzc-{SPARE}")


def push_image(cluster: Cluster, image: str) -> str:
    """Build luzia's agent image on the manager (offline), push it to the registry and pull it
    on every worker (first jobs then start as fast as later ones); its name in the registry."""
    from controllers.image import build_agent_image
    from controllers.image.push import push_agent_image

    env = {**os.environ, "DOCKER_HOST": cluster.manager.endpoint}
    with _environment(env):
        build_agent_image(image, method="offline")
        pushed = push_agent_image(image, cluster.registry)
    with ThreadPoolExecutor(len(cluster.workers)) as pool:
        list(pool.map(lambda node: node.docker("pull", "-q", pushed), cluster.workers))
    return pushed


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def stop(cluster: Cluster) -> None:
    """Take everything down: services, dockerds and what they started, the registry, mounts,
    namespaces and the directory. Safe to call on a half-made cluster, on one this process only
    attached to (:func:`attach`), and twice."""
    for node in cluster.nodes:
        if _dockerd_pid(node) is not None:
            with contextlib.suppress(Exception):
                node.docker("swarm", "leave", "--force", timeout=20)
    pids = [pid for pid in map(_dockerd_pid, cluster.nodes) if pid is not None]
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30  # a dockerd stops its containers before it exits
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for node in cluster.nodes:
        if node.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=1)  # reaped, if it is our child
    if cluster.registry_process is not None and cluster.registry_process.poll() is None:
        cluster.registry_process.kill()
        cluster.registry_process.wait(timeout=10)
    namespaces = [node.netns for node in cluster.nodes] + [cluster.bridge_netns]
    _kill_everything_in(namespaces, cluster.base)
    _remove_cgroups(cluster)
    _unmount_under(cluster.base)
    for netns in namespaces:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
    shutil.rmtree(cluster.base, ignore_errors=True)


def _dockerd_pid(node: Node) -> int | None:
    """The node's running dockerd: our child, or the one its pidfile names."""
    if node.process is not None:
        return node.process.pid if node.process.poll() is None else None
    try:
        pid = int((node.base / "docker.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except OSError:
        return False


def attach(base: Path) -> Cluster:
    """The cluster another process started in ``base`` (its processes are not our children)."""
    tag = json.loads((base / "cluster.json").read_text())["tag"]
    cluster = Cluster(base, tag)
    cluster.nodes = [
        Node(name, f"{SUBNET}.{11 + i}", base / name, f"lzc{tag}-{name}")
        for i, name in enumerate(NODES)
    ]
    return cluster


def stop_dir(base: Path) -> None:
    """:func:`stop` for a cluster known only by its directory (``python -m tests.cluster``)."""
    stop(attach(base))


@contextlib.contextmanager
def shared(run_id: str, image: str = "luzia-agent:latest") -> Iterator[Cluster]:
    """One cluster (with ``image`` pushed) for every process of test run ``run_id``: the
    first to ask starts it, the last to let go takes it down (pytest-xdist workers are
    processes of their own, and tests of one module may run on several)."""
    from controllers.pytest_plugin import host_lock

    state = Path(tempfile.gettempdir()) / f"luzia-test-cluster-{run_id}.json"
    with host_lock(f"cluster {run_id}"):
        if state.exists():
            info = json.loads(state.read_text())
            cluster = attach(Path(info["base"]))
        else:
            cluster = start()
            try:
                push_image(cluster, image)
            except BaseException:
                stop(cluster)
                raise
            info = {"base": str(cluster.base), "users": 0}
        info["users"] += 1
        state.write_text(json.dumps(info))
    try:
        yield cluster
    finally:
        with host_lock(f"cluster {run_id}"):
            info = json.loads(state.read_text())
            info["users"] -= 1
            if info["users"] > 0:
                state.write_text(json.dumps(info))
            else:
                state.unlink()
                stop(cluster)
                left = leftovers(cluster)
                assert not left, f"the test cluster left {left}"


def _kill_everything_in(namespaces: list[str], base: Path) -> None:
    """SIGKILL every process in the cluster's namespaces, every process below them (the
    containers' own namespaces), and any naming the cluster's directory (a containerd-shim)."""
    inodes = set()
    for netns in namespaces:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(f"/run/netns/{netns}").st_ino)
    for _ in range(50):
        victims = _cluster_processes(inodes, os.fsencode(base))
        if not victims:
            return
        for pid in victims:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _cluster_processes(inodes: set[int], base: bytes) -> set[int]:
    parents: dict[int, int] = {}
    roots: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            parents[pid] = int(stat.rpartition(b")")[2].split()[1])
            if os.stat(f"/proc/{pid}/ns/net").st_ino in inodes:
                roots.add(pid)
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if base in f.read():
                    roots.add(pid)
        except (OSError, ValueError, IndexError):
            continue
    found = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                changed = True
    found.discard(os.getpid())
    return found


def _cgroups(cluster: Cluster) -> list[Path]:
    """The cgroup directories of the nodes' containers, deepest first (v1 and v2 layouts)."""
    found: list[Path] = []
    for node in cluster.nodes:
        for root in Path("/sys/fs/cgroup").glob("*"):
            for top in (root / node.cgroup, Path("/sys/fs/cgroup") / node.cgroup):
                if top.is_dir():
                    found += [p for p in top.rglob("*") if p.is_dir()] + [top]
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def _remove_cgroups(cluster: Cluster) -> None:
    """rmdir what the nodes' containers left in the cgroup tree (it fails while a process is in
    one: every process is gone by now)."""
    for path in _cgroups(cluster):
        with contextlib.suppress(OSError):
            path.rmdir()


def _unmount_under(base: Path) -> None:
    """Lazily unmount every mount below ``base``, deepest first (vfs layers, netns files)."""
    prefix = str(base.resolve()) + "/"
    for _ in range(3):
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        ours = sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)
        if not ours:
            return
        for point in ours:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def leftovers(cluster: Cluster) -> list[str]:
    """What of the cluster still exists (for the tests' final check)."""
    found = []
    namespaces = [node.netns for node in cluster.nodes] + [cluster.bridge_netns]
    found += [f"netns {n}" for n in namespaces if os.path.lexists(f"/run/netns/{n}")]
    if cluster.base.exists():
        found.append(f"directory {cluster.base}")
    pids = _cluster_processes(set(), os.fsencode(cluster.base))
    found += [f"process {pid}" for pid in sorted(pids)]
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if str(cluster.base) in line]
    found += [f"cgroup {path}" for path in _cgroups(cluster)]
    return found
