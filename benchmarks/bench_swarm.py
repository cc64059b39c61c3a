"""Swarm jobs on a worker next to docker jobs on one engine, in one run, on the 3-node test cluster.

    sudo python benchmarks/bench_swarm.py [--rounds 8] [--calls 200] [--json]

Brings up ``tests/cluster`` (three dockerds in network namespaces of their own, swarm, a
registry; never the host's own Docker Engine), pushes luzia's image, then measures in
alternating rounds:

1. dispatch -> ``running``: from ``dispatch_task`` returning to the ``running`` state in the
   store, for a job of ``backend = "swarm"`` placed on a worker (a service created on the
   manager, its task started by the worker, the job copied in over the worker's engine, tmux
   ready) and for a ``backend = "docker"`` job on the manager's engine (the same dockerd
   build, storage driver and image).
2. ``send_keys`` and ``capture_pane`` on the job's pane: over the control-mode stream to the
   worker's engine, over the same stream to the local engine, and the peers' way: one
   ``docker -H WORKER exec ... tmux`` per call.
3. hook -> state: an agent's ``Stop`` hook (``examples/agents/hooked-agent``, Claude Code's
   prompt and hooks) to the ``idle`` event in the store, over ``--turns`` turns: through the
   worker's tmux and the control stream (swarm), and through the job directory and inotify
   (a local job here: a docker job's bind mount is the same path, and the benchmark's image
   holds no Claude Code, which a docker job of the claude kind is checked for).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _stats import format_table, load_average, log, machine_facts, percentile, report_head

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import cluster as test_cluster

HOOKED_AGENT = Path(__file__).resolve().parent.parent / "examples" / "agents" / "hooked-agent"


def _hooked_profile() -> Any:
    from luzia.agents.claude import PROFILE

    return dataclasses.replace(
        PROFILE, name="hooked", command="bash ./hooked-agent", delay_enter=0, forward_env=()
    )


def _wait_running(d: Any, job_id: str, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while True:
        job = d.get_status(job_id)
        if job.state.value == "running":
            return time.perf_counter()
        if job.state.value in ("failed", "killed", "completed") or time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} did not run: {job.state} {job.message}")
        time.sleep(0.002)


def _ms(samples: list[float]) -> str:
    if not samples:
        return "-"
    return f"{percentile(samples, 0.5) * 1000:.1f} / {percentile(samples, 0.95) * 1000:.1f}"


def _pane_calls(pane: Any, calls: int) -> tuple[list[float], list[float]]:
    send, capture = [], []
    for _ in range(calls):
        t0 = time.perf_counter()
        pane.send_keys("x", enter=False)
        send.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pane.capture_pane()
        capture.append(time.perf_counter() - t0)
    pane.send_key("C-u")
    return send, capture


def _exec_calls(endpoint: str, container_id: str, calls: int) -> tuple[list[float], list[float]]:
    """The peers' way: a ``docker exec`` per tmux command, to the worker's engine."""
    from controllers.docker_tmux import TMUX_SOCKET

    base = ["docker", "-H", endpoint, "exec", container_id, "tmux", "-S", TMUX_SOCKET]
    send, capture = [], []
    for _ in range(calls):
        t0 = time.perf_counter()
        subprocess.run([*base, "send-keys", "-t", "luzia", "-l", "x"], check=True)
        send.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run([*base, "capture-pane", "-p", "-t", "luzia"], check=True, stdout=-3)
        capture.append(time.perf_counter() - t0)
    subprocess.run([*base, "send-keys", "-t", "luzia", "C-u"], check=True)
    return send, capture


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--exec-calls", type=int, default=20)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.getuid() != 0 or test_cluster.missing_tools():
        print(f"needs root and {test_cluster.missing_tools()}", file=sys.stderr)
        return 2
    facts = machine_facts()
    started = time.monotonic()
    log("starting the 3-node test cluster")
    cluster = test_cluster.start()
    try:
        test_cluster.push_image(cluster, "luzia-agent:latest")
        facts["docker"] = cluster.manager.docker("version", "--format", "{{.Server.Version}}")
        facts["docker"] = facts["docker"].strip() + " (test-cluster engines, vfs)"
        facts["image"] = "luzia-agent:latest"
        results = _measure(cluster, args)
    finally:
        test_cluster.stop(cluster)
    facts["load_end"] = load_average()
    facts["seconds"] = time.monotonic() - started
    if args.json:
        import json

        print(json.dumps({"benchmark": "swarm", "machine": facts, "results": results}, indent=2))
        return 0
    rows = [
        ["what (p50 / p95 ms)", "swarm, job on a worker", "docker, same engine build", "n"],
        [
            "dispatch -> running",
            _ms(results["swarm_running"]),
            _ms(results["docker_running"]),
            str(args.rounds),
        ],
        [
            "send_keys (control stream)",
            _ms(results["swarm_send"]),
            _ms(results["docker_send"]),
            str(args.calls),
        ],
        [
            "capture_pane (control stream)",
            _ms(results["swarm_capture"]),
            _ms(results["docker_capture"]),
            str(args.calls),
        ],
        [
            "hook -> state (Stop hook to idle event; local)",
            _ms(results["swarm_hook"]),
            _ms(results["local_hook"]),
            str(args.turns),
        ],
        [
            "baseline: send-keys, docker exec per call",
            _ms(results["exec_send"]),
            "",
            str(args.exec_calls),
        ],
        [
            "baseline: capture-pane, docker exec per call",
            _ms(results["exec_capture"]),
            "",
            str(args.exec_calls),
        ],
    ]
    for line in report_head("bench_swarm", facts, f"{args.rounds} rounds"):
        print(line)
    print()
    for line in format_table(rows):
        print(line)
    return 0


def _measure(cluster: test_cluster.Cluster, args: argparse.Namespace) -> dict[str, list[float]]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-swarm-"))
    os.environ.update(
        LUZIA_HOME=str(scratch / "home"),
        LUZIA_NO_AUTOSTART="1",
        DOCKER_HOST=cluster.manager.endpoint,
    )
    config_file = scratch / "config.toml"
    config_file.write_text(
        "[defaults]\nmax_concurrent = 8\n\n" + cluster.config_toml(("node.role==worker",))
    )
    os.environ["LUZIA_CONFIG"] = str(config_file)
    workspace = scratch / "workspace"
    workspace.mkdir()
    from luzia.config import Config
    from luzia.dispatcher import ResponsiveDispatcher
    from luzia.engine import Engine
    from luzia.swarm import SwarmBackend

    config = dataclasses.replace(Config.load(config_file), agents={"hooked": _hooked_profile()})
    (workspace / "hooked-agent").write_bytes(HOOKED_AGENT.read_bytes())
    d = ResponsiveDispatcher(home=scratch / "home", config=config)
    engine = Engine(scratch / "home", config).start()
    swarm = SwarmBackend(config.swarm, config)
    out: dict[str, list[float]] = {
        k: []
        for k in (
            "swarm_running", "docker_running", "swarm_send", "docker_send",
            "swarm_capture", "docker_capture", "exec_send", "exec_capture",
            "swarm_hook", "local_hook",
        )
    }  # fmt: skip
    try:
        for round_ in range(args.rounds):
            for backend in ("swarm", "docker") if round_ % 2 == 0 else ("docker", "swarm"):
                job_id = d.dispatch_task("sleep 600", workdir=workspace, backend=backend)
                t0 = time.perf_counter()
                out[f"{backend}_running"].append(_wait_running(d, job_id) - t0)
                if round_ == 0:
                    _panes(d, swarm, cluster, job_id, backend, args, out)
                d.kill_job(job_id)
                d.remove_job(job_id, force=True)
            log(f"round {round_ + 1}/{args.rounds} done")
        for backend in ("swarm", "local"):
            out[f"{backend}_hook"] = _hook_latency(d, workspace, backend, args.turns)
            log(f"hook -> state on {backend} done")
    finally:
        d.clean(all=True)
        engine.stop()
        d.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def _hook_latency(d: Any, workspace: Path, backend: str, turns: int) -> list[float]:
    """Seconds from each turn's ``Stop`` hook (the time it carries) to its ``idle`` event."""
    job_id = d.dispatch_task("turn 0", workdir=workspace, backend=backend, agent="hooked")
    events = iter(d.stream_status(job_id))
    samples = []
    try:
        for turn in range(turns + 1):
            if turn:
                d.send_input(job_id, f"turn {turn}")
            while True:
                event = next(events)
                if event.state.value == "idle" and f"done: turn {turn} at " in event.reason:
                    break
                if event.state.value in ("failed", "killed", "completed"):
                    raise RuntimeError(f"job {job_id} ended: {event.reason}")
            if turn:  # the first turn also waits for the agent's start
                hook_at = float(event.reason.rsplit(" at ", 1)[1].split()[0])
                samples.append(event.at - hook_at)
    finally:
        d.kill_job(job_id)
        d.remove_job(job_id, force=True)
    return samples


def _panes(
    d: Any,
    swarm: Any,
    cluster: test_cluster.Cluster,
    job_id: str,
    backend: str,
    args: argparse.Namespace,
    out: dict[str, list[float]],
) -> None:
    from luzia.backends import DockerBackend

    job = d.get_status(job_id)
    owner = swarm if backend == "swarm" else DockerBackend()
    pane = owner.reattach(job)
    try:
        send, capture = _pane_calls(pane, args.calls)
    finally:
        pane.detach()
    out[f"{backend}_send"], out[f"{backend}_capture"] = send, capture
    if backend == "swarm":
        node = cluster.node(swarm.node_of(job))
        container = swarm._container(job)
        out["exec_send"], out["exec_capture"] = _exec_calls(
            node.endpoint, container.id, args.exec_calls
        )


if __name__ == "__main__":
    sys.exit(main())
