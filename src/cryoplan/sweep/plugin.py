"""The Dask worker plugin of a sweep: threads and kernels, once per worker.

On a worker's start `WarmWorker` fixes the solver's threads (so that the workers' threads
together fit the cores, `thermal/threads.py`) and loads the kernels from numba's cache, so
that no task pays for it.
"""

from __future__ import annotations

import os

from distributed import WorkerPlugin

from cryoplan.thermal.threads import THREADS_VARIABLE


class WarmWorker(WorkerPlugin):
    """Dask worker plugin (`Client.register_plugin`): threads and kernels, once per worker.

    `threads`: the solver's threads in each task. None: the CPUs this worker may use
    (`available_cpus`: affinity and cgroup quota, as a batch scheduler's allocation sets
    them) divided by the task slots of all the workers on its host (`slots_by_host`, from
    the scheduler when the sweep started; a worker that joins later counts its own). A
    `CRYOPLAN_THREADS` in the worker's environment stands."""

    name = "cryoplan-warm-worker"

    def __init__(self, threads: int | None = None, slots_by_host: dict[str, int] | None = None):
        self.threads = threads
        self.slots_by_host = slots_by_host or {}

    def setup(self, worker) -> None:
        from urllib.parse import urlsplit  # noqa: PLC0415

        from cryoplan.thermal import compile_solver  # noqa: PLC0415
        from cryoplan.thermal.threads import available_cpus  # noqa: PLC0415

        if THREADS_VARIABLE not in os.environ:
            host = urlsplit(worker.address).hostname or worker.address
            slots = self.slots_by_host.get(host, worker.state.nthreads)
            os.environ[THREADS_VARIABLE] = str(self.threads or max(1, available_cpus() // slots))
        compile_solver("fast")  # from numba's cache (compiled there on a first install)
