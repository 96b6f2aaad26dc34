"""A sweep on Dask against a bare loop of the same runs, and 2 workers × 1 thread against
1 worker × 2 threads.

    .venv/bin/python benchmarks/bench_sweep.py [--samples 24] [--spacing 2.0] [--freeze 10]

The case is examples/sweep/phantom-tumour.yaml (the liver phantom, three probes) at
`--spacing`, one freeze of `--freeze` minutes; every sample moves the probes (σ 3 mm across,
2 mm along) and scales the liver's perfusion (×0.5–1.5), as examples/sweep/ does. Measured
in the same run, in this order:

- loop: in this process, `--samples` calls of `sweep.worker.run_sample` (vary the case,
  prepare it on the anatomy, `Simulator.run`, the metrics), the solver on all CPUs: the
  baseline, the same work with no Dask and no storage;
- run: the same loop with only `Simulator.run` timed (the bare solves: what a loop of `run`
  calls costs without the variant's preparation, the metrics and the storage);
- 1x2: `run_sweep` on a LocalCluster of 1 worker with all CPUs' threads;
- 2x1: `run_sweep` on 2 workers × 1 thread.

For each sweep: the start (spec, cases, prepare, cluster up and warm: until the dashboard
is announced), the samples (from then to the last one stored), the results (table, maps,
summary) and the whole, and the overhead per sample against the loop: samples ÷ loop − 1
(the fixed start and results not counted) and whole ÷ loop − 1 (all counted).
Nothing is asserted: the figures are measured on demand (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def write_inputs(folder: Path, samples: int, spacing_mm: float, freeze_min: float) -> Path:
    case = yaml.safe_load((REPO / "examples/sweep/phantom-tumour.yaml").read_text("utf-8"))
    case["grid"]["spacing_mm"] = spacing_mm
    case["protocol"] = [{"phase": "freeze", "duration_min": freeze_min}]
    (folder / "case.yaml").write_text(yaml.safe_dump(case), "utf-8")
    spec = yaml.safe_load((REPO / "examples/sweep/phantom-robustness.yaml").read_text("utf-8"))
    spec["cases"] = ["case.yaml"]
    spec["samples"] = samples
    del spec["vary"]["protocols"]  # the case's own protocol
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec), "utf-8")
    return path


def loop(spec_file: Path) -> dict[str, float]:
    """The baseline: the samples' work in this process, one after another."""
    import cryoplan  # noqa: PLC0415
    from cryoplan.preparation import prepare_on  # noqa: PLC0415
    from cryoplan.sweep.samples import samples_of  # noqa: PLC0415
    from cryoplan.sweep.spec import case_paths, load_sweep_spec  # noqa: PLC0415
    from cryoplan.sweep.worker import run_sample, variant_case  # noqa: PLC0415

    spec = load_sweep_spec(spec_file)
    case = cryoplan.load_case(case_paths(spec, spec_file)[0])
    prepared = cryoplan.prepare(case)
    samples = samples_of(spec, [case])
    parameters = list(spec.vary.parameters)
    run_sample(prepared, parameters, None, samples[0])  # kernels loaded, caches warm
    t0 = time.perf_counter()
    for sample in samples:
        result = run_sample(prepared, parameters, None, sample)
        assert result.error is None, result.error
    whole = time.perf_counter() - t0
    solve = 0.0
    for sample in samples:
        varied = prepare_on(variant_case(case, parameters, dict(sample.factors)),
                            prepared.tissue_map)  # fmt: skip
        t = time.perf_counter()
        cryoplan.Simulator(varied).run(probes=sample.probes(case))
        solve += time.perf_counter() - t
    return {"loop_s": whole, "run_only_s": solve}


def sweep(spec_file: Path, out: Path, workers: int) -> dict[str, float]:
    from cryoplan.sweep import run_sweep  # noqa: PLC0415

    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    def started(_dashboard) -> None:
        marks["started"] = time.perf_counter() - t0

    def progress(stored: int, total: int, _result) -> None:
        if stored == total:
            marks["stored"] = time.perf_counter() - t0

    shutil.rmtree(out, ignore_errors=True)
    result = run_sweep(spec_file, out, workers=workers, progress=progress, on_start=started)
    whole = time.perf_counter() - t0
    assert not result.summary["failed"], result.summary["failed"]
    return {
        "start_s": marks["started"],
        "samples_s": marks["stored"] - marks["started"],
        "results_s": whole - marks["stored"],
        "whole_s": whole,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--spacing", type=float, default=2.0)
    parser.add_argument("--freeze", type=float, default=10.0)
    args = parser.parse_args()
    os.environ.pop("CRYOPLAN_THREADS", None)  # the loop on all CPUs, as a user's run
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        folder = Path(tmp)
        spec = write_inputs(folder, args.samples, args.spacing, args.freeze)
        base = loop(spec)
        runs = {
            "1x2": sweep(spec, folder / "one", workers=1),
            "2x1": sweep(spec, folder / "two", workers=2),
        }
    n = args.samples
    print(f"{n} samples, {args.spacing:g} mm, {args.freeze:g}-min freeze")
    per_sample = base["loop_s"] / n
    print(f"loop (run_sample, all CPUs): {base['loop_s']:.1f} s = {per_sample:.3f} s/sample; "
          f"of it Simulator.run {base['run_only_s']:.1f} s")  # fmt: skip
    for name, r in runs.items():
        r["overhead_samples"] = r["samples_s"] / base["loop_s"] - 1
        r["overhead_whole"] = r["whole_s"] / base["loop_s"] - 1
        r["over_run_only"] = r["samples_s"] / base["run_only_s"] - 1
        print(
            f"{name}: start {r['start_s']:.1f} s, samples {r['samples_s']:.1f} s "
            f"({r['samples_s'] / n:.3f} s/sample), results {r['results_s']:.1f} s, "
            f"whole {r['whole_s']:.1f} s; overhead against the loop: samples "
            f"{100 * r['overhead_samples']:+.0f} %, whole {100 * r['overhead_whole']:+.0f} %; "
            f"samples against Simulator.run alone {100 * r['over_run_only']:+.0f} %"
        )
    ratio = runs["2x1"]["samples_s"] / runs["1x2"]["samples_s"]
    print(f"2 workers × 1 thread against 1 worker × 2 threads (samples): {ratio:.2f}×")
    RESULTS.mkdir(exist_ok=True)
    record = {"samples": n, "spacing_mm": args.spacing, "freeze_min": args.freeze,
              "loop": base, "sweeps": runs, "ratio_2x1_over_1x2": ratio}  # fmt: skip
    (RESULTS / "bench_sweep.json").write_text(json.dumps(record, indent=1) + "\n", "utf-8")


if __name__ == "__main__":
    main()
