"""A job worker: one long-lived process that takes jobs from the store and runs them.

`python -m cryoplan.server.worker DATA [--reports]` is started by the server (`cryoplan
serve`), which keeps `workers` solver workers and one report worker. A worker:

- dies with the server (Linux `PR_SET_PDEATHSIG`, and a check of its parent): a job it was
  running is then put back in the queue by the next server (`Store.recover`);
- gives each job the CPUs shared among the jobs running as it starts (`job_threads`);
- loads the solver's kernels once (numba's cache), and keeps the last prepared cases
  (`PreparedCache`), so a probe moved in the same case runs without re-reading the images;
- reports progress to the store, and stops a job whose cancel was asked for at its next
  progress report;
- writes each job's results folder whole (`outputs.results_folder`), so a job stopped half-way
  leaves nothing.

Job kinds: `simulate` (the full case and its results folder: the job is done when that is
published), `preview` (the same on a coarser grid, `PREVIEW_SPACING_MM` at least, with only
what the viewer overlays: `tmin_on_image.nii.gz`, `lethal_on_image.nii.gz` and
`preview.json`), `plan` (the automatic planner, `cryoplan plan`'s files); and `report`
(queued by a simulation as it ends: its report.html, which joins the published folder a
few seconds later), which the report worker alone takes, so that drawing a report never
keeps a solver worker from the next solve.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Any

from cryoplan.errors import CaseError
from cryoplan.server.store import JOB_KINDS, Job, JobKind, Store

POLL_S = 0.05  # how often an idle worker looks for a job
PREVIEW_SPACING_MM = 4.0  # a preview's grid is at least this coarse (about 1 s for a liver case)
PROGRESS_EVERY_S = 0.25  # progress is written to the store at most this often
CACHED_CASES = 3  # prepared cases a worker keeps
PR_SET_PDEATHSIG = 1

log = logging.getLogger("cryoplan.worker")


class JobCancelledError(Exception):
    """The job's cancel was asked for."""


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent (the server) dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent check in the loop remains
        pass


def case_key(data: dict[str, Any]) -> str:
    """What decides a prepared case: the case without its name, probes and protocol."""
    anatomy = {k: v for k, v in data.items() if k not in {"probes", "protocol", "name"}}
    return json.dumps(anatomy, sort_keys=True)


class PreparedCache:
    """The last `CACHED_CASES` prepared cases of this worker, by `case_key`."""

    def __init__(self, size: int = CACHED_CASES) -> None:
        self.size = size
        self.entries: OrderedDict[str, Any] = OrderedDict()

    def get(self, data: dict[str, Any], case: Any) -> Any:
        from cryoplan.preparation import prepare  # noqa: PLC0415

        key = case_key(data)
        if key not in self.entries:
            bare = case.model_copy(update={"probes": None, "protocol": None})
            self.entries[key] = prepare(bare)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        self.entries.move_to_end(key)
        return self.entries[key]


class Progress:
    """A job's progress callback: throttled writes to the store, and the cancel check."""

    def __init__(self, store: Store, job: Job, label: str) -> None:
        self.store, self.job, self.label = store, job, label
        self.last = 0.0

    def __call__(self, fraction: float, message: str | None = None) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S and fraction < 1.0:
            return
        self.last = now
        if self.store.report_progress(self.job.id, fraction, message or self.label):
            raise JobCancelledError


def job_case(store: Store, job: Job, data: dict[str, Any] | None = None) -> Any:
    """The case as it was when the job was submitted (its params, or `data` in its place),
    its files in the store."""
    from cryoplan.case import case_from_dict  # noqa: PLC0415

    source = str(store.case_dir(job.case_id) / "case.yaml")
    return case_from_dict(job.params["case"] if data is None else data, source)


def run_simulation(store: Store, job: Job, cache: PreparedCache, preview: bool) -> None:
    from cryoplan.outcome import evaluate  # noqa: PLC0415
    from cryoplan.outputs import (  # noqa: PLC0415
        json_text,
        results_folder,
        write_nifti,
        write_on_image_grid,
        write_result,
    )
    from cryoplan.simulation import SimulationResult  # noqa: PLC0415
    from cryoplan.simulator import Simulator  # noqa: PLC0415

    data = job.params["case"]
    if preview:  # the same case on a coarser grid
        grid = dict(data.get("grid") or {})
        grid["spacing_mm"] = max(float(grid.get("spacing_mm", 1.0)), PREVIEW_SPACING_MM)
        data = {**data, "grid": grid}
    case = job_case(store, job, data)
    case.require_plan()
    Progress(store, job, "preparing the anatomy")(0.0)
    prepared = cache.get(data, case)
    total = case.total_duration_s()
    solving = Progress(store, job, "simulating")
    run = Simulator(prepared).run(
        probes=case.probes, protocol=case.protocol,
        progress=lambda t, _total: solving(0.05 + 0.85 * t / total),
    )  # fmt: skip
    result = SimulationResult(prepared, run)
    folder = store.job_dir(job.id)
    if not preview:
        solving(0.92, "writing the results")
        write_result(result, folder, overwrite=True)
        # the results are what the viewer needs: the job is done with them, and its report
        # (the figures take several seconds) is a job of its own that joins them after
        store.finish_with_report(job.id)
        return
    outcome = evaluate(run, prepared, {"coverage", "margin"})  # what the preview shows
    target = outcome.target or {}
    figures = {
        "lethal_volume_ml": int(outcome.lethal_zone.sum()) * result.grid.voxel_volume_ml,
        "target_lethal_percent": (target.get("coverage_percent") or {}).get("lethal"),
        "minimum_margin_mm": (target.get("margin_mm") or {}).get("minimum"),
        "spacing_mm": result.grid.spacing_mm[0],
    }
    with results_folder(folder, overwrite=True) as staging:
        tmin = result.history.minimum_temperature_c.astype("float32")
        write_nifti(staging / "tmin.nii.gz", tmin, result.grid)
        write_on_image_grid(staging, result, suffixes=(".nii.gz",), with_image=False)
        (staging / "preview.json").write_text(json_text(figures), "utf-8")  # no -Infinity


def run_report(store: Store, job: Job) -> None:
    """Write a finished simulation's report.html into its published results folder, and
    say on the simulation how that went."""
    from cryoplan.report import write_report  # noqa: PLC0415

    simulation = job.params["of"]
    try:
        write_report(store.job_dir(simulation))
    except Exception as error:  # the results stand without their report
        store.note(simulation, f"done; the report failed: {type(error).__name__}: {error}")
        raise
    store.note(simulation, "done")


def run_plan(store: Store, job: Job) -> None:
    from cryoplan.planning import plan, write_plan  # noqa: PLC0415

    case = job_case(store, job)
    progress = Progress(store, job, "planning")
    result = plan(case, progress=lambda what, done: progress(0.95 * done, what), workers=1)
    write_plan(result, store.job_dir(job.id), overwrite=True)


def execute(store: Store, job: Job, cache: PreparedCache) -> None:
    """Run one job and record how it ended."""
    started = time.perf_counter()
    try:
        if job.kind == "plan":
            run_plan(store, job)
        elif job.kind == "report":
            run_report(store, job)
        else:
            run_simulation(store, job, cache, preview=job.kind == "preview")
    except JobCancelledError:
        store.finish(job.id, "cancelled")
        log.info("job %s (%s) cancelled", job.id, job.kind)
        return
    except CaseError as error:  # the user's case: one line, as on the command line
        store.finish(job.id, "failed", store.plain_message(str(error)))
        log.info("job %s (%s) failed: %s", job.id, job.kind, error)
        return
    except Exception as error:  # a worker must outlive a broken job
        store.finish(job.id, "failed", f"internal error: {type(error).__name__}: {error}")
        log.error("job %s (%s) failed:\n%s", job.id, job.kind, traceback.format_exc())
        return
    if not store.job(job.id).final:  # type: ignore[union-attr]  (a simulation finishes itself)
        store.finish(job.id, "done")
    log.info("job %s (%s) done in %.2f s", job.id, job.kind, time.perf_counter() - started)


def job_threads(store: Store, cpus: int) -> int:
    """Solver threads for a job starting now: the CPUs shared among the running jobs (this
    one counted). A job that starts alone keeps its threads if another joins it later:
    for that overlap the cores are oversubscribed, which passive waiting bears
    (thermal/threads.py)."""
    return max(1, cpus // max(1, store.running()))


# Reports yield the cores (they are stopped outright while a preview or simulation runs:
# workers.py); 10, not 19, so that a browser on the same machine, busy drawing, does not
# starve them altogether (CFS weights: nice 10 gets about a tenth of a contended core).
REPORT_NICENESS = 10


def serve_jobs(data_dir: str | Path, reports: bool = False) -> None:
    """The worker's loop: claim, run, repeat, until the parent goes. A solver worker takes
    previews, simulations and plans; the report worker (`reports`) takes reports only, at
    a low CPU priority (and the server stops it while a solve runs: workers.py)."""
    die_with_parent()
    parent = os.getppid()
    store = Store(data_dir, guarded=reports)  # the report worker is stopped now and then
    kinds: tuple[JobKind, ...] = ("report",) if reports else JOB_KINDS
    cache = PreparedCache()
    if reports:
        os.nice(REPORT_NICENESS)
    else:
        from cryoplan.thermal import compile_solver  # noqa: PLC0415

        compile_solver("fast")  # loads the kernels from numba's cache (compiles on a first run)
    from cryoplan.thermal.threads import THREADS_VARIABLE, available_cpus  # noqa: PLC0415

    fixed = THREADS_VARIABLE in os.environ  # the user's count stands
    cpus = available_cpus()
    log.info("worker %d ready (%s)", os.getpid(), ", ".join(kinds))
    while os.getppid() == parent:
        job = store.claim(os.getpid(), kinds)
        if job is None:
            time.sleep(POLL_S)
            continue
        if not fixed and not reports:
            os.environ[THREADS_VARIABLE] = str(job_threads(store, cpus))
        execute(store, job, cache)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s worker %(process)d %(message)s", stream=sys.stderr
    )
    serve_jobs(sys.argv[1], reports="--reports" in sys.argv[2:])


if __name__ == "__main__":
    main()
