"""Run a sweep on a Dask cluster: the samples not yet stored, then the results.

    result = run_sweep("sweep.yaml", "out/sweep")                  # a LocalCluster here
    result = run_sweep("sweep.yaml", "out/sweep", scheduler="tcp://head:8786")

The client (this process) reads the sweep file and the cases, prepares each case once,
sends each prepared case to every worker once (`scatter(broadcast=True)`), and submits one
task per sample not yet in the results folder. It stores each result as it arrives, so
that a rerun after an interruption runs only the rest. A worker that dies takes its running
tasks with it; the scheduler runs them again on another worker (and gives up on a sample
that has killed `distributed.scheduler.allowed-failures` workers: that sample is stored
with its error, marked to be run again by a rerun, as a failure of the code is). The
results are written from the stored samples once all are there.

With no scheduler, a `LocalCluster` of `workers` processes, each running one task at a time
with `available_cpus() // workers` solver threads (or `CRYOPLAN_THREADS`): the workers'
threads fit the cores. On a cluster each worker divides its host's CPUs by the task slots
of all the workers on that host (`plugin.WarmWorker`).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryoplan.case import Case, load_case
from cryoplan.errors import CaseError
from cryoplan.preparation import PreparedCase, prepare
from cryoplan.sweep.aggregate import aggregate
from cryoplan.sweep.folder import SweepFolder, sweep_digest
from cryoplan.sweep.result import EncodedSample, SampleResult
from cryoplan.sweep.samples import Sample, samples_of
from cryoplan.sweep.spec import SweepSpec, case_paths, load_sweep_spec
from cryoplan.sweep.worker import run_and_encode

# (samples stored, samples in the sweep, the sample just stored (its key, its error) or None)
SweepProgress = Callable[[int, int, EncodedSample | SampleResult | None], None]


@dataclass(frozen=True)
class SweepResult:
    folder: Path
    summary: dict[str, Any]
    ran_now: int  # samples run by this call (the others were stored already)
    dashboard: str | None  # the Dask dashboard's address, if it had one


def check_cases(spec: SweepSpec, source: str, cases: list[Case]) -> None:
    """What each case must have for this sweep: probes, a protocol (its own or the
    sweep's variants, whose phases must name its probes), and the probe models the
    parameters vary; each parameter's whole range within plausible values."""
    from cryoplan.case import check_plan  # noqa: PLC0415
    from cryoplan.sweep.samples import factor_range  # noqa: PLC0415
    from cryoplan.sweep.worker import variant_case  # noqa: PLC0415

    for i, case in enumerate(cases):
        if case.probes is None:
            raise CaseError(source, f"cases[{i}]", f"a case with probes ({case.source} has none; "
                            "`cryoplan plan` writes a plan file that has)")  # fmt: skip
        if case.protocol is None and not spec.vary.protocols:
            raise CaseError(source, f"cases[{i}]", f"a case with a protocol ({case.source} has "
                            "none), or vary.protocols")  # fmt: skip
        for k, variant in enumerate(spec.vary.protocols or []):
            try:
                check_plan(case.source, case.probes, variant.phases, case.probe_models,
                           case.output.snapshot_times_min)  # fmt: skip
            except CaseError as error:
                raise CaseError(source, f"vary.protocols[{k}]",
                                f"a protocol {case.source} can run ({error.field}: "
                                f"{error.expected})") from None  # fmt: skip
    for k, p in enumerate(spec.vary.parameters):
        field = f"vary.parameters[{k}]"
        if p.probe_model is not None:
            model = cases[0].probe_models.get(p.probe_model)
            if model is None:
                raise CaseError(
                    source, f"{field}.probe_model",
                    f"a probe model of the catalogue, got {p.probe_model!r}",
                )  # fmt: skip
            if model.cooling.model != "gas":
                raise CaseError(
                    source, f"{field}.probe_model",
                    f"a gas-cooled probe model with a film coefficient; {p.probe_model!r} "
                    "holds its wall at a temperature curve",
                )  # fmt: skip
            if not any(q.model == p.probe_model for c in cases for q in c.probes or []):
                raise CaseError(
                    source, f"{field}.probe_model",
                    f"a probe model the cases' probes use, got {p.probe_model!r}",
                )  # fmt: skip
        if p.tissue is not None and p.tissue not in cases[0].resolved_tissues:
            raise CaseError(source, f"{field}.tissue",
                            f"a tissue of the library or the cases, got {p.tissue!r}")  # fmt: skip
        for end in factor_range(p.factor):
            for case in cases:
                try:
                    variant_case(case, [p], {p.name: end})
                except CaseError as error:
                    raise CaseError(source, f"{field}.factor",
                                    f"factors that keep {case.source} plausible; at ×{end:.3g}: "
                                    f"{error.field}: {error.expected}") from None  # fmt: skip


def check_tissues_present(spec: SweepSpec, source: str, prepared: list[PreparedCase]) -> None:
    """A tissue parameter must scale a tissue some case's domain holds (else it is a typo, or
    a parameter with no effect)."""
    present = {name for p in prepared for name in p.tissue_names}
    for k, p in enumerate(spec.vary.parameters):
        if p.tissue is not None and p.tissue not in present:
            raise CaseError(source, f"vary.parameters[{k}].tissue",
                            f"a tissue of the cases' domains ({', '.join(sorted(present))}), "
                            f"got {p.tissue!r}")  # fmt: skip


def threads_per_host(client) -> dict[str, int]:
    """Task slots (worker threads) on each host of the cluster, from the scheduler."""
    from urllib.parse import urlsplit  # noqa: PLC0415

    slots: dict[str, int] = {}
    for address, info in client.scheduler_info(n_workers=-1)["workers"].items():
        host = urlsplit(address).hostname or address
        slots[host] = slots.get(host, 0) + int(info.get("nthreads", 1))
    return slots


@contextmanager
def dask_client(scheduler: str | None, workers: int | None):
    """A client of the scheduler at `scheduler`, or of a LocalCluster of `workers` worker
    processes (default: one per available CPU) that closes with it. Either way each worker
    gets the `WarmWorker` plugin; mistakes (an address that is not a scheduler's, no worker,
    workers without cryoplan) are `CaseError`s naming --scheduler."""
    from distributed import Client, LocalCluster  # noqa: PLC0415

    from cryoplan.sweep.plugin import WarmWorker  # noqa: PLC0415
    from cryoplan.thermal.threads import THREADS_VARIABLE, available_cpus  # noqa: PLC0415

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, ValueError, TypeError) as exc:
            raise CaseError(scheduler, "--scheduler",
                            f"the address of a running Dask scheduler, e.g. tcp://host:8786 "
                            f"({type(exc).__name__}: {exc})") from None  # fmt: skip
        try:
            try:
                client.wait_for_workers(1, timeout=60)
                client.register_plugin(WarmWorker(slots_by_host=threads_per_host(client)))
            except TimeoutError:
                raise CaseError(scheduler, "--scheduler", "a scheduler with workers (none joined "
                                "in 60 s)") from None  # fmt: skip
            except Exception as exc:  # raised on a worker: its message, in one line
                raise CaseError(
                    scheduler, "--scheduler", "workers with cryoplan installed at this version "
                    f"({type(exc).__name__}: {exc})",
                ) from None  # fmt: skip
            yield client
        finally:
            client.close()
        return
    cpus = available_cpus()
    n = workers or cpus
    # the user's thread count stands; else the workers' threads fit the cores
    threads = int(os.environ.get(THREADS_VARIABLE) or max(1, cpus // n))
    try:
        import bokeh  # noqa: F401, PLC0415  (the dashboard needs it)

        dashboard: str | None = "127.0.0.1:0"
    except ImportError:
        dashboard = None
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=dashboard,
            host="127.0.0.1",
            silence_logs=logging.ERROR,
            env={THREADS_VARIABLE: str(threads)},
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(WarmWorker(threads))
        yield client


def sweep_manifest(spec: SweepSpec, spec_file: Path, files: list[Path], samples: int) -> dict:
    """sweep.json: what makes stored samples this sweep's. A Monte Carlo sweep's samples do
    not depend on how many there are, so its digest leaves `samples` out: the same sweep
    with more samples, into the same folder, keeps those it has and runs the new ones."""
    identity = spec.model_dump(mode="json")
    if spec.sensitivity is None:
        identity.pop("samples")
    return {
        "written_by": "cryoplan sweep",
        "spec_file": str(spec_file),
        "digest": sweep_digest(json.dumps(identity, sort_keys=True), files),
        "spec": spec.model_dump(mode="json"),
        "samples": samples,
    }


def run_sweep(
    spec_file: str | Path,
    out: str | Path,
    scheduler: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: SweepProgress | None = None,
    on_start: Callable[[str | None], None] | None = None,
) -> SweepResult:
    """Run the sweep of `spec_file` into `out` (module docstring). `on_start(dashboard)` is
    called once the cluster is up; `progress` after each stored sample.

    The workers of a local cluster are spawned processes, which import the caller's main
    module: a script that runs a sweep must call `run_sweep` under
    `if __name__ == "__main__":`."""
    spec_file = Path(spec_file)
    spec = load_sweep_spec(spec_file)
    files = case_paths(spec, spec_file)
    cases = [load_case(path) for path in files]
    check_cases(spec, str(spec_file), cases)
    samples = samples_of(spec, cases)
    prepared = [prepare(case) for case in cases]  # before the folder: a case error leaves none
    check_tissues_present(spec, str(spec_file), prepared)
    folder = SweepFolder.open(out, sweep_manifest(spec, spec_file, files, len(samples)), overwrite)
    done = folder.done()
    todo = [s for s in samples if s.key not in done]
    if progress:
        progress(len(samples) - len(todo), len(samples), None)
    dashboard = None
    if todo:
        with dask_client(scheduler, workers) as client:
            dashboard = client.dashboard_link if client.dashboard_link else None
            if on_start:
                on_start(dashboard)
            _run_on(client, spec, prepared, todo, folder, len(samples), progress)
    elif on_start:
        on_start(None)
    summary = aggregate(folder, spec, samples, prepared)
    return SweepResult(folder.root, summary, len(todo), dashboard)


def _run_on(
    client,
    spec: SweepSpec,
    prepared: list[PreparedCase],
    todo: list[Sample],
    folder: SweepFolder,
    total: int,
    progress: SweepProgress | None,
) -> None:
    """Submit the samples, store each result as it arrives."""
    from concurrent.futures import CancelledError  # noqa: PLC0415

    from distributed import as_completed  # noqa: PLC0415
    from distributed.scheduler import KilledWorker  # noqa: PLC0415

    on_workers = [client.scatter(p, broadcast=True, hash=False) for p in prepared]
    protocols = [[ph.model_dump() for ph in o.phases] for o in spec.vary.protocols or []]
    run_id = uuid.uuid4().hex[:8]  # keys unique on a shared scheduler, rerun or not
    futures = {}
    for sample in todo:
        protocol = protocols[sample.protocol_index] if protocols else None
        future = client.submit(
            run_and_encode,
            on_workers[sample.case_index],
            list(spec.vary.parameters),
            protocol,
            sample,
            key=f"cryoplan-{spec.name}-{sample.key}-{run_id}",
            pure=False,
        )
        futures[future] = sample
    stored = total - len(todo)
    for future in as_completed(futures):
        sample = futures.pop(future)
        try:
            result = future.result()
        except KilledWorker as exc:
            # not the sample's own doing, perhaps: recorded, and run again by a rerun
            reason = f"killed the workers that ran it ({exc})"
            result = SampleResult(sample.key, {}, None, None, reason, retry=True)
        except CancelledError:
            raise CaseError(
                str(folder.root), "--out", "a cluster that keeps the prepared cases (the workers "
                "holding them went away); the samples stored stand: rerun to resume",
            ) from None  # fmt: skip
        try:
            folder.store(result)
        except OSError as exc:
            raise CaseError(
                str(folder.root), "--out",
                f"room to store the samples ({exc.strerror}); those stored stand: rerun to resume",
            ) from None  # fmt: skip
        future.release()
        stored += 1
        if progress:
            progress(stored, total, result)
