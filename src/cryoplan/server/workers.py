"""The server's job workers: `workers` processes of `cryoplan.server.worker`, kept running.

Each worker gives a job the CPUs shared among the jobs running when it starts (a job alone
takes every core; two at once one each on two cores: `worker.job_threads`), unless
`CRYOPLAN_THREADS` fixes the count. A supervising
thread replaces a worker that exits (a crash, a kill) and puts its job back in the queue, or
marks it failed with its reason (`Store.recover`). The workers die with the server.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

from cryoplan.server.store import Store

SUPERVISE_EVERY_S = 0.5
log = logging.getLogger("cryoplan.server")


class WorkerPool:
    """`count` worker processes on a store, started with `start` and ended with `stop`."""

    def __init__(self, store: Store, count: int) -> None:
        self.store = store
        self.count = max(1, count)
        self.processes: list[subprocess.Popen] = []
        self.stopping = threading.Event()
        self.supervisor: threading.Thread | None = None

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "cryoplan.server.worker", str(self.store.root)],
            stdin=subprocess.DEVNULL,
        )

    def pids(self) -> set[int]:
        return {p.pid for p in self.processes if p.poll() is None}

    def start(self) -> None:
        # jobs left running by an earlier server's workers (which died with it)
        for job in self.store.recover(alive=set()):
            log.info("job %s: %s after a restart", job.id, job.state)
        self.processes = [self._spawn() for _ in range(self.count)]
        self.supervisor = threading.Thread(target=self._supervise, daemon=True)
        self.supervisor.start()

    def _supervise(self) -> None:
        while not self.stopping.wait(SUPERVISE_EVERY_S):
            for i, process in enumerate(self.processes):
                if process.poll() is not None and not self.stopping.is_set():
                    log.warning("worker %d exited (%s); starting another", process.pid,
                                process.returncode)  # fmt: skip
                    self.processes[i] = self._spawn()
                    for job in self.store.recover(alive=self.pids()):
                        log.info("job %s: %s after its worker exited", job.id, job.state)

    def stop(self) -> None:
        self.stopping.set()
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        # a job stopped with the server goes back in the queue for the next one
        self.store.recover(alive=set())
