"""The job store: one SQLite database in WAL mode plus a directory per job, under ``LUZIA_HOME``.

Every process (CLI, API users, the engine) reads and writes it directly; it is the single source of
truth. WAL lets readers run while one process writes; every write transaction is ``BEGIN
IMMEDIATE``, so a writer waits for the lock (``busy_timeout``) instead of failing halfway with
"database is locked"; ``synchronous=NORMAL`` makes a commit an append to the WAL with no fsync,
which keeps dispatch under a millisecond (a power cut may lose the last commits, never corrupt).

Each thread gets its own connection (the engine uses threads); a forked child opens its own too and
never touches its parent's.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from luzia.errors import AmbiguousJobId, JobNotFound, StoreError, UsageError
from luzia.ids import new_job_id, prefix_range
from luzia.jobenv import is_secret
from luzia.jobs import (
    ACTIVE_STATES,
    BACKENDS,
    FINAL_STATES,
    Backend,
    FeedEvent,
    Job,
    JobEvent,
    JobState,
    Mode,
)
from luzia.paths import (
    LOG_FILE,
    TASK_FILE,
    db_path,
    jobs_root,
    make_private_dir,
    private_opener,
    write_private,
)

SCHEMA_VERSION = 5
"""1: the first. 2: ``jobs.env`` holds ``null`` for a secret variable's value (``luzia.jobenv``);
moving a version-1 store to 2 blanks the secret values it held for jobs past ``queued``.
3: ``jobs.usage``. 4: ``job_events.num``, one sequence over every job's events in commit order
(``JobStore.feed``); an older store's events are numbered by time. 5: ``job_events.usage``, what
the turn an event ends used."""

_EVENTS_TABLE = """CREATE TABLE IF NOT EXISTS {name} (
        num INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        at REAL NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        usage TEXT,
        UNIQUE (job_id, seq)
    )"""
"""Events; ``num`` (never reused: ``AUTOINCREMENT``) grows in commit order, since every write
holds the one write lock from its start (``BEGIN IMMEDIATE``)."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs (
        num INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        project TEXT,
        task TEXT NOT NULL,
        state TEXT NOT NULL,
        backend TEXT NOT NULL,
        mode TEXT NOT NULL,
        agent TEXT,
        workdir TEXT NOT NULL,
        image TEXT,
        env TEXT,
        container_id TEXT,
        tmux_target TEXT,
        exit_code INTEGER,
        message TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        updated_at REAL NOT NULL,
        last_seq INTEGER NOT NULL,
        usage TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state)",
    "CREATE INDEX IF NOT EXISTS jobs_by_project ON jobs (project)",
    _EVENTS_TABLE.format(name="job_events"),
)

_COLUMNS = (
    "id, project, task, state, backend, mode, agent, workdir, image, env, container_id, "
    "tmux_target, exit_code, message, created_at, started_at, finished_at, updated_at, usage"
)
_SELECT_BY_ID = f"SELECT {_COLUMNS} FROM jobs WHERE id = ?"
_INSERT_JOB = (
    f"INSERT OR IGNORE INTO jobs ({_COLUMNS}, last_seq) "
    "VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?, NULL, NULL, ?, NULL, 1)"
)
_INSERT_EVENT = (
    "INSERT INTO job_events (job_id, seq, at, state, reason, usage) VALUES (?, ?, ?, ?, ?, ?)"
)
_FINAL_SQL = ", ".join(f"'{state}'" for state in sorted(FINAL_STATES))

FIELDS = frozenset(
    {"backend", "image", "container_id", "tmux_target", "exit_code", "message", "usage"}
    | {"started_at", "finished_at"}
)
"""Job fields that ``transition`` and ``update`` may set; the rest are fixed at dispatch."""

_STATES = {state.value: state for state in JobState}
_ID_ATTEMPTS = 8


class _IdTaken(Exception):
    """A freshly drawn id is already in the store; draw another."""


class JobStore:
    """Jobs and their events in ``<home>/luzia.db``, job files in ``<home>/jobs/<id>/``.

    >>> import tempfile
    >>> store = JobStore(tempfile.mkdtemp())
    >>> job = store.create_job("echo hi", project=None, workdir=Path("/tmp"))
    >>> store.transition(job.id, JobState.RUNNING, "started").state
    <JobState.RUNNING: 'running'>
    >>> [event.state.value for event in store.events(job.id)]
    ['queued', 'running']
    """

    def __init__(self, home: Path | str, *, busy_timeout: float = 10.0) -> None:
        self.home = Path(home)
        self.jobs_root = jobs_root(self.home)
        self.busy_timeout = busy_timeout
        self._db = db_path(self.home)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[sqlite3.Connection, int]] = []
        try:
            make_private_dir(self.home, parents=True)
            make_private_dir(self.jobs_root)
            # SQLite makes luzia.db-wal and -shm with the mode of luzia.db: 0600 all three.
            # Only when missing: closing any descriptor of the file drops every POSIX lock this
            # process holds on it, so another store's connections here would look gone to other
            # processes, whose last close then deletes the WAL under them ("disk I/O error").
            if not self._db.exists():
                open(self._db, "ab", opener=private_opener).close()
        except FileExistsError as exc:
            raise self._unwritable("a file, not a directory, is in the way") from exc
        except OSError as exc:
            raise self._unwritable(exc.strerror or str(exc)) from exc
        self._connection()

    # -- connections and transactions

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection; a new one after a fork (SQLite forbids sharing across fork)."""
        local = self._local
        con: sqlite3.Connection | None = getattr(local, "con", None)
        if con is None or local.pid != os.getpid():
            con = self._connect()
            local.con, local.pid, local.writes = con, os.getpid(), 0
        return con

    def _connect(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(
                self._db,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
            )
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        try:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
            self._ensure_schema(con)
        except BaseException as exc:
            con.close()
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc) from exc
            raise
        with self._lock:
            self._connections.append((con, os.getpid()))
        return con

    def _ensure_schema(self, con: sqlite3.Connection) -> None:
        (version,) = con.execute("PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the job store {self._db} has schema version {version}, newer than this luzia "
                f"knows ({SCHEMA_VERSION}); upgrade luzia"
            )
        con.execute("BEGIN IMMEDIATE")
        try:
            found = con.execute("PRAGMA user_version").fetchone()[0]
            if found == 0:
                for statement in _SCHEMA:
                    con.execute(statement)
            if found == 1:
                _forget_secret_values(con)
            columns = {row[1] for row in con.execute("PRAGMA table_info(jobs)")}
            if "usage" not in columns:  # version 3: what an agent reported it used
                con.execute("ALTER TABLE jobs ADD COLUMN usage TEXT")
            event_columns = {row[1] for row in con.execute("PRAGMA table_info(job_events)")}
            if "num" not in event_columns:  # version 4: one order over all jobs' events
                _number_events(con)  # the table made anew has every column
            elif "usage" not in event_columns:  # version 5: a turn's usage with its end
                con.execute("ALTER TABLE job_events ADD COLUMN usage TEXT")
            if found < SCHEMA_VERSION:
                con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the write lock at once so it cannot fail midway."""
        con = self._connection()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        finally:
            self._local.writes += 1

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[Any]:
        try:
            return self._connection().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def _unwritable(self, reason: str) -> StoreError:
        return StoreError(
            f"cannot write the job store in {self.home} ({reason}); set LUZIA_HOME to a writable "
            "directory or fix its permissions"
        )

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StoreError(
                f"the job store {self._db} stayed locked for {self.busy_timeout:g} s; another "
                "process holds a long write: try again"
            )
        if "readonly" in text or "unable to open" in text or "disk I/O" in text:
            return self._unwritable(text)
        return StoreError(f"job store {self._db}: {text}")

    def close(self) -> None:
        """Close every connection this store opened in this process."""
        with self._lock:
            mine = [con for con, pid in self._connections if pid == os.getpid()]
            self._connections = [(c, p) for c, p in self._connections if p != os.getpid()]
        for con in mine:
            con.close()
        self._local = threading.local()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- rows to objects

    def _job(self, row: tuple[Any, ...]) -> Job:
        (job_id, project, task, state, backend, mode, agent, workdir, image, env) = row[:10]
        directory = self.jobs_root / job_id
        return Job(
            id=job_id,
            project=project,
            task=task,
            state=_STATES[state],
            backend=backend,
            mode=mode,
            agent=agent,
            workdir=Path(workdir),
            image=image,
            container_id=row[10],
            tmux_target=row[11],
            exit_code=row[12],
            message=row[13],
            created_at=row[14],
            started_at=row[15],
            finished_at=row[16],
            updated_at=row[17],
            log_path=directory / LOG_FILE,
            job_dir=directory,
            env=json.loads(env) if env else {},
            usage=_usage(row[18]),
        )

    # -- the API

    def create_job(
        self,
        task: str,
        *,
        project: str | None,
        workdir: Path,
        backend: Backend = "auto",
        mode: Mode = "command",
        agent: str | None = None,
        image: str | None = None,
        env: Mapping[str, str | None] | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> Job:
        """Record a new ``queued`` job, its first event and its directory with ``task.txt``
        (and ``files``, by name: written before the row, so the engine never sees it without).
        Every file is created mode 0600: ``files`` may hold secrets (``luzia.jobenv``), and
        ``env`` must not (a secret variable's value is ``None`` there).

        The directory is written first and removed again if the row cannot be inserted, so a
        failure leaves nothing behind; a crash in between leaves at most an empty-handed directory
        that ``luzia clean`` can sweep, never a row without its files.
        """
        now = time.time()
        env_json = json.dumps(dict(env)) if env else None
        data = task.encode("utf-8")
        for _ in range(_ID_ATTEMPTS):
            job_id = new_job_id()
            directory = self.jobs_root / job_id
            try:
                directory.mkdir(mode=0o700)
            except FileExistsError:
                continue
            except OSError as exc:
                raise self._unwritable(exc.strerror or str(exc)) from exc
            try:
                write_private(directory / TASK_FILE, data)
                for name, content in (files or {}).items():
                    write_private(directory / name, content)
                with self._write() as con:
                    row = (job_id, project, task, backend, mode, agent, str(workdir), image)
                    values = (*row, env_json, "dispatched", now, now)
                    if con.execute(_INSERT_JOB, values).rowcount == 0:
                        raise _IdTaken
                    con.execute(_INSERT_EVENT, (job_id, 1, now, "queued", "dispatched", None))
            except _IdTaken:
                shutil.rmtree(directory, ignore_errors=True)
                continue
            except OSError as exc:
                shutil.rmtree(directory, ignore_errors=True)
                raise self._unwritable(exc.strerror or str(exc)) from exc
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            return Job(
                id=job_id,
                project=project,
                task=task,
                state=JobState.QUEUED,
                backend=backend,
                mode=mode,
                agent=agent,
                workdir=workdir,
                image=image,
                container_id=None,
                tmux_target=None,
                exit_code=None,
                message="dispatched",
                created_at=now,
                started_at=None,
                finished_at=None,
                updated_at=now,
                log_path=directory / LOG_FILE,
                job_dir=directory,
                env=dict(env) if env else {},
            )
        raise StoreError(f"no free job id in {self.jobs_root} after {_ID_ATTEMPTS} tries")

    def get(self, job_id: str) -> Job:
        """The job with exactly this id."""
        rows = self._read(_SELECT_BY_ID, (job_id,))
        if not rows:
            raise JobNotFound(job_id)
        return self._job(rows[0])

    def resolve(self, prefix: str) -> Job:
        """The one job whose id is, or starts with, ``prefix`` (any case)."""
        rows = self._read(_SELECT_BY_ID, (prefix,))
        if rows:
            return self._job(rows[0])
        bounds = prefix_range(prefix)
        if bounds is None:
            raise JobNotFound(prefix)
        rows = self._read(
            f"SELECT {_COLUMNS} FROM jobs WHERE id >= ? AND id < ? ORDER BY id LIMIT 11", bounds
        )
        if not rows:
            raise JobNotFound(prefix)
        if len(rows) > 1:
            raise AmbiguousJobId(prefix, [row[0] for row in rows])
        return self._job(rows[0])

    def list(
        self,
        project: str | None = None,
        state: str | Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs newest first, maybe of one project, in one or several states, at most ``limit``."""
        where: list[str] = []
        params: list[object] = []
        if project is not None:
            where.append("project = ?")
            params.append(project)
        if state is not None:
            states = [_state(s) for s in ([state] if isinstance(state, str) else state)]
            where.append(f"state IN ({', '.join('?' * len(states))})")
            params.extend(states)
        sql = f"SELECT {_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY num DESC"
        if limit is not None:
            if limit < 0:
                raise UsageError(f"limit must be 0 or more, not {limit}")
            sql += " LIMIT ?"
            params.append(limit)
        return [self._job(row) for row in self._read(sql, params)]

    def transition(self, job_id: str, state: JobState | str, reason: str, **fields: object) -> Job:
        """Move a job to ``state`` with ``fields`` and append an event, in one transaction.

        ``message`` defaults to ``reason``; entering an active state sets ``started_at`` and
        entering a final one sets ``finished_at`` unless given or already set. A job in a final
        state never leaves it: the call then changes nothing and returns the job as it is (the first
        final state wins, so an engine racing a kill against a natural exit needs no lock; compare
        the returned state with the one asked for). The same state again is allowed: it records a
        progress note.
        """
        new_state = _state(state)
        _check_fields(fields)
        now = time.time()
        fields.setdefault("message", reason)
        if new_state in ACTIVE_STATES and "started_at" not in fields:
            fields["started_at"] = _Keep(now)
        if new_state in FINAL_STATES and "finished_at" not in fields:
            fields["finished_at"] = _Keep(now)
        if "usage" in fields:
            fields["usage"] = json.dumps(fields["usage"]) if fields["usage"] else None
        assignments, params = _assignments(fields)
        sql = (
            f"UPDATE jobs SET state = ?, updated_at = ?, last_seq = last_seq + 1, {assignments} "
            f"WHERE id = ? AND state NOT IN ({_FINAL_SQL}) RETURNING {_COLUMNS}, last_seq"
        )
        with self._write() as con:
            rows = con.execute(sql, (new_state.value, now, *params, job_id)).fetchall()
            if not rows:
                current = con.execute(_SELECT_BY_ID, (job_id,)).fetchall()
                if not current:
                    raise JobNotFound(job_id)
                return self._job(current[0])
            con.execute(_INSERT_EVENT, (job_id, rows[0][-1], now, new_state.value, reason, None))
        return self._job(rows[0])

    def add_turn_usage(self, job_id: str, usage: Mapping[str, float]) -> Job:
        """What a turn used: given to the job's latest event (the turn's end) and added to the
        job's totals, in one transaction."""
        with self._write() as con:
            rows = con.execute(
                "SELECT usage, last_seq FROM jobs WHERE id = ?", (job_id,)
            ).fetchall()
            if not rows:
                raise JobNotFound(job_id)
            totals = _usage(rows[0][0])
            for key, value in usage.items():
                totals[key] = totals.get(key, 0.0) + value
            con.execute("UPDATE jobs SET usage = ? WHERE id = ?", (json.dumps(totals), job_id))
            con.execute(
                "UPDATE job_events SET usage = ? WHERE job_id = ? AND seq = ?",
                (json.dumps(dict(usage)), job_id, rows[0][1]),
            )
        return self.get(job_id)

    def kill_if_queued(self, job_id: str) -> Job:
        """Mark the job ``killed`` if, and only if, it is still ``queued``; return it as it is.

        One statement, so a job an engine claims at the same moment is either never started or
        left ``starting`` for the engine to kill: a queued job has nothing to stop.
        """
        now = time.time()
        reason = "killed before it started"
        sql = (
            "UPDATE jobs SET state = 'killed', updated_at = ?, finished_at = ?, message = ?, "
            "last_seq = last_seq + 1 WHERE id = ? AND state = 'queued' RETURNING last_seq"
        )
        with self._write() as con:
            rows = con.execute(sql, (now, now, reason, job_id)).fetchall()
            if rows:
                con.execute(_INSERT_EVENT, (job_id, rows[0][0], now, "killed", reason, None))
        return self.get(job_id)

    def update(self, job_id: str, **fields: object) -> Job:
        """Set ``fields`` without a state change or an event (e.g. the container id once known)."""
        _check_fields(fields)
        if not fields:
            return self.get(job_id)
        assignments, params = _assignments(fields)
        sql = f"UPDATE jobs SET updated_at = ?, {assignments} WHERE id = ? RETURNING {_COLUMNS}"
        with self._write() as con:
            rows = con.execute(sql, (time.time(), *params, job_id)).fetchall()
        if not rows:
            raise JobNotFound(job_id)
        return self._job(rows[0])

    def events(self, job_id: str, after_seq: int = 0) -> builtins.list[JobEvent]:
        """The job's state changes after ``after_seq``, oldest first."""
        rows = self._read(
            "SELECT seq, at, state, reason, usage FROM job_events WHERE job_id = ? AND seq > ? "
            "ORDER BY seq",
            (job_id, after_seq),
        )
        return [
            JobEvent(job_id, seq, at, _STATES[state], why, _usage(usage))
            for seq, at, state, why, usage in rows
        ]

    def last_event_num(self) -> int:
        """The ``num`` of the newest event recorded (0 for none): where a feed starts from now."""
        rows = self._read("SELECT max(num) FROM job_events")
        return int(rows[0][0] or 0)

    def feed(
        self,
        after: int,
        upto: int,
        *,
        job_ids: Sequence[str] | None = None,
        project: str | None = None,
        since: float | None = None,
        limit: int = 500,
    ) -> builtins.list[FeedEvent]:
        """Every job's events with ``after < num <= upto`` in the order they were recorded, at
        most ``limit``: of ``job_ids`` only, or of one ``project``, or recorded at ``since`` or
        later.

        Every event up to ``last_event_num()`` is committed when that returns (writes take the
        one write lock in turn), so reading from there on never misses one.
        """
        where = ["e.num > ?", "e.num <= ?"]
        params: builtins.list[object] = [after, upto]
        if job_ids is not None:
            where.append(f"e.job_id IN ({', '.join('?' * len(job_ids))})")
            params.extend(job_ids)
        if project is not None:
            where.append("j.project = ?")
            params.append(project)
        if since is not None:
            where.append("e.at >= ?")
            params.append(since)
        rows = self._read(
            "SELECT e.num, e.job_id, e.seq, e.at, e.state, e.reason, e.usage, j.project "
            "FROM job_events e JOIN jobs j ON j.id = e.job_id "
            f"WHERE {' AND '.join(where)} ORDER BY e.num LIMIT ?",
            (*params, limit),
        )
        return [
            FeedEvent(job_id, seq, at, _STATES[state], why, _usage(usage), project=proj, num=num)
            for num, job_id, seq, at, state, why, usage, proj in rows
        ]

    def delete(self, job_id: str) -> None:
        """Remove the job's row, its events and its directory, whatever its state.

        Stopping a live job first is the caller's business (the engine's ``kill``).
        """
        with self._write() as con:
            con.execute("DELETE FROM job_events WHERE job_id = ?", (job_id,))
            if con.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 0:
                raise JobNotFound(job_id)
        directory = self.jobs_root / job_id
        try:
            shutil.rmtree(directory)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(
                f"job {job_id} is gone from the store, but {directory} could not be deleted "
                f"({exc.strerror}); delete it by hand"
            ) from exc

    def change_counter(self) -> int:
        """A number that differs whenever any process committed a change since the last call.

        Compare for inequality only. ``PRAGMA data_version`` sees other connections' commits
        without reading a table; this thread's own commits are counted locally, since
        ``data_version`` ignores them.
        """
        con = self._connection()
        try:
            (version,) = con.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        return int(version) + int(self._local.writes)


def _usage(column: str | None) -> dict[str, float]:
    """A usage column as written (JSON, or ``NULL`` for none)."""
    return json.loads(column) if column else {}


def _number_events(con: sqlite3.Connection) -> None:
    """Version 3 -> 4: rebuild ``job_events`` with ``num``, numbering the old events by time."""
    con.execute(_EVENTS_TABLE.format(name="job_events_numbered"))
    con.execute(
        "INSERT INTO job_events_numbered (job_id, seq, at, state, reason) "
        "SELECT job_id, seq, at, state, reason FROM job_events ORDER BY at, job_id, seq"
    )
    con.execute("DROP TABLE job_events")
    con.execute("ALTER TABLE job_events_numbered RENAME TO job_events")


def _forget_secret_values(con: sqlite3.Connection) -> None:
    """Version 1 -> 2: blank the secret values (default patterns) that a store written before
    ``luzia.jobenv`` kept in plain text, overwriting the freed bytes. A queued job keeps its
    values: it has no env file, its start writes one from them (``write_env_file``)."""
    con.execute("PRAGMA secure_delete = ON")
    rows = con.execute("SELECT id, env FROM jobs WHERE env IS NOT NULL AND state != 'queued'")
    for job_id, env in rows.fetchall():
        values = json.loads(env)
        blanked = {name: None if is_secret(name) else value for name, value in values.items()}
        if blanked != values:
            con.execute("UPDATE jobs SET env = ? WHERE id = ?", (json.dumps(blanked), job_id))


class _Keep:
    """A value to set only where the column is still NULL (``COALESCE``)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


def _assignments(fields: Mapping[str, object]) -> tuple[str, list[object]]:
    parts: list[str] = []
    params: list[object] = []
    for name in sorted(fields):
        value = fields[name]
        if isinstance(value, _Keep):
            parts.append(f"{name} = COALESCE({name}, ?)")
            params.append(value.value)
        else:
            parts.append(f"{name} = ?")
            params.append(value)
    return ", ".join(parts), params


def _check_fields(fields: Mapping[str, object]) -> None:
    unknown = set(fields) - FIELDS
    if unknown:
        raise TypeError(f"unknown job field(s): {', '.join(sorted(unknown))}")
    backend = fields.get("backend")
    if backend is not None and backend not in BACKENDS:
        raise UsageError(f"backend must be one of {', '.join(sorted(BACKENDS))}, not {backend!r}")


def _state(value: str) -> JobState:
    try:
        return _STATES[value]
    except KeyError:
        raise UsageError(f"unknown job state {value!r} (states: {', '.join(_STATES)})") from None
