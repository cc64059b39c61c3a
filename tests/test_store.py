"""The job store on real SQLite files, with real threads and processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from luzia.config import Config
from luzia.dispatcher import ResponsiveDispatcher
from luzia.errors import AmbiguousJobId, JobNotFound, StoreError, UsageError
from luzia.ids import ALPHABET, ID_LENGTH, new_job_id
from luzia.jobs import ACTIVE_STATES, FINAL_STATES, Job, JobState
from luzia.paths import TASK_FILE, db_path
from luzia.store import SCHEMA_VERSION, JobStore

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with JobStore(tmp_path / "home") as opened:
        yield opened


def new(store: JobStore, task: str = "echo hi", project: str | None = "p") -> Job:
    return store.create_job(task, project=project, workdir=Path("/tmp"))


def test_create_records_row_event_and_files(store: JobStore) -> None:
    job = new(store, "echo 'héllo'\nsecond line")
    assert len(job.id) == ID_LENGTH and set(job.id) <= set(ALPHABET)
    assert job.state is JobState.QUEUED
    assert job.job_dir == store.home / "jobs" / job.id
    assert (job.job_dir / TASK_FILE).read_text() == "echo 'héllo'\nsecond line"
    assert job.log_path == job.job_dir / "output.log"
    assert store.get(job.id) == job
    [event] = store.events(job.id)
    assert (event.seq, event.state, event.reason) == (1, JobState.QUEUED, "dispatched")


def test_transitions_append_events_and_set_times(store: JobStore) -> None:
    job = new(store)
    assert job.started_at is None and job.duration is None
    starting = store.transition(job.id, JobState.STARTING, "container starting")
    assert starting.started_at is not None and starting.message == "container starting"
    running = store.transition(job.id, "running", "pane up", container_id="c0ffee")
    assert running.started_at == starting.started_at
    assert running.container_id == "c0ffee"
    done = store.transition(job.id, JobState.FAILED, "exited with 3", exit_code=3)
    assert done.finished_at is not None and done.exit_code == 3
    assert done.duration == pytest.approx(done.finished_at - starting.started_at)
    events = store.events(job.id)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert [e.state for e in events] == ["queued", "starting", "running", "failed"]
    assert events[-1].reason == "exited with 3"
    assert [e.seq for e in store.events(job.id, after_seq=2)] == [3, 4]


def test_final_state_is_never_left(store: JobStore) -> None:
    job = new(store)
    killed = store.transition(job.id, JobState.KILLED, "killed by user")
    again = store.transition(job.id, JobState.COMPLETED, "exited 0", exit_code=0)
    assert again == killed
    assert again.exit_code is None
    assert [e.state for e in store.events(job.id)] == ["queued", "killed"]


def test_same_state_records_a_progress_note(store: JobStore) -> None:
    job = new(store)
    store.transition(job.id, JobState.RUNNING, "started")
    noted = store.transition(job.id, JobState.RUNNING, "step 2 of 3")
    assert noted.message == "step 2 of 3"
    assert [e.reason for e in store.events(job.id)] == ["dispatched", "started", "step 2 of 3"]


def test_update_changes_fields_without_an_event(store: JobStore) -> None:
    job = new(store)
    updated = store.update(job.id, tmux_target="/tmp/s:job", image="img:2")
    assert (updated.tmux_target, updated.image, updated.state) == ("/tmp/s:job", "img:2", "queued")
    assert updated.updated_at >= job.updated_at
    assert len(store.events(job.id)) == 1
    with pytest.raises(TypeError, match="task"):
        store.update(job.id, task="rewritten")
    with pytest.raises(UsageError, match="backend"):
        store.transition(job.id, JobState.STARTING, "x", backend="podman")
    with pytest.raises(JobNotFound):
        store.update("zzzzzzzz", message="x")
    with pytest.raises(JobNotFound):
        store.transition("zzzzzzzz", JobState.RUNNING, "x")


def test_resolve_prefixes(store: JobStore) -> None:
    jobs = [new(store) for _ in range(len(ALPHABET) + 1)]
    for job in jobs[:3]:
        assert store.resolve(job.id) == job
        assert store.resolve(f" {job.id.upper()} ") == job
    by_first: dict[str, list[str]] = {}
    for job in jobs:
        by_first.setdefault(job.id[0], []).append(job.id)
    shared = next(ids for ids in by_first.values() if len(ids) > 1)
    with pytest.raises(AmbiguousJobId) as caught:
        store.resolve(shared[0][0])
    assert set(caught.value.candidates) == set(shared)
    assert all(job_id in str(caught.value) for job_id in shared)
    unique = next(job for job in jobs if len(by_first[job.id[0]]) == 1)
    assert store.resolve(unique.id[0]) == unique
    for missing in ("", "!!", "i", unique.id + "0"):
        with pytest.raises(JobNotFound, match="no job matches"):
            store.resolve(missing)


def test_list_filters_newest_first(store: JobStore) -> None:
    a1, b1, a2, a3 = (new(store, project=p) for p in ("a", "b", "a", "a"))
    store.transition(a2.id, JobState.RUNNING, "started")
    store.transition(a3.id, JobState.COMPLETED, "exited 0", exit_code=0)
    assert [j.id for j in store.list()] == [a3.id, a2.id, b1.id, a1.id]
    assert [j.id for j in store.list(project="a")] == [a3.id, a2.id, a1.id]
    assert [j.id for j in store.list(state="queued")] == [b1.id, a1.id]
    assert [j.id for j in store.list(project="a", state=ACTIVE_STATES)] == [a2.id]
    assert [j.id for j in store.list(state=FINAL_STATES | {JobState.QUEUED}, limit=2)] == [
        a3.id,
        b1.id,
    ]
    assert store.list(state=[]) == []
    assert store.list(limit=0) == []
    with pytest.raises(UsageError, match="unknown job state 'done'"):
        store.list(state="done")
    with pytest.raises(UsageError):
        store.list(limit=-1)


def test_delete_removes_row_events_and_dir(store: JobStore) -> None:
    keep, gone = new(store), new(store)
    store.transition(gone.id, JobState.RUNNING, "started")
    store.delete(gone.id)
    assert not gone.job_dir.exists()
    with pytest.raises(JobNotFound):
        store.get(gone.id)
    assert store.events(gone.id) == []
    assert store.list() == [keep]
    with pytest.raises(JobNotFound):
        store.delete(gone.id)


def test_failed_insert_leaves_no_directory(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = JobStore(home, busy_timeout=0.05)
    blocker = sqlite3.connect(db_path(home), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="stayed locked"):
            new(store)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert list((home / "jobs").iterdir()) == []
    assert store.list() == []
    assert new(store).state is JobState.QUEUED


@pytest.mark.parametrize("inside", ["afile/home", "afile"])
def test_unwritable_home_is_one_line_store_error(tmp_path: Path, inside: str) -> None:
    (tmp_path / "afile").write_text("not a directory")
    with pytest.raises(StoreError) as caught:
        JobStore(tmp_path / inside)
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / inside) in message and "LUZIA_HOME" in message


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    JobStore(tmp_path).close()
    con = sqlite3.connect(db_path(tmp_path))
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(StoreError, match=r"schema version 99.*upgrade luzia"):
        JobStore(tmp_path)


def test_a_version_2_store_gains_usage(tmp_path: Path) -> None:
    with JobStore(tmp_path) as store:
        old = store.create_job("t", project=None, workdir=tmp_path)
    con = sqlite3.connect(db_path(tmp_path))
    con.execute("ALTER TABLE jobs DROP COLUMN usage")
    con.execute("PRAGMA user_version = 2")
    con.commit()
    con.close()
    with JobStore(tmp_path) as store:
        assert store.get(old.id).usage == {}
        usage = {"input_tokens": 120, "output_tokens": 30, "cost_usd": 0.0042}
        store.transition(old.id, JobState.COMPLETED, "done", exit_code=0, usage=usage)
        assert store.get(old.id).usage == usage
        assert store.get(old.id).to_dict()["usage"] == usage


def test_store_settings(store: JobStore) -> None:
    con = sqlite3.connect(db_path(store.home))
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    con.close()


def transition_in_child(home: str, job_id: str) -> None:
    with JobStore(home) as store:
        store.transition(job_id, JobState.RUNNING, "from another process")


def test_change_counter_sees_own_and_other_process_writes(store: JobStore) -> None:
    before = store.change_counter()
    assert store.change_counter() == before
    job = new(store)
    after_own = store.change_counter()
    assert after_own != before
    child = SPAWN.Process(target=transition_in_child, args=(str(store.home), job.id))
    child.start()
    child.join()
    assert child.exitcode == 0
    assert store.change_counter() != after_own
    assert store.get(job.id).state is JobState.RUNNING


def test_forked_child_uses_its_own_connection(store: JobStore) -> None:
    job = new(store)
    fork = multiprocessing.get_context("fork")
    child = fork.Process(target=store.transition, args=(job.id, JobState.RUNNING, "forked"))
    child.start()
    child.join()
    assert child.exitcode == 0
    assert store.get(job.id).state is JobState.RUNNING
    assert new(store).state is JobState.QUEUED


def test_threads_share_a_store(store: JobStore) -> None:
    created: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                job = new(store)
                store.transition(job.id, JobState.RUNNING, "started")
                created.append(job.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {j.id for j in store.list(state="running")} == set(created)
    assert len(created) == 400


def dispatch_and_read(home: str, count: int, go: Any, results: Any) -> None:
    """One of the concurrent processes: dispatch, read back, move on, list, all at once."""
    ids: list[str] = []
    errors: list[str] = []
    go.wait()
    try:
        dispatcher = ResponsiveDispatcher(home=home, config=Config())
        for i in range(count):
            job_id = dispatcher.dispatch_task(f"echo {i}", project=f"p{i % 3}", workdir=home)
            ids.append(job_id)
            assert dispatcher.get_status(job_id).state is JobState.QUEUED
            dispatcher.update_status(job_id, JobState.RUNNING, "started")
            if i % 10 == 0:
                dispatcher.list_jobs(state="running", limit=50)
                dispatcher.store.change_counter()
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    results.put((ids, errors))


def test_ten_processes_lose_no_job_and_never_lock(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    go = SPAWN.Event()
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=dispatch_and_read, args=(str(home), 100, go, results))
        for _ in range(10)
    ]
    for process in processes:
        process.start()
    go.set()
    outcomes = [results.get(timeout=100) for _ in processes]
    for process in processes:
        process.join()
    errors = [error for _, errs in outcomes for error in errs]
    assert errors == []
    dispatched = {job_id for ids, _ in outcomes for job_id in ids}
    assert len(dispatched) == 1000
    with JobStore(home) as store:
        jobs = store.list()
        assert {job.id for job in jobs} == dispatched
        assert all(job.state is JobState.RUNNING for job in jobs)
        assert all(len(store.events(job.id)) == 2 for job in jobs[:100])
        assert len(list((home / "jobs").iterdir())) == 1000


def test_new_ids_are_well_formed() -> None:
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == ID_LENGTH and set(i) <= set(ALPHABET) for i in ids)


OLD_EVENTS = """CREATE TABLE job_events (
    job_id TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, state TEXT NOT NULL,
    reason TEXT NOT NULL, PRIMARY KEY (job_id, seq)
) WITHOUT ROWID"""


def test_a_version_3_store_numbers_its_events_by_time(tmp_path: Path) -> None:
    with JobStore(tmp_path) as store:
        first = store.create_job("a", project="p", workdir=tmp_path)
        second = store.create_job("b", project=None, workdir=tmp_path)
        store.transition(first.id, JobState.RUNNING, "late")
    con = sqlite3.connect(db_path(tmp_path), isolation_level=None)
    rows = con.execute("SELECT job_id, seq, at, state, reason FROM job_events").fetchall()
    con.execute("DROP TABLE job_events")
    con.execute(OLD_EVENTS)
    con.executemany("INSERT INTO job_events VALUES (?, ?, ?, ?, ?)", rows[::-1])
    con.execute("PRAGMA user_version = 3")
    con.close()
    with JobStore(tmp_path) as store:
        head = store.last_event_num()
        feed = store.feed(0, head)
        assert [(e.job_id, e.seq, e.num) for e in feed] == [
            (first.id, 1, 1),
            (second.id, 1, 2),
            (first.id, 2, 3),
        ]
        assert [e.project for e in feed] == ["p", None, "p"]
        store.transition(second.id, JobState.RUNNING, "after the move")
        assert [(e.job_id, e.num) for e in store.feed(head, store.last_event_num())] == [
            (second.id, 4)
        ]
    con = sqlite3.connect(db_path(tmp_path))
    assert con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    con.close()


def test_event_numbers_are_never_reused(store: JobStore, tmp_path: Path) -> None:
    kept = store.create_job("a", project=None, workdir=tmp_path)
    gone = store.create_job("b", project=None, workdir=tmp_path)
    head = store.last_event_num()
    store.delete(gone.id)
    store.transition(kept.id, JobState.RUNNING, "on")
    assert [e.num for e in store.feed(head, store.last_event_num())] == [head + 1]
