"""The solver when the cores are shared: case M alone, two at once, beside a busy process.

    .venv/bin/python benchmarks/bench_shared_cores.py [--case M] [--window SECONDS]
        [--policy default|passive|spin:N] [--threads N]
    .venv/bin/python benchmarks/bench_shared_cores.py --rounds 3 \
        --variant passive:OMP_WAIT_POLICY=passive --variant one:CRYOPLAN_THREADS=1

Each solve runs in a child process of its own (spawned, so that the wait policy and thread
count are read afresh when numba starts its threads), compiled or loaded from the cache on
a coarse copy of the case first, then prepared, and released at the same moment as the
other solve of its scenario. Scenarios, all in the same run and against the first:

- solo: one solve, nothing else running;
- pair: two identical solves at once (a server's two jobs, two sweep workers);
- busy: one solve beside a single-threaded NumPy loop (a viewer, a test runner).

The figure of each is the solve's wall time [s] (the longest of the pair) and its ratio to
solo. Policies: `default` is libgomp's own (threads spin ~3 ms before sleeping), `passive`
is cryoplan's default (OMP_WAIT_POLICY=passive), `spin:N` sets GOMP_SPINCOUNT=N. (For
`default` the variable is set empty so that cryoplan leaves it alone; libgomp warns that the
value is invalid and keeps its default.)
Nothing here is asserted: it is measured on demand (benchmarks/README.md has the figures).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "benchmarks" / "cases"
RESULTS = REPO / "benchmarks" / "results"


def solve_case(name: str, window_s: float | None, ready, out) -> None:
    """In a child: warm, prepare, meet the others at `ready`, solve; put the solve's wall
    time."""
    import cryoplan  # noqa: PLC0415  (after the environment is set)
    from cryoplan.simulator import Simulator  # noqa: PLC0415

    case = cryoplan.load_case(CASES / f"{name}.yaml")
    coarse = case.model_copy(update={"grid": case.grid.model_copy(update={"spacing_mm": 4.0})})
    Simulator(cryoplan.prepare(coarse)).run()  # compile or load the kernels
    simulator = Simulator(cryoplan.prepare(case))
    protocol = None
    if window_s:
        protocol = [{"phase": "freeze", "duration_s": window_s}]
    ready.wait()
    t0 = time.perf_counter()
    run = simulator.run(protocol=protocol)
    out.put({"wall_s": time.perf_counter() - t0, "solver_wall_s": run.history.wall_time_s})


def busy_numpy(stop) -> None:
    """In a child: single-threaded NumPy arithmetic until told to stop."""
    import numpy as np  # noqa: PLC0415

    a = np.random.default_rng(0).random(2_000_000)
    b = np.empty_like(a)
    while not stop.is_set():
        np.multiply(a, 1.000001, out=b)
        np.add(b, a, out=a)
        a *= 0.5


def scenario(name: str, window_s: float | None, solves: int, busy: bool) -> float:
    """Wall time [s] of the slowest of `solves` simultaneous solves (beside a busy loop)."""
    ctx = mp.get_context("spawn")
    ready, stop, out = ctx.Barrier(solves + 1), ctx.Event(), ctx.Queue()
    children = [
        ctx.Process(target=solve_case, args=(name, window_s, ready, out)) for _ in range(solves)
    ]
    for c in children:
        c.start()
    load = ctx.Process(target=busy_numpy, args=(stop,)) if busy else None
    if load is not None:
        load.start()
    ready.wait()  # every solver has prepared (the loop has long reached speed): go
    walls = [out.get()["wall_s"] for _ in children]
    stop.set()
    for c in children:
        c.join()
    if load is not None:
        load.join()
    return max(walls)


def _set_environment(env: dict[str, str | None]) -> None:
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def compare_solo(name: str, window_s: float | None, variants: list[str], rounds: int) -> None:
    """Solo solves of several variants (NAME:VAR=VALUE,…) in alternation, `rounds` times,
    so that the machine's drift over the run hits all of them alike: the best of each."""
    parsed = {}
    for spec in variants:
        label, _, assignments = spec.partition(":")
        parsed[label] = dict(a.split("=", 1) for a in assignments.split(",") if a)
    keys = {k for env in parsed.values() for k in env}
    best = dict.fromkeys(parsed, float("inf"))
    saved = {k: os.environ.get(k) for k in keys}
    for _ in range(rounds):
        for label, env in parsed.items():
            _set_environment({k: env.get(k) for k in keys})
            best[label] = min(best[label], scenario(name, window_s, 1, busy=False))
    _set_environment(saved)
    first = next(iter(best.values()))
    for label, wall in best.items():
        print(f"{name} solo {label}: {wall:.1f} s ({wall / first:.2f}× {next(iter(best))})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="M")
    parser.add_argument("--window", type=float, help="only the first SECONDS of one freeze")
    parser.add_argument("--policy", default="passive", help="default | passive | spin:N")
    parser.add_argument("--threads", type=int, help="CRYOPLAN_THREADS for the solves")
    parser.add_argument(
        "--variant", action="append", help="NAME:VAR=VALUE,… solo runs to compare (repeatable)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternations of --variant runs")
    args = parser.parse_args()
    if args.variant:
        compare_solo(args.case, args.window, args.variant, args.rounds)
        return
    env: dict[str, str | None] = {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None}
    if args.policy == "passive":
        env["OMP_WAIT_POLICY"] = "passive"
    elif args.policy.startswith("spin:"):
        env["OMP_WAIT_POLICY"] = "active"  # so that cryoplan does not set passive
        env["GOMP_SPINCOUNT"] = args.policy.split(":", 1)[1]
    elif args.policy == "default":
        env["OMP_WAIT_POLICY"] = ""  # set but empty: libgomp's default, cryoplan leaves it
    if args.threads:
        env["CRYOPLAN_THREADS"] = str(args.threads)
    _set_environment(env)
    results = {"case": args.case, "window_s": args.window, "policy": args.policy,
               "threads": args.threads}  # fmt: skip
    solo = scenario(args.case, args.window, 1, busy=False)
    pair = scenario(args.case, args.window, 2, busy=False)
    busy = scenario(args.case, args.window, 1, busy=True)
    results |= {"solo_s": solo, "pair_s": pair, "busy_s": busy,
                "pair_over_solo": pair / solo, "busy_over_solo": busy / solo}  # fmt: skip
    print(
        f"{args.case} policy={args.policy} threads={args.threads or 'auto'}: solo {solo:.1f} s, "
        f"two at once {pair:.1f} s ({pair / solo:.2f}× solo), beside a busy NumPy loop "
        f"{busy:.1f} s ({busy / solo:.2f}× solo)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = f"{args.case}-{args.policy.replace(':', '')}-{args.threads or 'auto'}"
    (RESULTS / f"shared-cores-{tag}.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
