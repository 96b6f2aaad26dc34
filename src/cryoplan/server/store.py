"""The browser application's store: cases and jobs in one SQLite database, files beside it.

    DATA/cryoplan.sqlite       cases, jobs (WAL: the server and its workers share it)
    DATA/cases/<id>/           case.yaml (a complete cryoplan case), its image and labels
    DATA/jobs/<id>/            a job's results folder (published whole, `outputs`)

A case is stored whole or not at all: its files are written into a staging folder beside
`cases/` and renamed into place once they have been read back and validated. Files are
served by id and by name from a fixed list, never by a path a client gives.

A job goes queued → running → done | failed | cancelled. A worker claims the oldest queued
job (previews first) in one transaction, so two workers never take the same job. A job
left "running" by a worker that died (the server killed, the machine restarted) is put back
in the queue once by `recover`, and marked failed with its reason the second time: it is
never silently lost, and its results folder, published whole, is never half-written.

A simulation is done when its results are published; its report (several seconds of
figures) is then a `report` job of its own, queued in the same transaction, taken by the
report worker alone, and recovered the same way. Until it ends, the simulation's message is
`REPORT_PENDING`; then "done", or what stopped the report. Report jobs are the store's own:
not listed with a case's jobs.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

JobKind = Literal["preview", "simulate", "plan", "report"]
JobState = Literal["queued", "running", "done", "failed", "cancelled"]
JOB_KINDS: tuple[JobKind, ...] = ("preview", "simulate", "plan")  # what a client submits
# A simulation's report is a job of its own, queued in the transaction that marks the
# simulation done: it is then recovered like any job when its worker dies while writing
# it, and never left half-done silently. Its params: {"of": the simulation's id}.
REPORT_PENDING = "done; writing the report"
FINAL_STATES = frozenset({"done", "failed", "cancelled"})
MAX_ATTEMPTS = 2  # a job whose worker died is run once more, then marked failed
DATABASE = "cryoplan.sqlite"
GUARD = "report-worker.lock"  # Store.database_guard

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created REAL NOT NULL,
    source TEXT NOT NULL              -- 'upload' or 'example:<name>'
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES cases(id),
    kind TEXT NOT NULL,
    params TEXT NOT NULL,             -- JSON
    state TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker_pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, kind, created);
"""


@dataclass(frozen=True)
class Job:
    """One row of the jobs table."""

    id: str
    case_id: str
    kind: JobKind
    params: dict[str, Any]
    state: JobState
    progress: float
    message: str
    error: str | None
    attempts: int
    worker_pid: int | None
    cancel_requested: bool
    created: float
    started: float | None
    finished: float | None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def public(self) -> dict[str, Any]:
        """What the API shows of a job (no worker pid)."""
        return {
            "id": self.id,
            "case_id": self.case_id,
            "kind": self.kind,
            "state": self.state,
            "progress": self.progress,
            "message": self.message,
            "error": self.error,
            "attempts": self.attempts,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }


def _job(row: sqlite3.Row) -> Job:
    values = dict(row)
    values["params"] = json.loads(values["params"])
    values["cancel_requested"] = bool(values["cancel_requested"])
    return Job(**values)


def new_id() -> str:
    """A random id: 16 hex digits (not guessable from another's)."""
    return uuid.uuid4().hex[:16]


def valid_id(value: str) -> bool:
    """Whether a string can be an id of this store (anything else is not looked up)."""
    return len(value) == 16 and all(c in "0123456789abcdef" for c in value)


class Store:
    """Cases and jobs under one data folder (module docstring)."""

    def __init__(self, root: str | Path, guarded: bool = False) -> None:
        """`guarded`: the report worker's store, each use of the database inside the
        `database_guard` (see there)."""
        self.root = Path(root).expanduser().resolve()
        for folder in (self.root, self.root / "cases", self.root / "jobs"):
            folder.mkdir(parents=True, exist_ok=True)
        self.guarded = guarded
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def database_guard(self) -> Iterator[None]:
        """An exclusive lock (flock on a file beside the database) that the report worker
        holds while it uses the database, and that the server takes to stop it (SIGSTOP,
        workers.py): so the report worker is never stopped inside a transaction, which would
        hold the database's write lock from every other worker until it is continued."""
        with (self.root / GUARD).open("a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self.database_guard() if self.guarded else nullcontext():
            db = sqlite3.connect(self.root / DATABASE, timeout=30.0, isolation_level=None)
            db.row_factory = sqlite3.Row
            try:
                yield db
            finally:
                db.close()

    def plain_message(self, message: str) -> str:
        """A one-line error with the store's files named by their own names (case.yaml,
        labels.nii.gz), not by their paths on the server: what a client is shown."""
        folders = rf"{re.escape(str(self.root))}{re.escape(os.sep)}(?:(?:cases|jobs)/[^/\s]+/)?"
        return re.sub(folders, "", message)

    # --- cases ------------------------------------------------------------------------------

    def case_dir(self, case_id: str) -> Path:
        return self.root / "cases" / case_id

    @contextmanager
    def new_case(self, name: str, source: str) -> Iterator[tuple[str, Path]]:
        """(id, staging folder) to write a case's files into; on a clean exit the folder is
        renamed into place and the case recorded, on an error both are dropped."""
        case_id = new_id()
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{case_id}-", dir=self.root / "cases"))
        try:
            yield case_id, staging
            staging.rename(self.case_dir(case_id))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with self._connect() as db:
            db.execute(
                "INSERT INTO cases (id, name, created, source) VALUES (?, ?, ?, ?)",
                (case_id, name, time.time(), source),
            )

    def case(self, case_id: str) -> dict[str, Any] | None:
        if not valid_id(case_id):
            return None
        with self._connect() as db:
            row = db.execute("SELECT * FROM cases WHERE id = ?", (case_id,)).fetchone()
        return None if row is None else dict(row)

    def cases(self) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM cases ORDER BY created DESC").fetchall()
        return [dict(r) for r in rows]

    # --- jobs -------------------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def submit(self, case_id: str, kind: JobKind, params: dict[str, Any] | None = None) -> Job:
        job_id = new_id()
        with self._connect() as db:
            db.execute(
                "INSERT INTO jobs (id, case_id, kind, params, state, created) "
                "VALUES (?, ?, ?, ?, 'queued', ?)",
                (job_id, case_id, kind, json.dumps(params or {}), time.time()),
            )
        job = self.job(job_id)
        assert job is not None
        return job

    def job(self, job_id: str) -> Job | None:
        if not valid_id(job_id):
            return None
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def jobs(self, case_id: str | None = None) -> list[Job]:
        with self._connect() as db:
            if case_id is None:
                rows = db.execute("SELECT * FROM jobs ORDER BY created DESC").fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM jobs WHERE case_id = ? AND kind != 'report' "
                    "ORDER BY created DESC",
                    (case_id,),
                ).fetchall()
        return [_job(r) for r in rows]

    def claim(self, worker_pid: int, kinds: tuple[JobKind, ...] = JOB_KINDS) -> Job | None:
        """The oldest queued job of `kinds` (previews first), now running in `worker_pid`."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # one writer: no two workers take the same row
            row = db.execute(
                "SELECT id FROM jobs WHERE state = 'queued' "
                f"AND kind IN ({', '.join('?' * len(kinds))}) "
                "ORDER BY kind != 'preview', created LIMIT 1",
                kinds,
            ).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', worker_pid = ?, started = ?, "
                "attempts = attempts + 1, progress = 0, message = 'starting' WHERE id = ?",
                (worker_pid, time.time(), row["id"]),
            )
            db.execute("COMMIT")
        return self.job(row["id"])

    def running(self, kinds: tuple[JobKind, ...] = JOB_KINDS) -> int:
        """How many jobs of `kinds` (by default the solver's: not reports) are running now."""
        with self._connect() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state = 'running' "
                f"AND kind IN ({', '.join('?' * len(kinds))})",
                kinds,
            ).fetchone()
        return int(row[0])

    def report_progress(self, job_id: str, progress: float, message: str) -> bool:
        """Record a running job's progress; returns whether its cancel was asked for."""
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET progress = ?, message = ? WHERE id = ? AND state = 'running'",
                (min(max(progress, 0.0), 1.0), message, job_id),
            )
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row["cancel_requested"])

    def finish(
        self, job_id: str, state: JobState, error: str | None = None, message: str | None = None
    ) -> None:
        """End a job in `state`; its message is the state's name unless `message` says what
        it still does (set in the same transaction: no reader sees a message in between)."""
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET state = ?, error = ?, finished = ?, worker_pid = NULL, "
                "progress = CASE WHEN ? = 'done' THEN 1 ELSE progress END, "
                "message = ? WHERE id = ?",
                (state, error, time.time(), state, message or state, job_id),
            )

    def finish_with_report(self, job_id: str) -> None:
        """End a simulation as done and queue its report, in one transaction: no reader sees
        it done without its report on the way, and no crash leaves one without the other."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "UPDATE jobs SET state = 'done', error = NULL, finished = ?, worker_pid = NULL, "
                "progress = 1, message = ? WHERE id = ?",
                (time.time(), REPORT_PENDING, job_id),
            )
            report_id = new_id()
            db.execute(
                "INSERT INTO jobs (id, case_id, kind, params, state, created) "
                "SELECT ?, case_id, 'report', ?, 'queued', ? FROM jobs WHERE id = ?",
                (report_id, json.dumps({"of": job_id}), time.time(), job_id),
            )
            db.execute("COMMIT")

    def note(self, job_id: str, message: str) -> None:
        """Change a job's message alone (what a finished job is still doing: its report)."""
        with self._connect() as db:
            db.execute("UPDATE jobs SET message = ? WHERE id = ?", (message, job_id))

    def cancel(self, job_id: str) -> Job | None:
        """Ask for a job's cancel: a queued job is cancelled at once, a running one by its
        worker at its next progress report; a finished job stays as it is."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "UPDATE jobs SET state = 'cancelled', finished = ?, message = 'cancelled' "
                "WHERE id = ? AND state = 'queued'",
                (time.time(), job_id),
            )
            db.execute(
                "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = 'running'",
                (job_id,),
            )
            db.execute("COMMIT")
        return self.job(job_id)

    def recover(self, alive: set[int]) -> list[Job]:
        """Jobs left running by a worker that is not in `alive`: queued again once, or failed
        with the reason after MAX_ATTEMPTS; returns the jobs it changed."""
        changed = []
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            rows = db.execute("SELECT * FROM jobs WHERE state = 'running'").fetchall()
            for row in rows:
                if row["worker_pid"] in alive:
                    continue
                if row["cancel_requested"]:
                    db.execute(
                        "UPDATE jobs SET state = 'cancelled', finished = ?, worker_pid = NULL, "
                        "message = 'cancelled' WHERE id = ?",
                        (time.time(), row["id"]),
                    )
                elif row["attempts"] < MAX_ATTEMPTS:
                    db.execute(
                        "UPDATE jobs SET state = 'queued', worker_pid = NULL, progress = 0, "
                        "message = 'queued again: its worker stopped while it ran' WHERE id = ?",
                        (row["id"],),
                    )
                else:
                    reason = (
                        f"its worker stopped while it ran, {row['attempts']} times "
                        "(the server was stopped or the process was killed)"
                    )
                    db.execute(
                        "UPDATE jobs SET state = 'failed', finished = ?, worker_pid = NULL, "
                        "error = ?, message = 'failed' WHERE id = ?",
                        (time.time(), reason, row["id"]),
                    )
                    if row["kind"] == "report":  # the simulation's results stand without it
                        db.execute(
                            "UPDATE jobs SET message = ? WHERE id = ?",
                            (f"done; the report failed: {reason}",
                             json.loads(row["params"])["of"]),
                        )  # fmt: skip
                changed.append(row["id"])
            db.execute("COMMIT")
        return [job for job in map(self.job, changed) if job is not None]


def default_data_dir() -> Path:
    """The data folder when none is given: $CRYOPLAN_DATA, else ~/.local/share/cryoplan."""
    given = os.environ.get("CRYOPLAN_DATA")
    if given:
        return Path(given)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cryoplan"
