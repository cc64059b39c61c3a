"""Helpers the benchmark scripts share: percentiles, plain-text tables, machine facts, and the
run's set-up and clean-up (signals, scratch home, Docker, labelled containers, the report head).

Kept tiny and dependency-free on purpose: a benchmark must run (and print the same way) on a
bare machine, without rich and without luzia's own formatting code in the path it measures.
The Docker helpers import ``controllers`` only when called, so a script that never touches
Docker never loads it from here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any


def add_agent_options(
    parser: argparse.ArgumentParser, agents: Sequence[str], backends: Sequence[str]
) -> None:
    """``--agents`` and ``--backends``, comma-separated, all by default."""
    parser.add_argument("--agents", default=",".join(agents), help=f"{','.join(agents)} (all)")
    parser.add_argument(
        "--backends", default=",".join(backends), help=f"{','.join(backends)} (all)"
    )


def chosen(
    parser: argparse.ArgumentParser, option: str, value: str, known: Sequence[str]
) -> list[str]:
    """The names a comma-separated option lists; a usage error for an unknown or repeated one."""
    names = [name for name in value.split(",") if name]
    if not names or set(names) - set(known) or len(set(names)) != len(names):
        parser.error(f"--{option}: a list of {', '.join(known)}")
    return names


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The sample at ``fraction`` of the sorted list (nearest rank, never interpolated).

    Interpolation would invent values nobody measured; with the small ``n`` of the slow rows a
    reader can map the figure back to one real sample.
    """
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def format_table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of an aligned table: the first row is the header, followed by a dashed rule.

    Columns are left-aligned and two spaces apart, so the output stays readable in a log, a
    terminal without colour, or a commit message.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded for the report."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_facts() -> dict[str, Any]:
    """What a reader needs to judge the figures: CPUs, versions, the load as the run begins."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if "model name" in ln), "")
    tmux = subprocess.run(["tmux", "-V"], capture_output=True, text=True, check=False)
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tmux": tmux.stdout.strip(),
        "load_start": load_average(),
    }


def report_head(title: str, facts: dict[str, Any], tail: str, cpus: str = "") -> list[str]:
    """The two lines above a table: the machine, then the load, the wall time and ``tail``.

    ``cpus`` words the CPU count (default ``nproc N``); ``facts`` needs ``load_end`` and
    ``seconds`` by now.
    """
    cpus = cpus or f"nproc {facts['nproc']}"
    return [
        f"{title}: {cpus} ({facts['cpus_usable']} usable) "
        f"{facts['cpu_model']}, Linux {facts['kernel']}, Python {facts['python']}, "
        f"{facts['tmux']}, Docker {facts.get('docker', 'not used')}, "
        f"image {facts.get('image', '-')}",
        "load average (1/5/15 min): start " + "/".join(f"{x:.2f}" for x in facts["load_start"])
        + ", end " + "/".join(f"{x:.2f}" for x in facts["load_end"])
        + f"; wall time {facts['seconds']:.0f} s; {tail}",
    ]  # fmt: skip


def print_document(benchmark: str, facts: dict[str, Any], **parts: Any) -> None:
    """``--json``: one document, ``benchmark`` and ``machine`` first, then ``parts`` in order."""
    print(json.dumps({"benchmark": benchmark, "machine": facts, **parts}, indent=2))


def log(message: str) -> None:
    """Progress goes to stderr, so ``--json`` leaves stdout to the document alone."""
    print(message, file=sys.stderr, flush=True)


def tmux_env() -> dict[str, str]:
    """This environment without ``TMUX``/``TMUX_PANE``, so a tmux client never targets ours."""
    return {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}


# --------------------------------------------------------------------------- the run


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_signals() -> None:
    """SIGTERM/SIGHUP behave like Ctrl-C, so a script's clean-up runs for them too."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)


@contextlib.contextmanager
def ctrl_c_ignored() -> Iterator[None]:
    """Ctrl-C ignored inside: a second Ctrl-C must not cut the clean-up short."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_labels() -> dict[str, str]:
    """The labels of this run's own containers: ``luzia.bench=1`` and a fresh run id."""
    return {"luzia.bench": "1", "luzia.bench.run": secrets.token_hex(6)}


def scratch_home(prefix: str) -> tuple[Path, Path]:
    """A new temporary directory and the ``LUZIA_HOME`` in it (set, with no engine autostart)."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    home = scratch / "home"
    os.environ["LUZIA_HOME"] = str(home)
    os.environ["LUZIA_NO_AUTOSTART"] = "1"
    return scratch, home


def close_dispatcher(dispatcher: Any, engine: Any = None) -> None:
    """Drop every job of the store, then stop the in-process ``engine`` if any, and close.
    In that order: a job that still runs is killed through the engine."""
    with contextlib.suppress(Exception):
        dispatcher.clean(all=True)
    if engine is not None:
        engine.stop()
    dispatcher.close()


# --------------------------------------------------------------------------- Docker


def agent_image(client: Any, facts: dict[str, Any]) -> str:
    """The agent image, built offline if missing; it and Docker's version go into ``facts``."""
    from controllers.image import ensure_agent_image

    facts["docker"] = client.version().get("Version", "?")
    image = ensure_agent_image(client=client)
    facts["image"] = f"{image} ({client.images.get(image).short_id})"
    return image


def remove_labelled(
    labels: dict[str, str], client: Any = None, workers: int = 1, quiet: bool = False
) -> int:
    """Remove every container carrying one of ``labels``; return how many there were.

    ``workers`` removals at a time; with ``quiet`` a removal that fails is passed over,
    otherwise its error is raised (after the others, with more than one worker).
    """
    from controllers.container import remove_container
    from controllers.docker_engine import docker_client

    client = docker_client(client)
    found: dict[str, Any] = {}
    for key, value in labels.items():
        for container in client.containers.list(all=True, filters={"label": f"{key}={value}"}):
            found[container.id] = container

    def remove(container: Any) -> None:
        with contextlib.suppress(Exception) if quiet else contextlib.nullcontext():
            remove_container(container)

    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(remove, found.values()))
    else:
        for container in found.values():
            remove(container)
    return len(found)
