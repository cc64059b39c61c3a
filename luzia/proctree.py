"""A job's processes: which they are, and ending every one of them.

``run.sh`` exports ``LUZIA_JOB=<job id>`` before it runs the command, so every process the job
starts inherits the tag, even one that left the job's process group or session (``setsid``, a
double fork, ``nohup ... & disown``). A process belongs to the job when its environment holds the
tag, or when it is in a process group led by one that does (a child that cleared its
environment but stayed in the group). Zombies have ended and do not count.

The rule is written once, in bash, because it must run wherever the job runs: in ``run.sh``
when the command ends, inside a container (which has no Python), and on this host.
"""

from __future__ import annotations

import math
import subprocess

from luzia.errors import BackendError

TAG_VAR = "LUZIA_JOB"
"""The environment variable that marks a job's processes; its value is the job id."""

KILL_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL: time for an agent to save its state and exit."""

KILL_WAIT = 10
"""Seconds a process may take to die after SIGKILL (one in uninterruptible sleep) before we
say it survives."""

REAPER = r"""
# luzia's reaper: a job's processes hold LUZIA_JOB=<tag>, or sit in a group led by one that does.
luzia_scan() {  # $1: tag. Sets luzia_pids: the job's live processes but this shell and its parent
    local p f stat joined tagged=' '
    local -a fields=() env=()
    local -A group=()
    luzia_pids=()
    for f in /proc/[0-9]*; do
        p=${f#/proc/}
        read -r stat 2>/dev/null <"$f/stat" || continue
        stat=${stat##*) }  # after the command name, which may hold spaces and parentheses
        [[ $stat == [ZX]* ]] && continue
        fields=($stat)
        group[$p]=${fields[2]}
        mapfile -d '' -t env 2>/dev/null <"$f/environ" || continue
        printf -v joined '\n%s' "${env[@]}"
        [[ $joined$'\n' == *$'\n'"LUZIA_JOB=$1"$'\n'* ]] && tagged+="$p "
    done
    for p in "${!group[@]}"; do
        [[ $p == "$$" || $p == "$PPID" ]] && continue
        [[ $tagged == *" $p "* || $tagged == *" ${group[$p]} "* ]] && luzia_pids+=("$p")
    done
    return 0
}
luzia_now() {  # microseconds (bash 5), else whole seconds
    local t=${EPOCHREALTIME:-$SECONDS.000000}
    luzia_us=$(( 10#${t//[.,]/} ))
}
luzia_end() {  # $1: tag, $2: grace (s). SIGTERM, SIGKILL after the grace; 1 if any outlives it.
    local p kill_at give_up
    local -A termed=()
    luzia_now
    kill_at=$(( luzia_us + $2 * 1000000 ))
    give_up=$(( kill_at + LUZIA_KILL_WAIT * 1000000 ))
    while luzia_scan "$1"; (( ${#luzia_pids[@]} )); do
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
luzia_alive() {  # $1: tag. Succeeds while any process of the job runs.
    luzia_scan "$1"
    (( ${#luzia_pids[@]} ))
}
"""


def reaper_setup(grace: float = KILL_GRACE) -> str:
    """The reaper's bash functions and settings, to paste into a script."""
    return f"{REAPER}LUZIA_KILL_WAIT={KILL_WAIT}\nluzia_grace={math.ceil(grace)}\n"


def reaper_argv(action: str, tag: str, grace: float = KILL_GRACE) -> list[str]:
    """``bash -c`` running one reaper action: ``end`` (all processes gone) or ``alive``."""
    calls = {"end": 'luzia_end "$1" "$luzia_grace"', "alive": 'luzia_alive "$1"'}
    return ["bash", "-c", reaper_setup(grace) + calls[action], "luzia-reaper", tag]


def end_local(tag: str, grace: float = KILL_GRACE) -> None:
    """SIGTERM every process of the job on this host, SIGKILL what outlives ``grace``; return
    once none is left. Raises ``BackendError`` when some cannot be ended."""
    timeout = math.ceil(grace) + KILL_WAIT + 30
    try:
        done = subprocess.run(
            reaper_argv("end", tag, grace), capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendError(f"cannot end the processes of job {tag}: {exc}") from exc
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise BackendError(f"cannot end the processes of job {tag}: {why[0]}")


def alive_local(tag: str) -> bool:
    """Whether any process of the job runs on this host."""
    try:
        done = subprocess.run(reaper_argv("alive", tag), capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendError(f"cannot look for the processes of job {tag}: {exc}") from exc
    return done.returncode == 0
