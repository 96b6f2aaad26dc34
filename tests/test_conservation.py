"""Identity tests over preset cases (verification.md f): energy ledger, symmetry, rest state.

Each preset exercises a different path of the solver: outer boundary held or insulated;
wall-temperature, gas and ramped probes; passive and active thaw; perfusion and metabolism
switched off by freezing and by death; vessels held at blood temperature. Every identity is
checked on both back ends: the reference (one explicit step of the whole domain) and the
multirate one (substeps in a box around the ice, long steps elsewhere).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cryoplan.case import case_from_dict
from cryoplan.metrics import isotherm_distance_mm
from cryoplan.probes.coupling import ActiveSegment, couple_probes
from cryoplan.simulation import simulate
from cryoplan.thermal import (
    INSULATED,
    DriveKind,
    ProbeDrive,
    RecordingPlan,
    Segment,
    ThermalProblem,
    kernels,
    solve,
)
from cryoplan.thermal.backend import CpuExplicitBackend
from cryoplan.thermal.materials import MaterialRow, material_table
from cryoplan.thermal.multirate import CpuMultirateBackend

BACKENDS = {b.name: b for b in (CpuExplicitBackend, CpuMultirateBackend)}

LEDGER_TOLERANCE = 0.005  # issue 2: the ledger closes within 0.5 %


def _probe(x: float, **extra: object) -> dict:
    return {"tip_mm": [x, 0.0, -10.0], "entry_mm": [x, 0.0, 60.0], **extra}


INLINE = {"diameter_mm": 1.5, "active_length_mm": 20, "wall_temperature_c": -150}
FREEZE_THAW = [
    {"phase": "freeze", "duration_min": 3},
    {"phase": "passive_thaw", "duration_min": 1},
    {"phase": "freeze", "duration_min": 2},
    {"phase": "active_thaw", "duration_min": 1},
]

PRESETS: dict[str, dict] = {
    "gel-insulated-wall-probe-freeze-thaw": {
        "outer_boundary": "insulated",
        "domain": {"box": {"size_mm": [40, 40, 50], "tissue": "gel"}},
        "probes": [_probe(0.3, **INLINE, active_thaw_temperature_c=20)],
        "protocol": FREEZE_THAW,
    },
    "gel-held-boundary-gas-probe": {
        "domain": {"box": {"size_mm": [40, 40, 50], "tissue": "gel"}},
        "probes": [_probe(0.0, model="generic-2.4mm", active_length_mm=20)],
        "protocol": FREEZE_THAW,
    },
    "perfused-liver-two-probes-one-phase-each": {
        "domain": {"box": {"size_mm": [40, 40, 50], "tissue": "liver"}},
        "probes": [
            _probe(-6.0, name="a", model="generic-17g"),
            _probe(6.0, name="b", model="generic-17g"),
        ],
        "protocol": [
            {"phase": "freeze", "duration_min": 3},
            {"phase": "freeze", "duration_min": 2, "probes": ["b"]},
            {"phase": "active_thaw", "duration_min": 1, "probes": ["a"]},
            {"phase": "passive_thaw", "duration_min": 2},
        ],
    },
    "phantom-with-vessel": {
        "domain": {"phantom": "liver-tumour"},
        "target": "tumour",
        "grid": {"spacing_mm": 2.0},
        "probes": [
            _probe(12.0, model="generic-17g"),
            _probe(0.0, model="generic-17g"),
        ],
        "protocol": FREEZE_THAW,
    },
}


@pytest.fixture(
    scope="module",
    params=[(p, b) for p in sorted(PRESETS) for b in sorted(BACKENDS)],
    ids=lambda pb: f"{pb[0]}-{pb[1]}",
)
def preset_result(request: pytest.FixtureRequest):
    preset, backend = request.param
    data = {"name": preset, "grid": {"spacing_mm": 2.0}} | PRESETS[preset]
    result = simulate(case_from_dict(data, f"preset:{preset}"), backend_factory=BACKENDS[backend])
    assert result.history.backend == backend
    return result


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_multirate_matches_the_reference(preset: str) -> None:
    """The fast path keeps the answer (issue #5: isotherms within 0.5 mm of the reference).
    Held here to a fifth of that; measured: at most 0.051 mm (0 °C, phantom with vessel;
    0.047 mm with a 2-voxel halo). T_min itself differs by ≤ 0.1 K (on the freezing range,
    where T(H) is flattest, and, with a 1-voxel halo, at the fine region's faces)."""
    data = {"name": preset, "grid": {"spacing_mm": 2.0}} | PRESETS[preset]
    case = case_from_dict(data, f"preset:{preset}")
    reference = simulate(case, backend_factory=CpuExplicitBackend).history
    fast = simulate(case, backend_factory=CpuMultirateBackend).history
    assert fast.n_steps < reference.n_steps / 3  # it did take long steps
    for level in (0.0, -20.0, -40.0):
        distance = isotherm_distance_mm(
            fast.minimum_temperature_c, reference.minimum_temperature_c, (2.0,) * 3, level
        )
        assert distance < 0.1, (level, distance)
    assert np.count_nonzero(fast.destroyed != reference.destroyed) <= 3


def test_energy_ledger_closes(preset_result) -> None:
    ledger = preset_result.history.ledger
    assert ledger.relative_error < LEDGER_TOLERANCE, ledger.as_dict()
    assert ledger.probes_j < 0  # the probes removed heat overall


def test_each_preset_exercises_its_path(preset_result) -> None:
    ledger = preset_result.history.ledger
    name = preset_result.case.name
    if "insulated" in name:
        assert ledger.boundary_j == 0.0
    elif "gel" in name:
        assert ledger.boundary_j > 0  # the held boundary warmed the cooled gel
    else:
        # metabolising tissue settles at T_a + q_m/(w_b ρ_b c_b), a little above the 37 °C
        # at which the boundary is held, so there the boundary may take heat out; the
        # multirate back end steps the boundary only once the freeze disturbs it by 0.1 K
        # (FAR_FIELD_TOLERANCE_K), and until then the tissue at rest passes far-field heat
        at_rest = preset_result.history.backend == "cpu-multirate" and ledger.boundary_j == 0
        assert ledger.far_field_j != 0.0 if at_rest else ledger.boundary_j != 0.0
    if "liver" in name or "phantom" in name:
        assert ledger.perfusion_j > 0
        assert ledger.metabolic_j > 0
        assert preset_result.history.destroyed.any()
    if "vessel" in name:
        assert ledger.fixed_j > 0  # the vessel gave heat to the frozen tissue


def _ramped_problem() -> ThermalProblem:
    """A probe whose wall temperature ramps (a catalogue-style curve), then a passive thaw."""
    shape = (21, 21, 21)
    h = 1.5e-3
    table = material_table([MaterialRow(2.0, 0.5, 1.8e6, 3.6e6, 2.5e8, -8, -1, 1800, 4200, -40)])
    seg = ActiveSegment((10.0, 10.0, 4.0), (10.0, 10.0, 16.0), 0.75e-3)
    curve = ((0.0, 37.0), (30.0, -100.0), (60.0, -160.0))
    return ThermalProblem(
        spacing_m=(h, h, h),
        material=np.zeros(shape, np.uint8),
        properties=table,
        initial_temperature_c=np.full(shape, 37.0),
        fixed=np.zeros(shape, bool),
        boundary_kind=(1, 1, 1, 1, 1, 1),
        boundary_temperature_c=(37.0,) * 6,
        blood_temperature_c=37.0,
        schedule=(
            Segment(0.0, 120.0, (ProbeDrive(DriveKind.WALL, curve),)),
            Segment(120.0, 180.0, (ProbeDrive(DriveKind.OFF),)),
        ),
        probes=couple_probes([seg], shape, (h, h, h), np.zeros(shape, bool)),
    )


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_ledger_closes_with_a_ramped_wall_curve(backend: str) -> None:
    history = solve(
        _ramped_problem(), RecordingPlan(sensor_interval_s=10.0), backend_factory=BACKENDS[backend]
    )
    assert history.ledger.relative_error < LEDGER_TOLERANCE, history.ledger.as_dict()
    assert history.minimum_temperature_c.min() < -40.0


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_mirror_symmetry_of_a_centred_probe(backend: str) -> None:
    """A probe on the centre line of a symmetric box gives a mirror-symmetric field.

    The fast path's fine and active regions are a box per x-slab: mirror-symmetric along each
    axis, but not under swapping x and y, so that symmetry holds there only to its coupling
    error (first order in time at the regions' faces), which the isotherms must not see."""
    problem = _ramped_problem()
    history = solve(
        problem, RecordingPlan(sensor_interval_s=0.0), backend_factory=BACKENDS[backend]
    )
    tmin = history.minimum_temperature_c
    np.testing.assert_allclose(tmin, tmin[::-1, :, :], atol=1e-9)
    np.testing.assert_allclose(tmin, tmin[:, ::-1, :], atol=1e-9)
    swapped = np.swapaxes(tmin, 0, 1)
    if backend == CpuExplicitBackend.name:
        np.testing.assert_allclose(tmin, swapped, atol=1e-9)
        return
    spacing_mm = tuple(1e3 * h for h in problem.spacing_m)
    for level in (0.0, -20.0, -40.0):
        assert isotherm_distance_mm(tmin, swapped, spacing_mm, level) < 0.01, level


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_tissue_at_rest_stays_at_rest(backend: str) -> None:
    """Without probes, unperfused tissue at body temperature does not change at all."""
    shape = (8, 9, 10)
    problem = ThermalProblem(
        spacing_m=(1e-3, 1e-3, 1e-3),
        material=np.zeros(shape, np.uint8),
        properties=material_table([MaterialRow(2.0, 0.5, 1.8e6, 3.6e6, 2.5e8, -8, -1, 0, 0, -40)]),
        initial_temperature_c=np.full(shape, 37.0),
        fixed=np.zeros(shape, bool),
        boundary_kind=(1, 1, INSULATED, 1, 1, 1),
        boundary_temperature_c=(37.0,) * 6,
        blood_temperature_c=37.0,
        schedule=(Segment(0.0, 60.0, ()),),
    )
    history = solve(problem, backend_factory=BACKENDS[backend])
    assert np.all(history.final_temperature_c == 37.0)
    assert history.ledger.enthalpy_change_j == 0.0


# The explicit scheme books exactly the heat it applies, so beyond round-off any imbalance
# is a bug (a read-during-write race on material interfaces leaked 1e-5 of the probe heat
# before it was caught this way). The 0.5 % is the budget for users; this is ours.
ROUND_OFF = 1e-9


def test_presets_close_to_round_off(preset_result) -> None:
    assert preset_result.history.ledger.relative_error < ROUND_OFF, preset_result.history.ledger


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_two_materials_freezing_through_their_interface_close_to_round_off(backend: str) -> None:
    """Fat (low k) against muscle (high k) with a probe on the interface: every mixed face
    passes through the mushy range of both tissues."""
    shape = (24, 22, 20)
    h = 1.5e-3
    fat = MaterialRow(0.21, 0.3, 2.139e6, 1.6e6, 3.04e7, -8, -1, 1800.0, 400.0, -40)
    muscle = MaterialRow(0.49, 2.0, 3.729e6, 1.796e6, 2.5e8, -8, -1, 2412.0, 4200.0, -40)
    material = np.zeros(shape, np.uint8)
    material[12:] = 1
    seg = ActiveSegment((11.5, 10.3, 3.0), (11.5, 10.3, 16.0), 0.75e-3)
    problem = ThermalProblem(
        spacing_m=(h, h, h),
        material=material,
        properties=material_table([fat, muscle]),
        initial_temperature_c=np.full(shape, 37.0),
        fixed=np.zeros(shape, bool),
        boundary_kind=(1,) * 6,
        boundary_temperature_c=(37.0,) * 6,
        blood_temperature_c=37.0,
        schedule=(
            Segment(0.0, 240.0, (ProbeDrive(DriveKind.WALL, ((0.0, -150.0),)),)),
            Segment(240.0, 330.0, (ProbeDrive(DriveKind.OFF),)),
        ),
        probes=couple_probes([seg], shape, (h, h, h), np.zeros(shape, bool)),
    )
    history = solve(
        problem, RecordingPlan(sensor_interval_s=0.0), backend_factory=BACKENDS[backend]
    )
    assert history.minimum_temperature_c[11:13].min() < -40.0  # the interface froze through
    assert history.ledger.relative_error < ROUND_OFF, history.ledger.as_dict()


def test_volumes_counted_in_the_active_region_match_the_whole_grid() -> None:
    """The multirate back end counts volumes at or below thresholds in its active region
    (and the fixed voxels) when no voxel at rest can reach them: the same volumes as a count
    over the whole grid at every step of a freeze and a thaw."""
    problem = dataclasses.replace(
        _ramped_problem(),  # unperfused, no metabolism: uniform 37 °C is steady
        properties=material_table([MaterialRow(2.0, 0.5, 1.8e6, 3.6e6, 2.5e8, -8, -1, 0, 0, -40)]),
    )
    backend = CpuMultirateBackend(problem)
    thresholds = np.array([0.0, -20.0, -40.0])
    assert backend._at_rest  # the region path is taken
    whole = backend._whole
    args = (backend._enthalpy, backend._material, backend._fixed, backend._props, thresholds)
    drives = (np.array([-160.0]), np.array([np.inf]), np.array([True]))
    seen = np.zeros(3)
    smallest_region = np.prod(problem.shape)
    t = 0.0
    while t < 80.0:  # 60 s of freezing, 20 s off
        drives[2][0] = t < 60.0
        backend.step(backend.stable_time_step_s(), *drives)
        t += backend.stable_time_step_s()
        counted = backend.volume_at_or_below_m3(thresholds)
        everywhere = kernels.count_at_or_below(*args, *whole, kernels.COUNT_ALL)
        np.testing.assert_array_equal(counted, everywhere * problem.voxel_volume_m3)
        seen = np.maximum(seen, everywhere)
        if seen[0]:
            smallest_region = min(smallest_region, backend.active_region().voxels())
    assert np.all(seen > 1)  # every threshold was crossed
    assert smallest_region < np.prod(problem.shape) / 2  # while tissue rested, counted apart


def test_counts_split_into_free_and_fixed_voxels() -> None:
    """`kernels.count_at_or_below` over a region: all voxels = free ones + fixed ones, each
    against a count of T at or below the thresholds."""
    rng = np.random.default_rng(2)
    shape = (6, 7, 8)
    props = material_table([MaterialRow(2.0, 0.5, 1.8e6, 3.6e6, 2.5e8, -8, -1, 0, 0, -40)])
    temperature = rng.uniform(-60.0, 40.0, shape)
    material = np.zeros(shape, np.uint8)
    fixed = rng.random(shape) < 0.2
    enthalpy = kernels.enthalpy_field(temperature, material, props)
    thresholds = np.array([0.0, -20.0, -40.0])
    bounds = np.tile(np.array([1, 6, 2, 7]), (shape[0], 1))
    inside = np.zeros(shape, bool)
    inside[1:5, 1:6, 2:7] = True
    masks = {
        kernels.COUNT_ALL: inside,
        kernels.COUNT_FREE: inside & ~fixed,
        kernels.COUNT_FIXED: inside & fixed,
    }
    for which, mask in masks.items():
        count = kernels.count_at_or_below(
            enthalpy, material, fixed, props, thresholds, 1, 5, bounds, which
        )
        expected = [np.count_nonzero(mask & (temperature <= t)) for t in thresholds]
        assert list(count) == expected, which
        assert min(expected) > 0  # every kind is present below every threshold
