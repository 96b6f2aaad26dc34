"""Reference cases S, M, L of issue #5: wall time, throughput, memory, roofline, peers.

    .venv/bin/python benchmarks/bench_cases.py M              # one case, the fast path
    .venv/bin/python benchmarks/bench_cases.py M --reference  # … and the reference path
    .venv/bin/python benchmarks/bench_cases.py M --peers 60   # … and the peers on 60 s
    .venv/bin/python benchmarks/bench_cases.py all            # S, M, L, fast path
    .venv/bin/python benchmarks/bench_cases.py L --window 120 # the first 2 minutes only
    (or: make bench-cases)

Every case runs in a child process of its own, so that its peak memory (ru_maxrss) is its
own; the STREAM-style triad that gives the machine's bandwidth is measured in the same run.

Figures (written to benchmarks/results/case-<name>.json and printed):
- wall time of the solve (the whole protocol) and of discretising the case;
- voxel updates per second: *reference-equivalent* (voxels × reference steps / wall: what
  the reference scheme would have had to do) and *actual* (updates the back end did);
- bytes per voxel update that the kernels must move (counted below), the resulting
  bandwidth, and its fraction of the triad bandwidth (the roofline);
- peak memory of the case (VmHWM reset after the warm-up), and memory per voxel: (peak − the
  process before the case was built) / voxels;
- with --reference: the reference back end on the same case, the ratio, and the largest
  distance between the two solutions' T_min isotherms (0, −20, −40 °C);
- with --peers T: the vectorised NumPy and FiPy versions of the same model (benchmarks/
  peers) on the first T seconds of the protocol, against both cryoplan back ends on the same
  window: wall ratios and isotherm distances. A peer's cost per step does not depend on the
  state (both update every voxel every step), so its full-protocol time is its window time ×
  protocol/window; cryoplan's full-protocol time is measured, not extrapolated.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import numpy as np

import cryoplan
from cryoplan.discretise import discretise
from cryoplan.thermal import solve, stable_time_step_s
from cryoplan.thermal.backend import CpuExplicitBackend
from cryoplan.thermal.multirate import CpuMultirateBackend

REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "benchmarks" / "cases"
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(REPO / "benchmarks"))
from peers.common import truncated  # noqa: E402  (benchmarks/ is not a package)
from peers.compare import isotherm_distance_mm, spacing_mm_of  # noqa: E402
from peers.numpy_enthalpy import solve_numpy  # noqa: E402

# Bytes the kernels must move per voxel update (neighbours' values come from cache):
# advance_enthalpy reads H, Φ (2 × 8), material, fixed, uniform, destroyed (4 × 1), writes
# H (8); refresh_from_enthalpy reads H (8), T_min (4, float32), material, fixed, destroyed,
# frozen, cycles (5 × 1) and writes Φ (8) and T_min (4); flags are written only when they
# change. T is derived from H, not stored (73 bytes while it was).
BYTES_PER_UPDATE = (2 * 8 + 4 + 8) + (8 + 4 + 5 + 8 + 4)


def triad_bandwidth_gb_s(repeat: int = 5) -> float:
    """STREAM triad a = b + s·c on 3 × 160 MB arrays, counting the bytes NumPy really moves."""
    n = 20_000_000
    b, c = np.random.default_rng(0).random((2, n))
    a = np.empty(n)
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.multiply(c, 3.0, out=a)
        np.add(a, b, out=a)
        best = min(best, time.perf_counter() - t0)
    return 5 * 8 * n / best / 1e9  # read c, write a, read a, read b, write a


def _rss_mb() -> float:
    """Peak resident memory [MB] since the last `_reset_peak()` (VmHWM), or of the process."""
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Start the peak-memory count afresh (Linux: writing 5 to clear_refs resets VmHWM), so
    that compiling the kernels and the warm-up run do not count towards the case."""
    with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
        f.write("5")


def _current_rss_mb() -> float:
    with open("/proc/self/statm", encoding="utf-8") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _isotherms(a: np.ndarray, b: np.ndarray, spacing_m: tuple[float, ...]) -> dict[str, float]:
    d = isotherm_distance_mm(a, b, spacing_mm_of(spacing_m))
    return {f"{level:g}C": float(v) for level, v in d.items()}


def run_case(name: str, backend: str, window_s: float | None, queue: mp.Queue) -> None:
    """In a child process: build the case, warm the kernels on a tiny problem, solve, report."""
    factory = {"multirate": CpuMultirateBackend, "reference": CpuExplicitBackend}[backend]
    case = cryoplan.load_case(CASES / f"{name}.yaml")
    # compile (or load the cache) before measuring: a 2 mm copy of the case for 2 s
    warm = discretise(
        case.model_copy(update={"grid": case.grid.model_copy(update={"spacing_mm": 4.0})})
    )
    solve(truncated(warm.problem, 2.0), warm.plan, backend_factory=factory)
    rss_before_mb = _current_rss_mb()
    _reset_peak()
    t0 = time.perf_counter()
    d = discretise(case)
    discretise_s = time.perf_counter() - t0
    problem = truncated(d.problem, window_s) if window_s else d.problem
    holder: dict[str, object] = {}

    def make(p):  # keep the back end to read its update count
        holder["backend"] = factory(p)
        return holder["backend"]

    history = solve(problem, d.plan, backend_factory=make)
    voxels = int(np.prod(problem.shape))
    reference_steps = problem.duration_s / stable_time_step_s(problem)
    back = holder["backend"]
    actual = getattr(back, "voxel_updates", voxels * history.n_steps)
    np.save(
        RESULTS / f".tmin-{name}-{backend}-{window_s or 'full'}.npy", history.minimum_temperature_c
    )
    queue.put(
        {
            "case": name,
            "backend": backend,
            "voxels": voxels,
            "simulated_s": problem.duration_s,
            "discretise_s": discretise_s,
            "wall_time_s": history.wall_time_s,
            "steps": history.n_steps,
            "reference_equivalent_updates": reference_steps * voxels,
            "actual_updates": int(actual),
            "reference_equivalent_updates_per_s": reference_steps * voxels / history.wall_time_s,
            "actual_updates_per_s": actual / history.wall_time_s,
            "peak_rss_mb": _rss_mb(),
            "rss_before_case_mb": rss_before_mb,
            "bytes_per_voxel": (_rss_mb() - rss_before_mb) * 2**20 / voxels,
            "ledger_relative_error": history.ledger.relative_error,
            "ledger": {k: float(v) for k, v in history.ledger.as_dict().items()},
            "spacing_m": list(problem.spacing_m),
        }
    )


def run_peer(name: str, peer: str, window_s: float, queue: mp.Queue) -> None:
    """In a child process: one peer on the first window_s seconds of a case."""
    d = discretise(cryoplan.load_case(CASES / f"{name}.yaml"))
    problem = truncated(d.problem, window_s)
    if peer == "numpy":
        result = solve_numpy(problem)
    else:  # FiPy is an optional benchmark dependency (pyproject: [bench])
        from peers.fipy_enthalpy import solve_fipy  # noqa: PLC0415

        result = solve_fipy(problem, dt_s=1.0)
    np.save(RESULTS / f".tmin-{name}-{peer}-{window_s}.npy", result.minimum_temperature_c)
    queue.put(
        {
            "peer": peer,
            "wall_time_s": result.wall_time_s,
            "steps": result.n_steps,
            "time_step_s": result.time_step_s,
            "peak_rss_mb": _rss_mb(),
            "ledger_relative_error": result.ledger_relative_error,
        }
    )


def in_child(target, *args) -> dict:
    queue: mp.Queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=target, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=["S", "M", "L", "all"])
    parser.add_argument("--reference", action="store_true", help="also the reference back end")
    parser.add_argument("--peers", type=float, metavar="SECONDS", help="peers on this window")
    parser.add_argument(
        "--window", type=float, metavar="SECONDS", help="the fast path on the first SECONDS only"
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    bandwidth = triad_bandwidth_gb_s()
    print(f"memory bandwidth (NumPy triad): {bandwidth:.1f} GB/s")
    for name in ["S", "M", "L"] if args.case == "all" else [args.case]:
        out: dict = {"triad_bandwidth_gb_s": bandwidth, "bytes_per_update": BYTES_PER_UPDATE}
        fast = in_child(run_case, name, "multirate", args.window)
        out["fast"] = fast
        kernel_gb_s = fast["actual_updates_per_s"] * BYTES_PER_UPDATE / 1e9
        out["fast"]["kernel_bandwidth_gb_s"] = kernel_gb_s
        out["fast"]["roofline_fraction"] = kernel_gb_s / bandwidth
        print(
            f"{name}: {fast['voxels']:,} voxels, {fast['simulated_s'] / 60:.0f} min simulated: "
            f"{fast['wall_time_s']:.1f} s wall ({fast['simulated_s'] / fast['wall_time_s']:.0f}× "
            f"real time), discretise {fast['discretise_s']:.1f} s; "
            f"{fast['reference_equivalent_updates_per_s'] / 1e6:.0f} M reference-equivalent / "
            f"{fast['actual_updates_per_s'] / 1e6:.0f} M actual updates/s = "
            f"{kernel_gb_s:.1f} GB/s ({100 * kernel_gb_s / bandwidth:.0f} % of the triad); "
            f"peak {fast['peak_rss_mb']:.0f} MB, {fast['bytes_per_voxel']:.0f} B/voxel; "
            f"ledger {fast['ledger_relative_error']:.1e}"
        )
        if args.reference:
            ref = in_child(run_case, name, "reference", args.window)
            out["reference"] = ref
            out["fast_vs_reference"] = ref["wall_time_s"] / fast["wall_time_s"]
            out["isotherm_distance_mm"] = _isotherms(
                np.load(RESULTS / f".tmin-{name}-multirate-{args.window or 'full'}.npy"),
                np.load(RESULTS / f".tmin-{name}-reference-{args.window or 'full'}.npy"),
                tuple(fast["spacing_m"]),
            )
            print(
                f"   reference: {ref['wall_time_s']:.1f} s wall → fast path "
                f"{out['fast_vs_reference']:.1f}× faster; isotherms differ by at most "
                f"{out['isotherm_distance_mm']} mm; peak {ref['peak_rss_mb']:.0f} MB"
            )
        if args.peers:
            window = args.peers
            out["window_s"] = window
            scale = fast["simulated_s"] / window
            mine = {b: in_child(run_case, name, b, window) for b in ("multirate", "reference")}
            out["window"] = mine
            for peer in ("numpy", "fipy"):
                res = in_child(run_peer, name, peer, window)
                res["isotherm_distance_mm_vs_reference"] = _isotherms(
                    np.load(RESULTS / f".tmin-{name}-{peer}-{window}.npy"),
                    np.load(RESULTS / f".tmin-{name}-reference-{window}.npy"),
                    tuple(fast["spacing_m"]),
                )
                res["full_protocol_wall_s_extrapolated"] = res["wall_time_s"] * scale
                res["fast_full_vs_peer_full"] = (
                    res["full_protocol_wall_s_extrapolated"] / fast["wall_time_s"]
                )
                res["reference_window_vs_peer_window"] = (
                    res["wall_time_s"] / mine["reference"]["wall_time_s"]
                )
                out[peer] = res
                print(
                    f"   {peer}: {res['wall_time_s']:.1f} s on the first {window:g} s "
                    f"(reference path {mine['reference']['wall_time_s']:.2f} s, fast path "
                    f"{mine['multirate']['wall_time_s']:.2f} s) → whole protocol ≈ "
                    f"{res['full_protocol_wall_s_extrapolated']:.0f} s; the fast path is "
                    f"{res['fast_full_vs_peer_full']:.0f}× faster; isotherms vs reference "
                    f"{res['isotherm_distance_mm_vs_reference']} mm"
                )
        (RESULTS / f"case-{name}.json").write_text(json.dumps(out, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
