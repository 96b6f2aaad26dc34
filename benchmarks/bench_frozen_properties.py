"""The cost of temperature-dependent frozen properties, against constant ones in the same run.

    .venv/bin/python benchmarks/bench_frozen_properties.py [--repeat N]

Runs the built-in demo case and the three-probe liver example with `frozen_properties:
constant` and `temperature_dependent`, alternating the two so that a noisy machine affects
both alike, and reports the median wall time of each and their ratio, with the fine
(substep) time step each setting gives: the explicit scheme must resolve the cold core's
diffusivity k(T)/C(T), which rises as frozen tissue cools. Also the lethal volume of each, to
show what the better physics changes. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from importlib import resources
from pathlib import Path

import yaml

from cryoplan.case import Case, load_case
from cryoplan.preparation import prepare
from cryoplan.simulation import simulate
from cryoplan.simulator import Simulator
from cryoplan.thermal.backend import stable_time_step_s

REPO = Path(__file__).resolve().parent.parent
CASES = {
    "demo": resources.files("cryoplan.data").joinpath("demo.yaml"),
    "three-probe-liver": REPO / "examples" / "three-probe-liver.yaml",
}
SETTINGS = ("constant", "temperature_dependent")


def case_for(name: str, setting: str, folder: Path) -> Case:
    """The case with `frozen_properties: setting` (written beside nothing it refers to: the
    benchmark cases are phantoms)."""
    data = yaml.safe_load(CASES[name].read_text("utf-8"))
    data["frozen_properties"] = setting
    path = folder / f"{name}-{setting}.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    return load_case(path)


def fine_step_s(case: Case) -> float:
    """The all-voxel stable step of the case's problem (the multirate back end's substep)."""
    return stable_time_step_s(Simulator(prepare(case)).problem().problem)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cryoplan-bench-"))
    for name in CASES:
        cases = {s: case_for(name, s, folder) for s in SETTINGS}
        simulate(cases["constant"])  # compile once, outside the timings
        times: dict[str, list[float]] = {s: [] for s in SETTINGS}
        lethal_ml: dict[str, float] = {}
        for _ in range(args.repeat):
            for setting in SETTINGS:
                t0 = time.perf_counter()
                result = simulate(cases[setting])
                times[setting].append(time.perf_counter() - t0)
                lethal_ml[setting] = result.summary()["lethal_zone"]["volume_ml"]
        median = {s: statistics.median(times[s]) for s in SETTINGS}
        steps = {s: fine_step_s(cases[s]) for s in SETTINGS}
        print(f"{name}:")
        for s in SETTINGS:
            print(
                f"  {s:<22} median {median[s]:6.1f} s over {args.repeat}, fine step "
                f"{steps[s] * 1e3:6.1f} ms, lethal volume {lethal_ml[s]:.2f} mL"
            )
        ratio = median["temperature_dependent"] / median["constant"]
        step_ratio = steps["constant"] / steps["temperature_dependent"]
        print(f"  run time ratio {ratio:.2f}; fine steps {step_ratio:.2f}x as many")


if __name__ == "__main__":
    main()
