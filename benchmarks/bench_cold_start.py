"""Cold start and a light process: the first demo after an install, and what a command
costs before it does anything.

    .venv/bin/python benchmarks/bench_cold_start.py [--repeat 5]

Each figure is a whole command in a fresh process, timed from outside:

- `cryoplan demo` with numba's cache empty (NUMBA_CACHE_DIR pointed at a new directory: the
  state after a clean install or an upgrade), then again with the cache it left; the
  compile time the command reports, and the kernels' compile alone (`compile_solver`, one
  and two processes);
- `python -c "import cryoplan"` and `cryoplan --help`, best of `--repeat`, against
  `python -c "pass"` and `python -c "import numpy"` measured in the same run.

Results in benchmarks/results/cold-start.json. Nothing is asserted: measured on demand.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall time [s] of a command and its combined output."""
    t0 = time.perf_counter()
    done = subprocess.run(
        command,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return time.perf_counter() - t0, done.stdout + done.stderr


def best(command: list[str], repeat: int) -> float:
    return min(timed(command)[0] for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    python = [sys.executable]
    result: dict[str, float] = {
        "python_pass_s": best([*python, "-c", "pass"], args.repeat),
        "import_numpy_s": best([*python, "-c", "import numpy"], args.repeat),
        "import_cryoplan_s": best([*python, "-c", "import cryoplan"], args.repeat),
        "cryoplan_help_s": best([str(BIN / "cryoplan"), "--help"], args.repeat),
    }
    with tempfile.TemporaryDirectory(prefix="cryoplan-cold-") as tmp:
        for processes in (1, 2):
            cache = {"NUMBA_CACHE_DIR": str(Path(tmp) / f"compile-{processes}")}
            code = (
                "from cryoplan.thermal import compile_solver; "
                f"print(compile_solver(processes={processes}).seconds)"
            )
            _, out = timed([*python, "-c", code], cache)
            result[f"compile_solver_{processes}_processes_s"] = float(out.strip().splitlines()[-1])
        cache = {"NUMBA_CACHE_DIR": str(Path(tmp) / "demo")}
        for state in ("cold", "warm"):
            out_dir = Path(tmp) / f"demo-{state}"
            wall, out = timed([str(BIN / "cryoplan"), "demo", "--out", str(out_dir)], cache)
            result[f"demo_{state}_s"] = wall
            compiled = re.search(r"compiled the solver in (\d+) s", out)
            result[f"demo_{state}_reported_compile_s"] = float(compiled[1]) if compiled else 0.0
            summary = json.loads((out_dir / "summary.json").read_text())
            result[f"demo_{state}_simulation_wall_s"] = summary["timing"]["wall_time_s"]
    print(
        f"python -c pass {result['python_pass_s']:.2f} s, import numpy "
        f"{result['import_numpy_s']:.2f} s; import cryoplan {result['import_cryoplan_s']:.2f} s, "
        f"cryoplan --help {result['cryoplan_help_s']:.2f} s (best of {args.repeat})"
    )
    print(
        f"compile_solver from an empty cache: {result['compile_solver_1_processes_s']:.1f} s "
        f"in one process, {result['compile_solver_2_processes_s']:.1f} s in two"
    )
    print(
        f"cryoplan demo: cold {result['demo_cold_s']:.1f} s (compiling "
        f"{result['demo_cold_reported_compile_s']:.0f} s, simulation "
        f"{result['demo_cold_simulation_wall_s']:.1f} s), warm {result['demo_warm_s']:.1f} s "
        f"(simulation {result['demo_warm_simulation_wall_s']:.1f} s)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cold-start.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
