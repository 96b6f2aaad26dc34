"""Solver throughput and the three-probe example's wall time, against baselines of the same run.

    .venv/bin/python benchmarks/bench_solver.py [--repeat N]   (or: make bench)

These machines are noisy, so every figure is reported beside baselines measured in the same
run on the same grid:
- a STREAM-style triad a = b + s·c in NumPy (memory bandwidth, GB/s);
- a vectorised NumPy 7-point explicit diffusion step (the simplest stencil a user would write).
The solver's throughput is given in voxel-updates per second and as ratios to both, and as
a fraction of the bandwidth roofline: updates/s × the bytes a voxel update must move
(`bench_cases.BYTES_PER_UPDATE`) against the triad.
Nothing here is asserted: performance is measured on demand, not in the test suite.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numba
import numpy as np
from bench_cases import BYTES_PER_UPDATE  # benchmarks/ is on the path when run as a script

import cryoplan
from cryoplan.thermal import RecordingPlan, Segment, ThermalProblem, solve
from cryoplan.thermal.materials import MaterialRow, material_table

REPO = Path(__file__).resolve().parent.parent
THREE_PROBE = REPO / "examples" / "three-probe-liver.yaml"
GRID_N = 100  # 100³ = 1 M voxels: larger than the caches, like a clinical domain at 1 mm


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def triad_bandwidth_gb_s(repeat: int) -> float:
    """STREAM triad a = b + s·c on 3 × 160 MB arrays (24 bytes moved per element)."""
    n = 20_000_000
    b, c = np.random.default_rng(0).random((2, n))
    a = np.empty(n)

    def triad() -> None:
        np.multiply(c, 3.0, out=a)
        np.add(a, b, out=a)  # two passes in NumPy: count the bytes NumPy really moves

    seconds = best_of(repeat, triad)
    return 5 * 8 * n / seconds / 1e9  # read c, write a, read a, read b, write a


def numpy_stencil_updates_per_s(repeat: int, steps: int = 10) -> float:
    """Vectorised explicit 7-point diffusion step on GRID_N³ (constant properties)."""
    n = GRID_N
    t = np.full((n + 2, n + 2, n + 2), 37.0)
    t[n // 2, n // 2, n // 2] = -150.0
    r = 0.1

    def run() -> None:
        for _ in range(steps):
            c = t[1:-1, 1:-1, 1:-1]
            lap = (
                t[:-2, 1:-1, 1:-1] + t[2:, 1:-1, 1:-1] + t[1:-1, :-2, 1:-1]
                + t[1:-1, 2:, 1:-1] + t[1:-1, 1:-1, :-2] + t[1:-1, 1:-1, 2:] - 6.0 * c
            )  # fmt: skip
            c += r * lap

    return steps * n**3 / best_of(repeat, run)


def solver_updates_per_s(repeat: int, steps: int = 100) -> tuple[float, float]:
    """cryoplan's kernel on GRID_N³ perfused tissue (no probes): updates/s and step length."""
    n = GRID_N
    shape = (n, n, n)
    row = MaterialRow(2.0, 0.5, 1.8e6, 3.6e6, 2.5e8, -8, -1, 0.0005 * 3.6e6, 4200, -40)

    def problem(end_s: float) -> ThermalProblem:
        return ThermalProblem(
            spacing_m=(1e-3,) * 3,
            material=np.zeros(shape, np.uint8),
            properties=material_table([row]),
            initial_temperature_c=np.full(shape, 37.0),
            fixed=np.zeros(shape, bool),
            boundary_kind=(1,) * 6,
            boundary_temperature_c=(37.0,) * 6,
            blood_temperature_c=37.0,
            schedule=(Segment(0.0, end_s, ()),),
        )

    warm = solve(problem(1e-3), RecordingPlan(sensor_interval_s=0))  # compile, find Δt
    end = steps * warm.max_time_step_s
    seconds = best_of(repeat, lambda: solve(problem(end), RecordingPlan(sensor_interval_s=0)))
    return steps * n**3 / seconds, warm.max_time_step_s


def three_probe_example(repeat: int) -> dict[str, float]:
    case = cryoplan.load_case(THREE_PROBE)
    cryoplan.simulate(case)  # warm (compiled kernels are cached on disk after the first run)
    runs = [cryoplan.simulate(case).summary()["timing"] for _ in range(repeat)]
    wall = [r["wall_time_s"] for r in runs]
    return {
        "wall_time_s": min(wall),
        "wall_time_s_median": statistics.median(wall),
        "simulated_s": runs[0]["simulated_s"],
        "voxels": runs[0]["voxels"],
        "steps": runs[0]["steps"],
        "voxel_updates_per_s": max(r["voxel_updates_per_s"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="best of N (default 3)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "solver.json")
    args = parser.parse_args()

    bandwidth = triad_bandwidth_gb_s(args.repeat)
    stencil = numpy_stencil_updates_per_s(args.repeat)
    solver, dt = solver_updates_per_s(args.repeat)
    example = three_probe_example(args.repeat)
    result = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "numba_threads": numba.config.NUMBA_NUM_THREADS,
            "triad_bandwidth_gb_s": bandwidth,
        },
        "baseline_numpy_7pt_stencil_updates_per_s": stencil,
        "solver_updates_per_s": solver,
        "solver_stable_step_s_at_1mm": dt,
        "solver_vs_numpy_stencil": solver / stencil,
        "bytes_per_update": BYTES_PER_UPDATE,
        "solver_fraction_of_triad": solver * BYTES_PER_UPDATE / 1e9 / bandwidth,
        "three_probe_example": example,
        "three_probe_faster_than_real_time": example["simulated_s"] / example["wall_time_s"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"memory bandwidth (NumPy triad)      {bandwidth:8.1f} GB/s")
    print(f"NumPy 7-point stencil (baseline)    {stencil / 1e6:8.1f} M voxel-updates/s")
    print(
        f"cryoplan kernel, {GRID_N}³ perfused     {solver / 1e6:8.1f} M voxel-updates/s "
        f"({solver / stencil:.2f}× the NumPy stencil, which has no phase change or perfusion)"
    )
    print(
        f"  × {BYTES_PER_UPDATE} B/update = {solver * BYTES_PER_UPDATE / 1e9:.1f} GB/s = "
        f"{result['solver_fraction_of_triad']:.0%} of the triad (the roofline)"
    )
    print(
        f"three-probe example ({example['voxels']} voxels, {example['simulated_s'] / 60:.0f} min): "
        f"{example['wall_time_s']:.2f} s wall (median {example['wall_time_s_median']:.2f} s), "
        f"{result['three_probe_faster_than_real_time']:.0f}× faster than real time"
    )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
