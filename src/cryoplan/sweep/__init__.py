"""Sweeps: many runs of one or more cases on a Dask cluster (docs/sweep.md).

The data flow:

    sweep file ──spec.load_sweep_spec──▶ SweepSpec
    SweepSpec + cases ──samples.samples_of──▶ [Sample]      (seed and number alone)
    Sample ──worker.run_sample (on a Dask worker)──▶ SampleResult
    SampleResult ──folder.SweepFolder.store──▶ DIR/samples/<key>.npz   (as each finishes)
    stored samples ──aggregate.aggregate──▶ samples.parquet, maps/, sensitivity.json,
                                             summary.json, summary.html

`runner.run_sweep` drives it: `cryoplan sweep SPEC --out DIR` from the command line.
"""

from cryoplan.sweep.runner import SweepResult, run_sweep
from cryoplan.sweep.spec import SweepSpec, load_sweep_spec

__all__ = ["SweepResult", "SweepSpec", "load_sweep_spec", "run_sweep"]
