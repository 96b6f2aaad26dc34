"""The basal steady state (thermal.steady) and the box domain's synthetic vessels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cryoplan.case import case_from_dict
from cryoplan.discretise import discretise
from cryoplan.errors import CaseError
from cryoplan.thermal import RecordingPlan, Segment, solve
from cryoplan.thermal.materials import C_UNFROZEN, METABOLIC, PERFUSION
from cryoplan.thermal.steady import basal_temperature_c

LIVER_WITH_VESSEL = {
    "name": "liver-vessel",
    "domain": {
        "box": {
            "size_mm": [60, 60, 60],
            "tissue": "liver",
            "vessels": [{"from_mm": [8, -40, 0], "to_mm": [8, 40, 0], "diameter_mm": 6}],
        }
    },
    "grid": {"spacing_mm": 2.0},
    "probes": [{"model": "argon-17g", "tip_mm": [0, 0, -10], "entry_mm": [0, 0, 60]}],
    "protocol": [{"phase": "freeze", "duration_min": 1}],
}


@pytest.fixture(scope="module")
def liver_with_vessel():
    return discretise(case_from_dict(LIVER_WITH_VESSEL, "basal"))


def test_synthetic_vessel_is_a_held_cylinder(liver_with_vessel) -> None:
    d = liver_with_vessel
    fixed = d.problem.fixed
    # the cylinder runs along y through the whole box, 3 mm around x = 8, z = 0
    x, _, z = d.grid.centres_lps()
    inside = (x - 8) ** 2 + z**2 <= 9.0
    np.testing.assert_array_equal(fixed, inside)
    assert fixed.any()
    assert {t.name for t in d.tissues} == {"liver", "vessel"}


def test_a_vessel_needs_a_direction_and_a_known_tissue() -> None:
    same = dict(LIVER_WITH_VESSEL)
    vessel = {"from_mm": [1, 2, 3], "to_mm": [1, 2, 3], "diameter_mm": 6}
    same["domain"] = {"box": {"size_mm": [40, 40, 40], "tissue": "liver", "vessels": [vessel]}}
    with pytest.raises(CaseError, match=r"domain\.box\.vessels\[0\].*must differ"):
        case_from_dict(same, "bad.yaml")
    unknown = dict(LIVER_WITH_VESSEL)
    vessel = {"from_mm": [0, 0, 0], "to_mm": [0, 1, 0], "diameter_mm": 6, "tissue": "vien"}
    unknown["domain"] = {"box": {"size_mm": [40, 40, 40], "tissue": "liver", "vessels": [vessel]}}
    with pytest.raises(CaseError, match=r"domain\.box\.vessels\[0\]\.tissue"):
        case_from_dict(unknown, "bad.yaml")


def test_basal_state_is_the_pennes_equilibrium_far_from_edges(liver_with_vessel) -> None:
    """Deep in perfused liver: T_a + q_m/(w_b ρ_b c_b); at the vessel: T_a. The point is
    ≥ 18 mm from the vessel and the held faces, six decay lengths √(k/(w_b ρ_b c_b))."""
    d = liver_with_vessel
    props = d.problem.properties[0]  # liver
    expected = 37.0 + props[METABOLIC] / props[PERFUSION]
    t0 = d.problem.initial_temperature_c
    x, y, z = d.grid.centres_lps()
    far = (np.abs(x + 12) < 1.5) & (np.abs(y) < 1.5) & (np.abs(z) < 1.5)
    assert far.any()
    assert t0[far] == pytest.approx(expected, abs=5e-4)
    assert np.all(t0[d.problem.fixed] == 37.0)
    assert t0.max() <= expected + 1e-9  # nowhere hotter than the equilibrium


def test_basal_state_does_not_move_without_probes(liver_with_vessel) -> None:
    """The state the multirate back end relies on: at rest, nothing changes (here < 1 µK
    in 200 s); a uniform 37 °C start drifts by tens of millikelvin in the same time."""
    problem = liver_with_vessel.problem
    off = tuple(dataclasses.replace(d, kind=0) for d in problem.schedule[0].drives)
    at_rest = dataclasses.replace(problem, schedule=(Segment(0.0, 200.0, off),))
    history = solve(at_rest, RecordingPlan(sensor_interval_s=0.0))
    assert np.abs(history.final_temperature_c - problem.initial_temperature_c).max() < 1e-6
    uniform = dataclasses.replace(at_rest, initial_temperature_c=np.full(problem.shape, 37.0))
    drift = np.abs(solve(uniform, RecordingPlan(sensor_interval_s=0.0)).final_temperature_c - 37)
    props = problem.properties[0]
    assert drift.max() > 0.5 * 200.0 * props[METABOLIC] / props[C_UNFROZEN] * 0.5


def test_basal_state_without_perfusion_or_metabolism_is_the_boundary_temperature() -> None:
    gel = dict(LIVER_WITH_VESSEL)
    gel["domain"] = {"box": {"size_mm": [40, 40, 40], "tissue": "gel"}}
    problem = discretise(case_from_dict(gel, "gel")).problem
    assert np.all(problem.initial_temperature_c == 37.0)
    assert np.all(basal_temperature_c(problem) == 37.0)
