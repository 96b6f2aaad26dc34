"""Prepare once, run many: the time per `Simulator.run` with the probes moved, how much of
it is set-up, and the peak memory of one prepared case with two runs at once.

    .venv/bin/python benchmarks/bench_runs.py [--case examples/ct-liver-ivc.yaml] [--runs 100]
        [--move-mm 5] [--seed 0]

- **Runs**: the case is prepared once (anatomy, tissues, basal state), one run warms the
  kernels, then `--runs` runs each move every probe (tip and entry together) by a random
  vector of length ≤ `--move-mm` (seeded). Per call: the whole `run` (wall), the set-up
  (validating and placing the probes, the coupling and schedule, the back end's set-up:
  everything but the time steps) and the time steps; the set-up's share of the call.
  Baseline of the same run: `simulate(case)`, the one-shot path that prepares every time.
- **Memory**: in a fresh child process, the resident set after preparing, and its peak
  (VmHWM) while two runs of that prepared case go at once in two threads (the kernels
  release the GIL), per voxel of the grid.

Results in benchmarks/results/runs.json. Nothing is asserted: measured on demand.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def moved_probes(case, rng: np.random.Generator, move_mm: float) -> list[dict]:
    """The case's probes, each shifted by a random vector of length ≤ move_mm."""
    out = []
    for p in case.probes:
        direction = rng.normal(size=3)
        shift = direction / np.linalg.norm(direction) * move_mm * rng.uniform() ** (1 / 3)
        spec = p.model_dump(exclude_none=True)
        spec["tip_mm"] = (np.asarray(p.tip_mm) + shift).tolist()
        spec["entry_mm"] = (np.asarray(p.entry_mm) + shift).tolist()
        out.append(spec)
    return out


def time_runs(case_path: Path, runs: int, move_mm: float, seed: int) -> dict:
    import cryoplan  # noqa: PLC0415
    from cryoplan.simulator import Simulator  # noqa: PLC0415

    case = cryoplan.load_case(case_path)
    t0 = time.perf_counter()
    prepared = cryoplan.prepare(case)
    prepare_s = time.perf_counter() - t0
    simulator = Simulator(prepared)
    simulator.run()  # compile or load the kernels, warm the caches
    t0 = time.perf_counter()
    cryoplan.simulate(case)
    one_shot_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    calls, setups, steps = [], [], []
    for _ in range(runs):
        probes = moved_probes(case, rng, move_mm)
        t0 = time.perf_counter()
        run = simulator.run(probes=probes)
        call = time.perf_counter() - t0
        h = run.history
        stepping = h.wall_time_s - h.setup_time_s
        calls.append(call)
        steps.append(stepping)
        setups.append(call - stepping)
    return {
        "case": str(case_path),
        "voxels": int(np.prod(prepared.grid.shape)),
        "prepare_s": prepare_s,
        "one_shot_simulate_s": one_shot_s,
        "runs": runs,
        "move_mm": move_mm,
        "call_s_mean": statistics.mean(calls),
        "call_s_median": statistics.median(calls),
        "setup_s_mean": statistics.mean(setups),
        "setup_s_max": max(setups),
        "steps_s_mean": statistics.mean(steps),
        "setup_fraction_mean": statistics.mean(s / c for s, c in zip(setups, calls, strict=True)),
    }


def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_two_runs(case_path: str, queue) -> None:
    """In a child: RSS after preparing, and the peak with two runs at once in threads."""
    import cryoplan  # noqa: PLC0415
    from cryoplan.simulator import Simulator  # noqa: PLC0415

    case = cryoplan.load_case(case_path)
    prepared = cryoplan.prepare(case)
    simulator = Simulator(prepared)
    simulator.run()  # compile or load the kernels
    with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
        f.write("5")  # reset VmHWM: the peak from here on
    prepared_mb = _status_mb("VmRSS")
    rng = np.random.default_rng(1)
    plans = [moved_probes(case, rng, 2.0) for _ in range(2)]
    t0 = time.perf_counter()
    threads = [threading.Thread(target=simulator.run, kwargs={"probes": p}) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    both_s = time.perf_counter() - t0
    queue.put(
        {
            "voxels": int(np.prod(prepared.grid.shape)),
            "rss_prepared_mb": prepared_mb,
            "peak_two_runs_mb": _status_mb("VmHWM"),
            "two_runs_wall_s": both_s,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, default=REPO / "examples" / "ct-liver-ivc.yaml")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--move-mm", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = time_runs(args.case, args.runs, args.move_mm, args.seed)
    print(
        f"{result['case']}: {result['voxels']:,} voxels; prepare {result['prepare_s']:.2f} s once; "
        f"{result['runs']} runs with probes moved ≤ {result['move_mm']:g} mm: "
        f"{result['call_s_mean']:.2f} s a call (median {result['call_s_median']:.2f} s), "
        f"set-up {result['setup_s_mean'] * 1e3:.0f} ms (max {result['setup_s_max'] * 1e3:.0f} ms) "
        f"= {100 * result['setup_fraction_mean']:.1f} % of a call; one-shot simulate(case) "
        f"{result['one_shot_simulate_s']:.2f} s"
    )
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=memory_two_runs, args=(str(args.case), queue))
    child.start()
    memory = queue.get()
    child.join()
    per_voxel = (memory["peak_two_runs_mb"] - memory["rss_prepared_mb"]) * 2**20 / memory["voxels"]
    memory["bytes_per_voxel_per_run"] = per_voxel / 2
    result["memory"] = memory
    print(
        f"memory: {memory['rss_prepared_mb']:.0f} MB prepared, peak "
        f"{memory['peak_two_runs_mb']:.0f} MB with two runs at once in threads "
        f"({memory['two_runs_wall_s']:.1f} s for both): "
        f"{memory['bytes_per_voxel_per_run']:.0f} B/voxel a run above the prepared case"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "runs.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
