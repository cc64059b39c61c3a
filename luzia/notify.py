"""Being told: a command of the user's run when a job needs a person or ends.

``on_state = "..."`` (in ``[defaults]`` or a project) is run by ``bash -c`` in the engine when a
job's turn ends (``idle``), when it asks a person something (``waiting``) and when it ends
(``completed``, ``failed``, ``killed``): notify-send, a terminal bell, a chat or phone push.
What it needs is in its environment, never on its command line: ``LUZIA_JOB_ID``,
``LUZIA_PROJECT``, ``LUZIA_STATE``, ``LUZIA_MESSAGE``, ``LUZIA_QUESTION`` (when waiting),
``LUZIA_EXIT_CODE`` (when ended). It runs detached from the engine, its output is dropped, and
one that has not ended after ``NOTIFY_TIMEOUT`` seconds is killed: a slow or broken command
never holds up a job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading

from luzia.jobs import Job, JobState

log = logging.getLogger("luzia.notify")

NOTIFY_TIMEOUT = 60.0

TOLD = frozenset(
    {JobState.IDLE, JobState.WAITING, JobState.COMPLETED, JobState.FAILED, JobState.KILLED}
)
"""The states a person is told of: a turn ended or a question, and the end."""


def notify_env(job: Job) -> dict[str, str]:
    """What the command is told, over the engine's own environment."""
    message = job.message or ""
    env = {
        "LUZIA_JOB_ID": job.id,
        "LUZIA_PROJECT": job.project or "",
        "LUZIA_STATE": str(job.state),
        "LUZIA_MESSAGE": message,
    }
    if job.state is JobState.WAITING:
        env["LUZIA_QUESTION"] = message
    if job.exit_code is not None:
        env["LUZIA_EXIT_CODE"] = str(job.exit_code)
    return env


def run_on_state(command: str, job: Job) -> None:
    """Start ``command`` for ``job``'s new state, unless it is not one a person is told of."""
    if job.state not in TOLD:
        return
    try:
        process = subprocess.Popen(
            ["bash", "-c", command],
            env={**os.environ, **notify_env(job)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        log.warning("job %s: cannot run on_state: %s", job.id, exc)
        return
    threading.Thread(target=_reap, args=(process, job.id), daemon=True).start()


def _reap(process: subprocess.Popen[bytes], job_id: str) -> None:
    try:
        code = process.wait(NOTIFY_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.warning("job %s: on_state ran over %g s and was killed", job_id, NOTIFY_TIMEOUT)
        return
    if code != 0:
        log.warning("job %s: on_state exited with code %d", job_id, code)
