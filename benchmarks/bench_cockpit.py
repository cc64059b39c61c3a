"""Cockpit figures: its CPU, how soon a change in the store is on its screen, its memory.

    python benchmarks/bench_cockpit.py [--seconds S] [--changes N] [--jobs N] [--printing N]
                                       [--json]

A home with ``--jobs`` jobs (100): ``--printing`` (10) real local jobs printing a line every
50 ms, the rest idle agents, as records in the store (state ``idle``, "waiting at its prompt";
an idle agent's pane prints nothing, so what costs is the list, not its panes). The cockpit runs
as a person runs it, ``luzia cockpit`` in a terminal (a tmux pane of its own, 160x48), with a
printing job selected, so its preview follows a pane that never stops.

Measured, for luzia's cockpit and then, in the same run, for the baseline (the same app with
``--naive-poll 0.5``: every 0.5 s it re-reads every job and re-captures the selected pane, the
way a watch-style dashboard refreshes):

1. CPU: the cockpit process's utime+stime (``/proc/PID/stat``) over ``--seconds`` (60) after
   it settled, as % of one core.
2. store -> screen: ``--changes`` (20) state changes of idle jobs, made by this process through
   the store (``transition``) at random moments; the figure is the time the cockpit wrote the
   change to its trace file (``LUZIA_COCKPIT_TRACE``, written once the screen was refreshed
   with it) minus the commit's end. Same kernel clock.
3. memory: the cockpit's RSS (``VmRSS``) at the end, with 100 jobs listed.

Nothing is written to the repository; the temporary home and every job are removed at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from _stats import (
    close_dispatcher,
    format_table,
    interrupt_on_signals,
    load_average,
    log,
    machine_facts,
    percentile,
    print_document,
    report_head,
    scratch_home,
)

from controllers import LocalTmuxController
from luzia.agents import FAKE_AGENT
from luzia.config import Config, Defaults
from luzia.dispatcher import ResponsiveDispatcher
from luzia.jobs import JobState

FAKE_AGENT_FILE = Path(__file__).resolve().parent.parent / "examples" / "agents" / "fake-agent"
PRINTER = (
    'f=$(mktemp -u); mkfifo "$f"; exec 9<>"$f"; rm "$f"; '
    "while :; do printf 'line %05d %(%T)T\\n' $RANDOM -1; read -t 0.05 -u 9; done"
)
"""A line every 50 ms without a process per line (printf and a timed read are bash builtins):
the machine's load is then the cockpit's and the shared host's, not the printers' forks."""
TICKS = os.sysconf("SC_CLK_TCK")


def workspace(scratch: Path, name: str) -> Path:
    path = scratch / name
    path.mkdir(exist_ok=True)
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cockpit_pid(terminal: LocalTmuxController) -> int:
    """The cockpit's Python process: the pane's foreground process group leader."""
    pane_pid = int(terminal.tmux("display-message", "-p", "-t", terminal.pane_id, "#{pane_pid}")[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pane_pid and b"cockpit" in cmdline:
                return int(entry.name)
        time.sleep(0.05)
    raise RuntimeError("the cockpit process did not start")


def trace_lines(path: Path) -> list[tuple[float, str, str]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        at, job_id, state = line.split()
        rows.append((float(at), job_id, state))
    return rows


def wait_trace(path: Path, job_id: str, timeout: float = 10.0) -> float:
    """When the cockpit first showed ``job_id`` (in whatever state it had by then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for at, seen_id, _state in trace_lines(path):
            if seen_id == job_id:
                return at
        time.sleep(0.005)  # reading another process's file: there is no event to wait on
    raise RuntimeError(f"the cockpit never showed {job_id}")


def measure(
    home: Path, d: ResponsiveDispatcher, args: argparse.Namespace, naive: bool
) -> dict[str, Any]:
    trace = home.parent / ("trace-naive" if naive else "trace-luzia")
    trace.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "luzia", "--home", str(home), "cockpit"]
    if naive:
        argv += ["--naive-poll", "0.5"]
    env = {"LUZIA_COCKPIT_TRACE": str(trace)}
    with LocalTmuxController(width=160, height=48, env=env) as terminal:
        terminal.wait_for_shell_prompt()
        terminal.send_keys(" ".join(argv))
        pid = cockpit_pid(terminal)
        terminal.wait_for_prompt(r"pane \(live\)", timeout=60)
        log(f"{'baseline' if naive else 'luzia'}: cockpit pid {pid} up; CPU for {args.seconds} s")
        start_cpu, start = cpu_seconds(pid), time.monotonic()
        time.sleep(args.seconds)  # the measurement window itself
        cpu = (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start) * 100
        latencies = []
        for _ in range(args.changes):
            time.sleep(random.uniform(0.2, 0.7))  # a random phase against any poll
            job_id = d.dispatch_task("true", backend="local", workdir=home.parent)
            created = d.get_status(job_id).created_at  # the store's own time of the insert
            shown = wait_trace(trace, job_id)
            latencies.append(max(0.0, shown - created) * 1000)
        memory = rss_mb(pid)
        terminal.send_key("q")
        terminal.wait_for_shell_prompt(30)
    return {
        "cpu_percent": round(cpu, 2),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "rss_mb": round(memory, 1),
        "changes": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="CPU window per cockpit")
    parser.add_argument("--changes", type=int, default=20, help="store changes timed")
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--printing", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    interrupt_on_signals()
    facts = machine_facts()
    began = time.monotonic()
    scratch, home = scratch_home("luzia-bench-cockpit-")
    # every job holds a slot: the idle records must not keep the printing ones queued
    fake = dataclasses.replace(FAKE_AGENT, name="fake", command=f"bash {FAKE_AGENT_FILE}")
    config = Config(defaults=Defaults(max_concurrent=1000), agents={"fake": fake})
    d = ResponsiveDispatcher(home=home, config=config)
    engine = d.start_background_monitor()
    try:
        log(f"starting {args.jobs - args.printing} idle agents and {args.printing} printers")
        idle_ids = [
            d.dispatch_task(
                f"say: agent {index} is ready",
                project=f"p{index % 7}",
                agent="fake",
                backend="local",
                workdir=workspace(scratch, f"agent-{index}"),  # one agent per workspace
                env={"FAKE_AGENT_THINK": "0"},
            )
            for index in range(args.jobs - args.printing)
        ]
        printers = [
            d.dispatch_task(PRINTER, backend="local", workdir=scratch) for _ in range(args.printing)
        ]
        for job_id in idle_ids:
            d.wait_for_job(job_id, timeout=300, until="idle")
        deadline = time.monotonic() + 120
        while any(d.get_status(j).state is not JobState.RUNNING for j in printers):
            if time.monotonic() > deadline:
                raise RuntimeError("the printing jobs did not all start")
            time.sleep(0.05)
        states = sorted(str(d.get_status(j).state) for j in idle_ids + printers)
        log("jobs: " + ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states))))
        results = {
            "luzia": measure(home, d, args, naive=False),
            "baseline": measure(home, d, args, naive=True),
        }
    finally:
        close_dispatcher(d, engine)
    facts["load_end"] = load_average()
    facts["seconds"] = time.monotonic() - began
    if args.json:
        print_document("cockpit", facts, results=results)
        return
    for line in report_head(
        "bench_cockpit",
        facts,
        f"{args.jobs} jobs, {args.printing} printing every 50 ms, {args.seconds:g} s CPU window",
    ):
        print(line)
    rows = [["cockpit", "CPU % of a core", "store->screen p50", "p95", "RSS", "changes"]]
    names = {"luzia": "luzia (feeds)", "baseline": "naive 0.5 s poll"}
    for key, result in results.items():
        rows.append(
            [
                names[key],
                f"{result['cpu_percent']:.2f}",
                f"{result['p50_ms']:.0f} ms",
                f"{result['p95_ms']:.0f} ms",
                f"{result['rss_mb']:.0f} MB",
                str(result["changes"]),
            ]
        )
    for line in format_table(rows):
        print(line)


if __name__ == "__main__":
    main()
