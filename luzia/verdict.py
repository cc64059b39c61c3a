"""Whether a job has ended, and how: decided in one place, from the process, never from output.

Anything a job prints can look like luzia's own markers (an agent that ``cat``s another job's
log prints them by accident), so a marker in the output is only a reason to come and look.
What decides is the evidence here: the status the job's wrapper (``run.sh``) recorded, which it
writes only after the command and everything it left behind have ended; and whether any
process of the job still runs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Evidence:
    """What was found, gathered in this order: ``alive`` first, then ``exit_code``.

    ``alive``: a process of the job still runs (``None``: could not tell, e.g. Docker is down).
    ``exit_code``: the status ``run.sh`` recorded, ``None`` while it has not.
    ``stopped``: its process is stopped by a signal (Ctrl-Z): paused, not ended.
    ``gone``: the pane or its container is gone, and why, for a person.
    """

    alive: bool | None
    exit_code: int | None
    stopped: bool = False
    gone: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """``ended`` with ``exit_code`` (``None``: unknown) and ``reason``; else maybe ``paused``."""

    ended: bool
    exit_code: int | None = None
    reason: str = ""
    paused: bool = False


def decide(evidence: Evidence) -> Verdict:
    """The one rule for a job's end.

    A recorded status is final (the wrapper writes it last). Without one, a job with a live
    process runs on, whatever its output said; one whose processes are all gone ended without
    a status (killed by a signal, its container removed), and the reason says so.
    """
    if evidence.exit_code is not None:
        code = evidence.exit_code
        return Verdict(True, code, f"exited with code {code}")
    if evidence.alive is None or evidence.alive:
        return Verdict(False, paused=bool(evidence.alive and evidence.stopped))
    reason = evidence.gone or "its command ended without recording an exit status"
    return Verdict(True, None, reason)
