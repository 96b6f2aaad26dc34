"""Prepare once, run many: `prepare`, `Simulator.run`, `evaluate` against `simulate`.

A prepared case must give runs identical (to the bit) to simulating the same case from
scratch, must not read the anatomy or solve the basal state again, must travel to another
process by pickle, and must keep an image's crop where `prepare` put it.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

import cryoplan
import cryoplan.preparation as prepare_module
import cryoplan.thermal.steady as steady_module
from cryoplan import calibration as cal
from cryoplan.anatomy.grid import Grid
from cryoplan.case import case_from_dict
from cryoplan.errors import CaseError
from cryoplan.outcome import ALL_OBJECTIVES, evaluate
from cryoplan.probes.catalogue import load_catalogue

SOURCE = "case.yaml"
# The liver phantom on a 4 mm grid (20³ voxels) with a short protocol: a few seconds a run.
PHANTOM: dict[str, Any] = {
    "name": "prepare-phantom",
    "domain": {"phantom": "liver-tumour"},
    "target": "tumour",
    "grid": {"spacing_mm": 4.0},
    "probes": [
        {"name": "a", "model": "argon-17g", "tip_mm": [-6, 11, 0], "entry_mm": [-6, -120, 0]},
        {"name": "b", "model": "argon-17g", "tip_mm": [6, 11, 0], "entry_mm": [6, -120, 0]},
    ],
    "protocol": [
        {"phase": "freeze", "duration_min": 3},
        {"phase": "passive_thaw", "duration_min": 1},
        {"phase": "freeze", "duration_min": 2},
    ],
    "sensors": [{"name": "centre", "at_mm": [0, 0, 0]}],
    "critical_structures": [{"tissue": "vessel", "keep_above_c": 30}],
}


def probes_at(x_a_mm: float, x_b_mm: float) -> list[dict[str, Any]]:
    """The phantom's two probes moved along x (LPS mm)."""
    return [
        {"name": "a", "model": "argon-17g", "tip_mm": [x_a_mm, 11, 0],
         "entry_mm": [x_a_mm, -120, 0]},
        {"name": "b", "model": "argon-17g", "tip_mm": [x_b_mm, 11, 0],
         "entry_mm": [x_b_mm, -120, 0]},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def prepared() -> cryoplan.PreparedCase:
    return cryoplan.prepare(case_from_dict(PHANTOM, SOURCE))


@pytest.fixture(scope="module")
def first_run(prepared: cryoplan.PreparedCase) -> cryoplan.Run:
    return cryoplan.Simulator(prepared).run()


def test_runs_with_moved_probes_equal_simulating_the_moved_case(
    prepared: cryoplan.PreparedCase,
) -> None:
    simulator = cryoplan.Simulator(prepared)
    runs = []
    for layout in (probes_at(-8.0, 4.0), probes_at(-2.0, 10.0)):
        run = simulator.run(probes=layout)
        fresh = cryoplan.simulate(case_from_dict(PHANTOM | {"probes": layout}, SOURCE))
        np.testing.assert_array_equal(
            run.history.minimum_temperature_c, fresh.history.minimum_temperature_c
        )
        np.testing.assert_array_equal(
            run.history.sensor_temperature_c, fresh.history.sensor_temperature_c
        )
        assert [p.tip_mm.tolist() for p in run.probes] == [p["tip_mm"] for p in layout]
        runs.append(run)
    # the move is seen: the two layouts freeze different voxels
    a, b = (r.history.minimum_temperature_c for r in runs)
    assert np.abs(a - b).max() > 10.0


def test_run_defaults_to_the_case_plan_and_matches_simulate(
    prepared: cryoplan.PreparedCase, first_run: cryoplan.Run
) -> None:
    result = cryoplan.simulate(case_from_dict(PHANTOM, SOURCE))
    np.testing.assert_array_equal(
        first_run.history.minimum_temperature_c, result.history.minimum_temperature_c
    )
    np.testing.assert_array_equal(prepared.basal_temperature_c, result.prepared.basal_temperature_c)
    assert [p.name for p in first_run.probes] == ["a", "b"]
    assert first_run.duration_s == 360.0
    # the probe-free static problem: no probes, no schedule, the basal state as its start
    assert prepared.problem.probes.n_probes == 0
    assert prepared.problem.schedule == ()
    assert first_run.problem(prepared).probes.n_probes == 2


def test_a_second_run_reads_no_image_and_solves_no_basal_state(
    prepared: cryoplan.PreparedCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("prepared state recomputed by a run")

    monkeypatch.setattr(prepare_module, "basal_temperature_c", refuse)
    monkeypatch.setattr(steady_module, "basal_temperature_c", refuse)
    monkeypatch.setattr(prepare_module, "build_anatomy", refuse)
    simulator = cryoplan.Simulator(prepared, backend="reference")
    first = simulator.run(probes=probes_at(-4.0, 4.0), protocol=[{"phase": "freeze",
                                                                  "duration_s": 60}])  # fmt: skip
    second = simulator.run(probes=probes_at(-2.0, 6.0), protocol=[{"phase": "freeze",
                                                                   "duration_s": 60}])  # fmt: skip
    assert first.history.backend == second.history.backend == "cpu-explicit"
    with pytest.raises(AssertionError, match="recomputed"):  # the patch is in force
        cryoplan.prepare(prepared.case)


SUBSETS = [
    {"coverage"},
    {"margin"},
    {"verdict"},
    {"structures", "warnings"},
    {"reach"},
    {"histograms", "time_series"},
]


@pytest.mark.parametrize("asked", SUBSETS, ids=lambda s: "+".join(sorted(s)))
def test_evaluate_computes_what_is_asked_and_only_that(
    prepared: cryoplan.PreparedCase, first_run: cryoplan.Run, asked: set[str]
) -> None:
    full = evaluate(first_run, prepared, ALL_OBJECTIVES)
    part = evaluate(first_run, prepared, asked)  # type: ignore[arg-type]
    np.testing.assert_array_equal(part.lethal_zone, full.lethal_zone)
    for objective in ALL_OBJECTIVES:
        value = getattr(part, objective)
        if objective in asked:
            assert value is not None, objective
            assert json.dumps(value) == json.dumps(getattr(full, objective)), objective
        else:
            assert value is None, objective


def test_full_evaluation_is_the_summary_outcome(
    prepared: cryoplan.PreparedCase, first_run: cryoplan.Run
) -> None:
    full = evaluate(first_run, prepared)
    assert full.target is not None
    assert full.target["coverage_percent"]["lethal"] > 0.0
    assert set(full.reach or {}) == {"vessel"}  # the phantom's vein is a heat sink
    outcome = cryoplan.SimulationResult(prepared, first_run).summary()["outcome"]
    assert json.dumps(outcome) == json.dumps(full.as_dict())
    assert outcome["structures"]["vessel"]["heat_sink"] == full.reach["vessel"]  # type: ignore[index]
    assert list(outcome["structures"]["vessel"])[-4:] == [
        "heat_sink",
        "keep_above_c",
        "constraint_met",
        "constraint_note",
    ]
    with pytest.raises(ValueError, match="unknown objectives"):
        evaluate(first_run, prepared, {"coverage", "price"})  # type: ignore[arg-type]


def test_run_refuses_a_bad_plan_with_the_case_file_and_field(
    prepared: cryoplan.PreparedCase,
) -> None:
    simulator = cryoplan.Simulator(prepared)
    outside = probes_at(-6.0, 6.0)
    outside[1]["tip_mm"] = [60.0, 11.0, 0.0]  # 20 mm beyond the phantom's +x face
    with pytest.raises(CaseError, match=r"^case\.yaml: probes\[1\]\.tip_mm: .*outside the domain"):
        simulator.run(probes=outside)
    misspelt = probes_at(-6.0, 6.0)
    misspelt[0]["tip_mn"] = misspelt[0].pop("tip_mm")
    # as in a case file: the first error, and how many more
    with pytest.raises(CaseError, match=r"probes\[0\]\.tip_mm: required field is missing \(\+1"):
        simulator.run(probes=misspelt)
    with pytest.raises(CaseError, match=r"probes\[0\]\.model: unknown probe model 'nope'"):
        simulator.run(probes=[probes_at(0.0, 0.0)[0] | {"model": "nope"}])
    with pytest.raises(CaseError, match=r"protocol\[0\]\.probes: no probe named 'c'"):
        simulator.run(protocol=[{"phase": "freeze", "duration_s": 30, "probes": ["c"]}])
    with pytest.raises(CaseError, match=r"^case\.yaml: probes: "):
        simulator.run(probes=[])


def test_a_case_without_probes_or_protocol_prepares_but_does_not_simulate() -> None:
    data = {k: v for k, v in PHANTOM.items() if k not in {"probes", "protocol"}}
    case = case_from_dict(data, SOURCE)
    assert case.probes is None
    assert case.protocol is None
    with pytest.raises(CaseError, match=r"^case\.yaml: probes: required field is missing"):
        cryoplan.simulate(case)
    prepared = cryoplan.prepare(case)
    simulator = cryoplan.Simulator(prepared)
    with pytest.raises(CaseError, match=r"^case\.yaml: probes: required field is missing"):
        simulator.run()
    with pytest.raises(CaseError, match=r"^case\.yaml: protocol: required field is missing"):
        simulator.run(probes=probes_at(-6.0, 6.0))
    run = simulator.run(probes=probes_at(-6.0, 6.0), protocol=PHANTOM["protocol"])
    assert run.history.minimum_temperature_c.min() < -40.0
    with pytest.raises(CaseError, match=r"^case\.yaml: probes: "):  # given, it may not be empty
        case_from_dict(data | {"probes": []}, SOURCE)


# --- another process ---------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import pickle, sys
    import numpy as np
    import cryoplan
    prepared = pickle.loads(open(sys.argv[1], "rb").read())
    layout = pickle.loads(open(sys.argv[2], "rb").read())
    run = cryoplan.Simulator(prepared).run(probes=layout)
    np.save(sys.argv[3], run.history.minimum_temperature_c)
    """
)


def test_a_pickled_prepared_case_runs_identically_in_another_process(tmp_path: Path) -> None:
    """The case carries the probe models it was loaded with: here an argon-17g with a warmer
    wall than the catalogue's, which the other process must use although its own catalogue
    says otherwise."""
    packaged = load_catalogue().probes["argon-17g"]
    warmer = cal.with_wall_temperature(packaged, -120.0)
    case = case_from_dict(PHANTOM, SOURCE, probe_models={"argon-17g": warmer})
    prepared = cryoplan.prepare(case)
    layout = probes_at(-4.0, 8.0)
    here = cryoplan.Simulator(prepared).run(probes=layout).history.minimum_temperature_c
    (tmp_path / "prepared.pkl").write_bytes(pickle.dumps(prepared))
    (tmp_path / "layout.pkl").write_bytes(pickle.dumps(layout))
    again = pickle.loads((tmp_path / "prepared.pkl").read_bytes())
    np.testing.assert_array_equal(again.basal_temperature_c, prepared.basal_temperature_c)
    assert again.case.probe_models["argon-17g"] == warmer
    subprocess.run(
        [sys.executable, "-c", CHILD, *(str(tmp_path / n) for n in
                                        ("prepared.pkl", "layout.pkl", "tmin.npy"))],
        check=True,
    )  # fmt: skip
    there = np.load(tmp_path / "tmin.npy")
    np.testing.assert_array_equal(there, here)
    packaged_run = cryoplan.simulate(case_from_dict(PHANTOM | {"probes": layout}, SOURCE))
    assert packaged_run.history.minimum_temperature_c.min() < here.min() - 20.0  # −186 vs −120


def test_calibration_tries_a_model_for_one_case_only() -> None:
    """A fit's trial model reaches the simulation through the case (no global override) and
    leaves the packaged catalogue as it was."""
    m = cal.LITTRUP_SINGLE
    packaged = load_catalogue().probes[m.probe_model]
    weak = cal.with_film_coefficient(packaged, 0.3 * packaged.cooling.heat_transfer_w_m2k)  # type: ignore[union-attr]
    trial = cal.run(m, weak, spacing_mm=4.0)
    assert trial.case.probe_models[m.probe_model] == weak
    assert load_catalogue().probes[m.probe_model] == packaged
    catalogue = cal.run(m, None, spacing_mm=4.0)
    assert catalogue.case.probe_models[m.probe_model] == packaged
    assert cal.measure(trial, m) < cal.measure(catalogue, m) - 1.0


# --- a patient image: the crop is fixed at prepare time ------------------------------------------
def write_label_map(folder: Path) -> Path:
    """An 80 × 60 × 60 mm liver label map at 1 mm (origin at LPS (−40, −30, −30))."""
    grid = Grid((80, 60, 60), (1.0, 1.0, 1.0), (-40.0, -30.0, -30.0))
    image = sitk.GetImageFromArray(np.transpose(np.ones(grid.shape, np.int16), (2, 1, 0)))
    image.SetSpacing(grid.spacing_mm)
    image.SetOrigin(grid.origin_mm)
    path = folder / "labels.nrrd"
    sitk.WriteImage(image, str(path))
    return path


def image_case(folder: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "image-region",
        "domain": {"image": {"labels": str(write_label_map(folder)), "tissues": {1: "liver"},
                             "lesions": [{"centre_mm": [-10, 0, 0], "diameter_mm": 8}]}},
        "target": "tumour",
        "grid": {"spacing_mm": 3.0, "crop_margin_mm": 6.0,
                 "region_mm": {"lo_mm": [-16, -20, -10], "hi_mm": [14, 6, 10]}},
        "protocol": [{"phase": "freeze", "duration_min": 5}],
    } | extra  # fmt: skip


def assert_same_grid(a: Grid, b: Grid) -> None:
    assert (a.shape, a.spacing_mm, a.origin_mm) == (b.shape, b.spacing_mm, b.origin_mm)
    np.testing.assert_array_equal(a.direction, b.direction)


def probe_along_y(x_mm: float) -> dict[str, Any]:
    return {"model": "generic-17g", "tip_mm": [x_mm, 4, 0], "entry_mm": [x_mm, -80, 0]}


def test_an_image_grid_is_fixed_by_prepare_not_by_the_runs(tmp_path: Path) -> None:
    data = image_case(tmp_path)
    prepared = cryoplan.prepare(case_from_dict(data, str(tmp_path / "case.yaml")))
    grid = prepared.grid
    lo, hi = grid.bounds_mm()
    # the target (x −14…−6) and the region (x −16…14) grown by 6 mm: about x −22…20
    assert lo[0] < -21.0
    assert hi[0] > 19.0
    simulator = cryoplan.Simulator(prepared, backend="reference")
    near = simulator.run(probes=[probe_along_y(-10.0)])
    far = simulator.run(probes=[probe_along_y(12.0)])
    for run in (near, far):
        assert run.history.minimum_temperature_c.shape == grid.shape
    # each run froze around its own probe on the same grid
    for run, x_mm in ((near, -10.0), (far, 12.0)):
        tmin = run.history.minimum_temperature_c
        coldest = grid.lps_from_index(np.array(np.unravel_index(np.argmin(tmin), grid.shape)))
        assert abs(coldest[0] - x_mm) <= 3.0  # within a voxel
        assert tmin.min() < -10.0
    i_near = tuple(np.rint(grid.index_from_lps(np.array([-10.0, -5.0, 0.0]))).astype(int))
    assert far.history.minimum_temperature_c[i_near] > 30.0
    # a case whose own probes lie in the region is cropped the same as one without probes
    with_probes = case_from_dict(
        data | {"probes": [probe_along_y(-10.0), probe_along_y(12.0)]}, str(tmp_path / "c.yaml")
    )
    assert_same_grid(cryoplan.prepare(with_probes).grid, grid)
    # beyond the crop, a run is refused with the case's file and the field
    with pytest.raises(CaseError, match=r"case\.yaml: probes\[0\]\.tip_mm: .*outside the domain"):
        simulator.run(probes=[probe_along_y(30.0)])


def test_a_region_is_for_images_and_must_overlap_them(tmp_path: Path) -> None:
    region = {"lo_mm": [-5, -5, -5], "hi_mm": [5, 5, 5]}
    box = {"domain": {"box": {"size_mm": [20, 20, 20], "tissue": "gel"}},
           "grid": {"spacing_mm": 2.0, "region_mm": region}}  # fmt: skip
    with pytest.raises(CaseError, match=r"grid\.region_mm: a region for an image domain only"):
        case_from_dict(box, SOURCE)
    with pytest.raises(CaseError, match=r"grid\.region_mm: lo_mm must lie below hi_mm"):
        case_from_dict(box | {"grid": {"region_mm": {"lo_mm": [0, 0, 0], "hi_mm": [1, 0, 1]}}})
    far_away = image_case(tmp_path)
    far_away["grid"]["region_mm"] = {"lo_mm": [200, 0, 0], "hi_mm": [210, 5, 5]}
    with pytest.raises(CaseError, match=r"grid\.region_mm: a box that overlaps the image"):
        cryoplan.prepare(case_from_dict(far_away, SOURCE))
    nothing = image_case(tmp_path)
    del nothing["target"]
    del nothing["grid"]["region_mm"]
    with pytest.raises(CaseError, match=r"grid\.region_mm: a region to simulate"):
        cryoplan.prepare(case_from_dict(nothing, SOURCE))
