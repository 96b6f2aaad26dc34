"""How many threads the solver uses, and how they wait.

The multirate back end runs thousands of short parallel loops (case M: about 15,000 fine
substeps, two threaded sweeps each). With OpenMP's default wait policy a thread that
finishes its share spins for a while before it sleeps; where another process wants the
core, a spinning thread takes it from the thread everybody is waiting for, and a solve that
took 5.8 s alone took 310 s beside a few other solves. So:

- threads wait passively (`OMP_WAIT_POLICY=passive`, set here before numba starts its
  threading layer, unless the user set it): a waiting thread sleeps at once and gives its
  core away;
- the solver uses as many threads as CPUs this process may run on: its CPU affinity, capped
  by a cgroup CPU quota (containers, batch schedulers), overridden by `CRYOPLAN_THREADS`;
- sweeps of fewer than `SERIAL_BELOW_VOXELS` voxels run on the calling thread alone
  (`threads_for`): there, a wake-up would cost more than the sweep.

The figures behind these choices are in benchmarks/README.md (`bench_shared_cores.py`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

THREADS_VARIABLE = "CRYOPLAN_THREADS"
# OpenMP reads these when numba loads it (at the first parallel loop), not later
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

# A sweep of fewer voxels runs on one thread: there the second thread's wake-up costs more
# than it saves (benchmarks/README.md, `bench_shared_cores.py`). CRYOPLAN_SERIAL_BELOW_VOXELS
# overrides it (for measuring).
SERIAL_BELOW_VOXELS = int(os.environ.get("CRYOPLAN_SERIAL_BELOW_VOXELS", "20000"))


def _cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs' worth of time the process's cgroup may use (quota / period), or None if
    unlimited or unknown. Reads cgroup v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us`)."""
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if controllers == "":  # v2
            candidates = [root / rel / "cpu.max", root / "cpu.max"]
            for f in candidates:
                try:
                    quota, period = f.read_text(encoding="utf-8").split()
                except (OSError, ValueError):
                    continue
                return None if quota == "max" else int(quota) / int(period)
        elif "cpu" in controllers.split(","):
            for base in (root / "cpu" / rel, root / "cpu,cpuacct" / rel, root / "cpu"):
                try:
                    quota = int((base / "cpu.cfs_quota_us").read_text(encoding="utf-8"))
                    period = int((base / "cpu.cfs_period_us").read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                return None if quota <= 0 else quota / period
    return None


def available_cpus() -> int:
    """CPUs this process may use: its affinity, capped by its cgroup's CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def solver_threads() -> int:
    """The solver's thread count: `CRYOPLAN_THREADS` if set (a positive integer), else
    `available_cpus()`; never more than numba's pool holds (NUMBA_NUM_THREADS)."""
    import numba  # noqa: PLC0415  (kept out of the import of this module: it is light)

    given = os.environ.get(THREADS_VARIABLE)
    if given is not None:
        try:
            wanted = int(given)
        except ValueError:
            wanted = 0
        if wanted < 1:
            raise ValueError(f"{THREADS_VARIABLE} must be a positive integer, got {given!r}")
    else:
        wanted = available_cpus()
    return min(wanted, numba.config.NUMBA_NUM_THREADS)


def threads_for(voxels: int, threads: int) -> int:
    """Threads for a sweep of `voxels`: one below SERIAL_BELOW_VOXELS, else `threads`."""
    return 1 if voxels < SERIAL_BELOW_VOXELS else threads
