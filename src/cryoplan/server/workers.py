"""The server's job workers: `workers` solver processes and one report process of
`cryoplan.server.worker`, kept running.

Each solver worker gives a job the CPUs shared among the jobs running when it starts (a job
alone takes every core; two at once one each on two cores: `worker.job_threads`), unless
`CRYOPLAN_THREADS` fixes the count. The report worker draws the reports of finished
simulations at a low CPU priority (nice 10), and is stopped (SIGSTOP) while a preview or a
simulation runs, continued (SIGCONT) when none does: a report's figures (several seconds
of one core, and memory bandwidth) would otherwise slow the solve a user is waiting for. A
planner's run (minutes) does not stop it. A supervising thread replaces a worker that exits
(a crash, a kill) and puts its job back in the queue, or marks it failed with its reason
(`Store.recover`). The workers die with the server.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from cryoplan.server.store import JobKind, Store

SUPERVISE_EVERY_S = 0.1  # also how soon the report worker is stopped once a solve starts
PAUSE_REPORTS_FOR: tuple[JobKind, ...] = ("preview", "simulate")  # what a user waits for
log = logging.getLogger("cryoplan.server")


def process_state(pid: int) -> str | None:
    """A process's state letter in /proc (R running, S sleeping, T stopped, Z zombie, …);
    None where it is gone or there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _wait_stopped(pid: int, timeout_s: float = 1.0) -> None:
    """Until a process sent SIGSTOP has stopped (a signal's delivery is not immediate), is
    gone, or `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while process_state(pid) not in (None, "T", "t", "Z", "X") and time.monotonic() < deadline:
        time.sleep(0.001)


class WorkerPool:
    """`count` solver worker processes and a report worker on a store, started with `start`
    and ended with `stop`."""

    def __init__(self, store: Store, count: int) -> None:
        self.store = store
        self.count = max(1, count)
        self.processes: list[subprocess.Popen] = []  # the solver workers, then the report one
        self.reports_paused = False
        self.stopping = threading.Event()
        self.supervisor: threading.Thread | None = None

    def _spawn(self, reports: bool) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "cryoplan.server.worker", str(self.store.root),
             *(["--reports"] if reports else [])],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    @property
    def report_worker(self) -> subprocess.Popen:
        return self.processes[-1]

    def pids(self) -> set[int]:
        return {p.pid for p in self.processes if p.poll() is None}

    def start(self) -> None:
        # jobs left running by an earlier server's workers (which died with it)
        for job in self.store.recover(alive=set()):
            log.info("job %s: %s after a restart", job.id, job.state)
        self.processes = [self._spawn(reports=i == self.count) for i in range(self.count + 1)]
        self.pace_reports()  # at once: before it has started, should a solve be running
        self.supervisor = threading.Thread(target=self._supervise, daemon=True)
        self.supervisor.start()

    def _signal_reports(self, pause: bool) -> None:
        pid = self.report_worker.pid
        try:
            if pause:
                # never inside a transaction of its own (Store.database_guard): stopped there,
                # it would hold the database's write lock from the solve it is stopped for
                with self.store.database_guard():
                    os.kill(pid, signal.SIGSTOP)
                    _wait_stopped(pid)
            else:
                os.kill(pid, signal.SIGCONT)
            self.reports_paused = pause
        except ProcessLookupError:  # it exited: the supervisor starts another
            self.reports_paused = False

    def pace_reports(self) -> None:
        """Stop the report worker while a preview or a simulation runs; continue it after."""
        solving = self.store.running(PAUSE_REPORTS_FOR) > 0
        if solving != self.reports_paused:
            self._signal_reports(solving)

    def _supervise(self) -> None:
        while not self.stopping.wait(SUPERVISE_EVERY_S):
            try:
                self._supervise_once()
            except Exception:  # a busy database, a failed spawn: the next pass tries again
                log.exception("supervising the workers")

    def _supervise_once(self) -> None:
        for i, process in enumerate(self.processes):
            if process.poll() is not None and not self.stopping.is_set():
                log.warning("worker %d exited (%s); starting another", process.pid,
                            process.returncode)  # fmt: skip
                self.processes[i] = self._spawn(reports=i == self.count)
                if i == self.count:
                    self.reports_paused = False  # a new one: paced below
                for job in self.store.recover(alive=self.pids()):
                    log.info("job %s: %s after its worker exited", job.id, job.state)
        self.pace_reports()

    def stop(self) -> None:
        self.stopping.set()
        if self.supervisor is not None:
            self.supervisor.join()
        if self.reports_paused:
            self._signal_reports(False)  # a stopped process would not take its SIGTERM
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        # a job stopped with the server goes back in the queue for the next one
        self.store.recover(alive=set())
