"""A job's processes: which they are, and ending every one of them.

``run.sh`` starts again with ``LUZIA_JOB=<job id>`` in its environment before it runs the
command, so every process of the job inherits the tag, even one that left the job's process
group or session (``setsid``, a double fork, ``nohup ... & disown``). ``run.sh`` also records
its process group (the pane's shell made it a group leader) and session in ``pgroup``.

A process belongs to the job when its environment holds the tag, or when it is in the job's
process group (a child that cleared its environment but stayed in the group; the pair of
group and session cannot be reused while any of them lives). Zombies have ended and do not
count.

The rule is written once, in bash, because it must run wherever the job runs: in ``run.sh``
when the command ends, inside a container (which has no Python), and on this host.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from luzia.errors import BackendError

TAG_VAR = "LUZIA_JOB"
"""The environment variable that marks a job's processes; its value is the job id."""

KILL_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL: time for an agent to save its state and exit."""

KILL_WAIT = 10
"""Seconds a process may take to die after SIGKILL (one in uninterruptible sleep) before we
say it survives."""

REAPER = r"""
# luzia's reaper: a job's processes hold LUZIA_JOB=<tag>, or sit in its recorded process group.
luzia_scan() {  # $1: tag, $2: pgroup file. Sets luzia_pids: the job's live processes (not ours)
    local p f stat joined group='' session='' tagged=' '
    local -a fields=() env=()
    read -r group session 2>/dev/null <"$2"
    luzia_pids=()
    for f in /proc/[0-9]*; do
        p=${f#/proc/}
        [[ -O $f && $p != "$$" && $p != "$PPID" ]] || continue
        read -r stat 2>/dev/null <"$f/stat" || continue
        stat=${stat##*) }  # after the command name, which may hold spaces and parentheses
        [[ $stat == [ZX]* ]] && continue
        fields=($stat)
        if [[ ${fields[2]} == "$group" && ${fields[3]} == "$session" ]]; then
            luzia_pids+=("$p")
            continue
        fi
        mapfile -d '' -t env 2>/dev/null <"$f/environ" || continue
        printf -v joined '\n%s' "${env[@]}"
        [[ $joined$'\n' == *$'\n'"LUZIA_JOB=$1"$'\n'* ]] && luzia_pids+=("$p")
    done
    return 0
}
luzia_now() {  # microseconds (bash 5), else whole seconds
    local t=${EPOCHREALTIME:-$SECONDS.000000}
    luzia_us=$(( 10#${t//[.,]/} ))
}
luzia_end() {  # $1: tag, $2: pgroup file, $3: grace (s). SIGTERM, SIGKILL after the grace;
    local p kill_at give_up    # fails if any process outlives SIGKILL
    local -A termed=()
    luzia_now
    kill_at=$(( luzia_us + $3 * 1000000 ))
    give_up=$(( kill_at + LUZIA_KILL_WAIT * 1000000 ))
    while luzia_scan "$1" "$2"; (( ${#luzia_pids[@]} )); do
        luzia_now
        if (( luzia_us >= give_up )); then
            echo "still running after SIGKILL: ${luzia_pids[*]}" >&2
            return 1
        elif (( luzia_us >= kill_at )); then
            kill -KILL "${luzia_pids[@]}" 2>/dev/null
        else
            for p in "${luzia_pids[@]}"; do
                [[ ${termed[$p]-} ]] && continue
                termed[$p]=1
                kill -TERM "$p" 2>/dev/null && kill -CONT "$p" 2>/dev/null
            done
        fi
        sleep 0.05
    done
    return 0
}
luzia_alive() {  # $1: tag, $2: pgroup file. Succeeds while any process of the job runs.
    luzia_scan "$1" "$2"
    (( ${#luzia_pids[@]} ))
}
"""

PGROUP_FILE = "pgroup"
"""In the job directory: ``run.sh``'s process group and session, when it leads its group."""


def reaper_setup(grace: float = KILL_GRACE) -> str:
    """The reaper's bash functions and settings, to paste into a script."""
    return f"{REAPER}LUZIA_KILL_WAIT={KILL_WAIT}\nluzia_grace={math.ceil(grace)}\n"


def reaper_argv(action: str, tag: str, pgroup: str, grace: float = KILL_GRACE) -> list[str]:
    """``bash -c`` running one reaper action: ``end`` (all processes gone) or ``alive``."""
    calls = {"end": 'luzia_end "$1" "$2" "$luzia_grace"', "alive": 'luzia_alive "$1" "$2"'}
    return ["bash", "-c", reaper_setup(grace) + calls[action], "luzia-reaper", tag, pgroup]


def process_ids(owner: int | None = None) -> Iterator[int]:
    """The processes on this host (``/proc``), only ``owner``'s when given; one that ends
    meanwhile is skipped."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        if owner is not None:
            try:
                if os.stat(f"/proc/{name}").st_uid != owner:
                    continue
            except OSError:
                continue
        yield int(name)


def job_pids(tag: str, pgroup: str = "") -> list[int]:
    """The live processes of the job on this host, by the rule ``luzia_scan`` applies in bash
    (tag in the environment, or the recorded group and session); Python reads ``/proc`` about
    ten times faster, and on a host with hundreds of processes that is most of a job's end."""
    try:
        group_session = Path(pgroup).read_text().split()[:2] if pgroup else []
    except OSError:
        group_session = []
    needle = f"{TAG_VAR}={tag}".encode()
    mine, parent = os.getpid(), os.getppid()
    found = []
    for pid in process_ids(owner=os.getuid() or None):  # root: every user's
        if pid in (mine, parent):
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
            if not fields or fields[0] in (b"Z", b"X"):
                continue
            if [field.decode() for field in fields[2:4]] == group_session:
                found.append(pid)
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(pid)
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def end_local(tag: str, pgroup: str = "", grace: float = KILL_GRACE) -> None:
    """SIGTERM every process of the job on this host, SIGKILL what outlives ``grace``; return
    once none is left. Raises ``BackendError`` when some cannot be ended."""
    kill_at = time.monotonic() + grace
    give_up = kill_at + KILL_WAIT
    termed: set[int] = set()
    while pids := job_pids(tag, pgroup):
        now = time.monotonic()
        if now >= give_up:
            raise BackendError(f"cannot end the processes of job {tag}: {pids} survive SIGKILL")
        for pid in pids:
            with contextlib.suppress(OSError):
                if now >= kill_at:
                    os.kill(pid, signal.SIGKILL)
                elif pid not in termed:
                    termed.add(pid)
                    os.kill(pid, signal.SIGTERM)
                    os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)


def alive_local(tag: str, pgroup: str = "") -> bool:
    """Whether any process of the job runs on this host."""
    return bool(job_pids(tag, pgroup))
