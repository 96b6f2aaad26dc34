"""The benchmark's peer solvers solve cryoplan's model: same answer on a small case.

The case has everything the kernels distinguish: one wall-temperature probe in perfused,
metabolising liver, a tumour cylinder around the probe (a second material, so the ice ball
crosses a material interface), a fixed vessel line at blood temperature, a held outer boundary
and a passive thaw after the freeze.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cryoplan.case import case_from_dict
from cryoplan.discretise import discretise
from cryoplan.thermal import RecordingPlan, ThermalProblem, solve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: benchmarks/

from benchmarks.peers.compare import isotherm_distance_mm, spacing_mm_of
from benchmarks.peers.numpy_enthalpy import solve_numpy

# The NumPy peer does cryoplan's arithmetic in the same order except for the order of the face
# sums and the probe spread (summed before it is subtracted): a few ulps per step, which the
# monotone explicit update does not amplify. Measured 5e-14 K over 400 steps; any difference in
# the physics (one term, one face) would show at 1e-6 K or more.
NUMPY_TOLERANCE_K = 1e-9
ISOTHERM_TOLERANCE_MM = 0.5  # the benchmark issue's "same answer"


def small_problem(
    size_mm: tuple[float, float, float], freeze_s: float, thaw_s: float
) -> ThermalProblem:
    case = case_from_dict(
        {
            "domain": {
                "box": {
                    "size_mm": list(size_mm),
                    "tissue": "liver",
                    "vessels": [
                        {"from_mm": [-20, 6, -20], "to_mm": [20, 6, 20], "diameter_mm": 2.0},
                        {
                            "from_mm": [-5, 0, -30],
                            "to_mm": [-5, 0, 30],
                            "diameter_mm": 6.0,
                            "tissue": "tumour",
                        },
                    ],
                }
            },
            "grid": {"spacing_mm": 1.5},
            "probes": [{"model": "generic-17g", "tip_mm": [-3, 0, -8], "entry_mm": [-3, 0, 60]}],
            "protocol": [
                {"phase": "freeze", "duration_s": freeze_s},
                {"phase": "passive_thaw", "duration_s": thaw_s},
            ],
        }
    )
    problem = discretise(case).problem
    assert problem.fixed.any(), "the vessel must give fixed voxels"
    assert len(np.unique(problem.material[~problem.fixed])) == 2, "liver and tumour"
    return problem


def test_numpy_peer_matches_the_reference_solver() -> None:
    problem = small_problem((24, 24, 30), freeze_s=60, thaw_s=20)
    reference = solve(problem, RecordingPlan(sensor_interval_s=0))
    peer = solve_numpy(problem)

    assert peer.n_steps == reference.n_steps
    assert reference.minimum_temperature_c.min() < -40  # the lethal isotherm exists
    # cryoplan records T_min in float32 (a record, not state): half a float32 step of rounding
    record_rounding_k = 0.5 * np.spacing(np.abs(reference.minimum_temperature_c))
    assert np.all(
        np.abs(peer.minimum_temperature_c - reference.minimum_temperature_c)
        <= NUMPY_TOLERANCE_K + record_rounding_k
    )
    assert np.abs(peer.final_temperature_c - reference.final_temperature_c).max() < (
        NUMPY_TOLERANCE_K
    )
    assert peer.ledger_relative_error < 1e-10
    for key in ("probes_j", "perfusion_j", "fixed_voxels_j", "outer_boundary_j"):
        assert peer.ledger[key] == pytest.approx(reference.ledger.as_dict()[key], rel=1e-9)
    assert abs(peer.ledger["fixed_voxels_j"]) > 0  # the vessel exchanged heat


def test_fipy_peer_puts_the_isotherms_where_the_reference_does() -> None:
    pytest.importorskip("fipy")
    from benchmarks.peers.fipy_enthalpy import solve_fipy  # noqa: PLC0415 (needs fipy)

    problem = small_problem((18, 18, 30), freeze_s=45, thaw_s=15)
    reference = solve(problem, RecordingPlan(sensor_interval_s=0))
    peer = solve_fipy(problem, dt_s=0.5, sweeps=3)

    distance = isotherm_distance_mm(
        reference.minimum_temperature_c,
        peer.minimum_temperature_c,
        spacing_mm_of(problem.spacing_m),
    )
    assert reference.minimum_temperature_c.min() < -40
    assert max(distance.values()) < ISOTHERM_TOLERANCE_MM, distance
    assert peer.ledger_relative_error < 1e-3  # implicit steps, converged to the sweep count


def test_isotherm_distance_of_shifted_spheres() -> None:
    n, h = 40, 0.5
    x = (np.arange(n) - n / 2) * h
    xx, yy, zz = np.meshgrid(x, x, x, indexing="ij")
    a = np.sqrt(xx**2 + yy**2 + zz**2) - 6.0  # 0-level: sphere of radius 6 mm
    b = np.sqrt((xx - 1.0) ** 2 + yy**2 + zz**2) - 6.0  # shifted by 1 mm along x
    distance = isotherm_distance_mm(a, b, (h, h, h), levels=(0.0, 100.0))
    assert distance[0.0] == pytest.approx(1.0, abs=0.05)
    assert distance[100.0] == 0.0  # neither field reaches the level
