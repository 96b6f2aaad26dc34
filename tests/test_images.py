"""Patient images in, clinical formats out: the shared CT and MRI, geometry round trips, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
import yaml
from typer.testing import CliRunner

from cryoplan.anatomy.grid import Grid
from cryoplan.anatomy.images import Volume, read_labels, resample, same_grid
from cryoplan.anatomy.patient import add_lesion
from cryoplan.case import Lesion, case_from_dict
from cryoplan.cli import app
from cryoplan.discretise import discretise
from cryoplan.markups import probes_from_markups
from cryoplan.outcome import reach_toward
from cryoplan.outputs import write_nifti, write_result
from cryoplan.simulation import simulate

REPO = Path(__file__).parent.parent
SHARED = REPO.parent / "shared" / "data"
CT = SHARED / "abdomen_ct"
runner = CliRunner()


def need_shared() -> None:
    if not CT.is_dir():
        pytest.skip(f"{SHARED} is absent: the real-image tests need ../shared beside the checkout")


def ct_case(ivc_as: str = "ivc", **grid: float) -> dict:
    """The CT example with absolute paths, a 2 mm grid and one 10-minute freeze (fast)."""
    data = yaml.safe_load((REPO / "examples" / "ct-liver-ivc.yaml").read_text("utf-8"))
    image = data["domain"]["image"]
    image["file"] = str(CT / "ct.nii.gz")
    image["labels"] = str(CT / "labels.nii.gz")
    image["tissues"]["inferior_vena_cava"] = ivc_as
    data["grid"] = {"spacing_mm": 2.0, "crop_margin_mm": 20.0} | grid
    data["protocol"] = [{"phase": "freeze", "duration_min": 10}]
    return data


@pytest.fixture(scope="module")
def ct_pair():
    need_shared()
    with_sink = simulate(case_from_dict(ct_case("ivc"), str(REPO / "examples" / "ct.yaml")))
    without = simulate(case_from_dict(ct_case("liver"), str(REPO / "examples" / "ct.yaml")))
    return with_sink, without


def test_ivc_heat_sink_shortens_the_lethal_reach_on_its_side(ct_pair) -> None:
    """Same plan, with the IVC as a 37 °C heat sink and with the IVC taken as liver."""
    with_sink, without = ct_pair
    sink = with_sink.outcome.reach["ivc"]
    assert sink["vessel_distance_from_target_centre_mm"] < 15.0 + 10.0  # within 1 cm of the edge
    # the run without the sink, measured along the same line towards the same IVC voxels
    ivc = with_sink.prepared.tissue_mask("ivc")
    free = reach_toward(without.history.minimum_temperature_c, without.prepared, ivc)
    # the sink pulls both the ice edge and the lethal isotherm back on its side …
    assert sink["ice_edge_reach_toward_mm"] < free["ice_edge_reach_toward_mm"] - 1.0, (sink, free)
    assert sink["lethal_reach_toward_mm"] < free["lethal_reach_toward_mm"], (sink, free)
    # … and much less on the far side
    shrink_near = free["ice_edge_reach_toward_mm"] - sink["ice_edge_reach_toward_mm"]
    shrink_far = free["ice_edge_reach_away_mm"] - sink["ice_edge_reach_away_mm"]
    assert shrink_far < 0.5 * shrink_near, (sink, free)
    assert with_sink.history.ledger.relative_error < 1e-9


def test_outputs_overlay_the_input_image(ct_pair, tmp_path: Path) -> None:
    with_sink, _ = ct_pair
    out = write_result(with_sink, tmp_path / "ct")
    labels = read_labels(CT / "labels.nii.gz", "labels")
    for name in ("lethal_on_image.nii.gz", "lethal_on_image.nrrd", "tmin_on_image.nrrd"):
        volume = read_labels(out / name, name) if "lethal" in name else None
        image = sitk.ReadImage(str(out / name))
        got = Grid(image.GetSize(), image.GetSpacing(), image.GetOrigin(),
                   np.asarray(image.GetDirection()).reshape(3, 3))  # fmt: skip
        assert same_grid(got, labels.grid), name
        if volume is not None:
            centre = labels.grid.lps_from_index(np.argwhere(volume.array > 0).mean(axis=0))
            assert np.linalg.norm(centre - np.array([-47.0, -161.3, 148.3])) < 6.0
    probes = probes_from_markups(out / "probes.mrk.json")
    assert [p["name"] for p in probes] == ["a", "b", "c"]
    np.testing.assert_allclose(probes[0]["tip_mm"], [-47.0, -150.3, 156.96])
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert summary["outcome"]["structures"]["ivc"]["heat_sink"]["lethal_reach_toward_mm"] > 0


def test_breast_mri_case_with_its_real_lesion() -> None:
    need_shared()
    case = case_from_dict(
        yaml.safe_load((REPO / "examples" / "breast-mri-lesion.yaml").read_text("utf-8")),
        str(REPO / "examples" / "breast-mri-lesion.yaml"),
    )
    result = simulate(case)
    target = result.outcome.target
    assert target is not None
    assert target["volume_ml"] == pytest.approx(0.13, abs=0.05)  # data README: ≈ 0.13 mL
    assert target["coverage_percent"]["lethal"] == 100.0
    assert result.history.ledger.relative_error < 1e-9


# --- bad input -------------------------------------------------------------------------------
def _bad(tmp_path: Path, mutate) -> tuple[object, Path]:
    need_shared()
    data = ct_case()
    mutate(data)
    case_file = tmp_path / "case.yaml"
    case_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    return runner.invoke(app, ["simulate", str(case_file), "--out", str(out)]), out


def _one_line(result, out: Path, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0]
    assert not out.exists()


def test_label_the_case_maps_but_the_map_lacks(tmp_path: Path) -> None:
    result, out = _bad(tmp_path, lambda d: d["domain"]["image"]["tissues"].update({21: "liver"}))
    _one_line(result, out, "domain.image.tissues.21", "label 21 does not")


def test_unknown_label_name(tmp_path: Path) -> None:
    result, out = _bad(
        tmp_path, lambda d: d["domain"]["image"]["tissues"].update({"livr": "liver"})
    )
    _one_line(result, out, "domain.image.tissues.livr", "TotalSegmentator")


def test_empty_target(tmp_path: Path) -> None:
    result, out = _bad(tmp_path, lambda d: d["domain"]["image"].update({"lesions": []}))
    _one_line(result, out, "target", "has none")


def test_grids_that_disagree(tmp_path: Path) -> None:
    mri = str(SHARED / "breast_mri" / "mri.nrrd")
    result, out = _bad(tmp_path, lambda d: d["domain"]["image"].update({"file": mri}))
    _one_line(result, out, "labels.nii.gz", "domain.image.labels", "differ")


def test_corrupt_and_truncated_files(tmp_path: Path) -> None:
    need_shared()
    truncated = tmp_path / "cut.nii.gz"
    truncated.write_bytes((CT / "labels.nii.gz").read_bytes()[:5000])
    garbage = tmp_path / "garbage.nrrd"
    garbage.write_bytes(b"NRRD0004\nthis is not a header\n")
    for bad in (truncated, garbage, tmp_path / "missing.nii.gz"):
        result, out = _bad(
            tmp_path, lambda d, b=bad: d["domain"]["image"].update({"labels": str(b)})
        )
        _one_line(result, out, str(bad), "domain.image.labels", "readable image")


# --- geometry round trips ---------------------------------------------------------------------
def test_nifti_written_by_cryoplan_reads_back_in_lps_with_simpleitk(tmp_path: Path) -> None:
    """RAS (NIfTI, written with nibabel) ↔ LPS (ITK): the same voxel at the same place."""
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # oblique axes
    grid = Grid((6, 7, 8), (1.0, 1.5, 2.0), (12.0, -30.0, 5.0), rotation)
    data = np.zeros(grid.shape, np.float32)
    data[2, 3, 4] = 1.0
    write_nifti(tmp_path / "x.nii.gz", data, grid)
    image = sitk.ReadImage(str(tmp_path / "x.nii.gz"))
    np.testing.assert_allclose(image.GetOrigin(), grid.origin_mm, atol=1e-4)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), rotation, atol=1e-6)
    point = image.TransformIndexToPhysicalPoint((2, 3, 4))
    np.testing.assert_allclose(point, grid.lps_from_index(np.array([2, 3, 4])), atol=1e-4)
    assert nib.load(tmp_path / "x.nii.gz").get_fdata()[2, 3, 4] == 1.0


def test_markups_in_ras_are_read_as_lps(tmp_path: Path) -> None:
    points = [{"position": [1, 2, 3]}, {"position": [4, 5, 6]}]
    line = {"type": "Line", "name": "p", "coordinateSystem": "RAS", "controlPoints": points}
    doc = {"markups": [line]}
    path = tmp_path / "p.mrk.json"
    path.write_text(json.dumps(doc))
    (probe,) = probes_from_markups(path)
    assert probe["tip_mm"] == [-1.0, -2.0, 3.0]
    assert probe["entry_mm"] == [-4.0, -5.0, 6.0]


def test_add_lesion_writes_a_sphere_of_the_asked_size() -> None:
    grid = Grid((60, 60, 60), (0.5, 0.5, 0.5), (-15.0, -15.0, -15.0))
    labels = Volume(np.zeros(grid.shape, np.int32), grid)
    out = add_lesion(labels, Lesion(centre_mm=(0.0, 1.0, -2.0), diameter_mm=20.0), 7)
    volume_mm3 = (out.array == 7).sum() * 0.125
    assert volume_mm3 == pytest.approx(4 / 3 * math.pi * 10.0**3, rel=0.02)
    assert labels.array.max() == 0  # the input is not changed
    ellipsoid = add_lesion(labels, Lesion(centre_mm=(0, 0, 0), diameters_mm=(20, 10, 10)), 1)
    assert (ellipsoid.array == 1).sum() * 0.125 == pytest.approx(
        4 / 3 * math.pi * 10 * 5 * 5, rel=0.03
    )


def test_lesion_add_command(tmp_path: Path) -> None:
    need_shared()
    out = tmp_path / "with_lesion.nii.gz"
    args = ["lesion", "add", str(CT / "labels.nii.gz"), "--out", str(out), "--diameter", "30"]
    ok = runner.invoke(app, [*args, "--centre", "-47", "-161.3", "148.3"])
    assert ok.exit_code == 0, ok.output
    labels = read_labels(out, "out")
    source = read_labels(CT / "labels.nii.gz", "in")
    assert same_grid(labels.grid, source.grid)
    new = int(source.array.max()) + 1  # the next free label, so no structure is overwritten
    assert (labels.array == new).sum() * 27.0 == pytest.approx(4 / 3 * math.pi * 15**3, rel=0.1)
    sidecar = json.loads((tmp_path / "with_lesion.lesion.json").read_text("utf-8"))
    assert sidecar["synthetic_lesion"] is True
    outside = runner.invoke(app, [*args[:4], str(tmp_path / "x.nii.gz"), *args[5:],
                                  "--centre", "900", "0", "0"])  # fmt: skip
    assert outside.exit_code == 2
    assert "--centre" in outside.stderr
    assert not (tmp_path / "x.nii.gz").exists()


def test_oblique_image_puts_the_lethal_zone_on_the_lesion(tmp_path: Path) -> None:
    """A label map whose axes are rotated 30° about z and tilted: the lethal zone written back
    on that grid must sit on the lesion's LPS centre (a direction handled wrongly anywhere in
    read → crop → solve → write-back would move it)."""
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    t = math.radians(15)
    rx = np.array([[1.0, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])
    direction = rz @ rx
    grid = Grid((48, 44, 40), (1.25, 1.25, 1.5), (-20.0, -35.0, 10.0), direction)
    labels = np.ones(grid.shape, np.int16)  # 1 = liver everywhere
    image = sitk.GetImageFromArray(np.transpose(labels, (2, 1, 0)))
    image.SetSpacing(grid.spacing_mm)
    image.SetOrigin(grid.origin_mm)
    image.SetDirection(tuple(direction.ravel()))
    sitk.WriteImage(image, str(tmp_path / "labels.nrrd"))
    centre = grid.lps_from_index(np.array([24.0, 22.0, 20.0]))
    axis = direction[:, 2]  # the probe along the image's own (tilted) third axis
    data = {
        "name": "oblique",
        "domain": {"image": {"labels": "labels.nrrd", "tissues": {1: "liver"},
                             "lesions": [{"centre_mm": centre.tolist(), "diameter_mm": 8}]}},
        "target": "tumour",
        "grid": {"spacing_mm": 1.5, "crop_margin_mm": 12},
        "probes": [{"model": "generic-17g", "tip_mm": (centre - 11 * axis).tolist(),
                    "entry_mm": (centre + 80 * axis).tolist()}],
        "protocol": [{"phase": "freeze", "duration_min": 4}],
    }  # fmt: skip
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(data), "utf-8")
    result = simulate(case_from_dict(data, str(tmp_path / "case.yaml")))
    out = write_result(result, tmp_path / "out")
    lethal = read_labels(out / "lethal_on_image.nrrd", "lethal")
    assert same_grid(lethal.grid, grid)
    found = grid.lps_from_index(np.argwhere(lethal.array > 0).mean(axis=0))
    assert np.linalg.norm(found - centre) < 1.5  # within a voxel of the lesion's centre


def test_a_vessel_thinner_than_a_voxel_still_acts_as_a_heat_sink(tmp_path: Path) -> None:
    """A 0.5 mm vein on a 0.5 mm label map, simulated at 2 mm: nearest-neighbour resampling
    alone loses it (it passes between the coarse voxels' centres); the case keeps it as a
    continuous chain of vessel voxels, so it still cools."""
    grid = Grid((80, 80, 80), (0.5, 0.5, 0.5), (-20.0, -20.0, -20.0))
    labels = np.ones(grid.shape, np.int16)  # liver
    labels[48, 48, :] = 2  # a vein along z at x = y = 4.0 mm
    image = sitk.GetImageFromArray(np.transpose(labels, (2, 1, 0)))
    image.SetSpacing(grid.spacing_mm)
    image.SetOrigin(grid.origin_mm)
    sitk.WriteImage(image, str(tmp_path / "labels.nrrd"))
    data = {
        "name": "thin-vessel",
        "domain": {"image": {"labels": "labels.nrrd", "tissues": {1: "liver", 2: "vessel"},
                             "lesions": [{"centre_mm": [-6.0, -6.0, 0.0], "diameter_mm": 8}]}},
        "target": "tumour",
        "grid": {"spacing_mm": 2.0, "crop_margin_mm": 12},
        "probes": [{"model": "argon-17g", "tip_mm": [-6.0, -6.0, -11.0],
                    "entry_mm": [-6.0, -6.0, 80.0]}],
        "protocol": [{"phase": "freeze", "duration_min": 1}],
    }  # fmt: skip
    case = case_from_dict(data, str(tmp_path / "case.yaml"))
    d = discretise(case)
    nearest_only = resample(Volume(labels, grid), d.grid, nearest=True)
    assert not (nearest_only == 2).any()  # what plain resampling would have done
    vessel = d.problem.material == [t.name for t in d.tissues].index("vessel")
    assert vessel[:, :, :].any(axis=(0, 1)).all()  # present on every z slice: continuous
    assert d.problem.fixed[vessel].all()  # and held at blood temperature
    summary = simulate(case).summary()
    assert summary["anatomy"]["synthetic_lesions"][0]["diameter_mm"] == 8


def test_probes_read_back_from_slicer_markups_into_a_case(tmp_path: Path) -> None:
    """Plan → probes.mrk.json (as 3D Slicer opens it) → a new case with `probe_markups`."""
    first = case_from_dict(
        yaml.safe_load((REPO / "examples" / "three-probe-liver.yaml").read_text("utf-8"))
    )
    out = write_result(simulate(first), tmp_path / "plan")
    data = yaml.safe_load((REPO / "examples" / "three-probe-liver.yaml").read_text("utf-8"))
    del data["probes"]
    data["probe_markups"] = {"file": "plan/probes.mrk.json", "model": "argon-17g"}
    again = case_from_dict(data, str(tmp_path / "case.yaml"))
    assert [p.name for p in again.probes] == [p.name for p in first.probes]
    for a, b in zip(again.probes, first.probes, strict=True):
        np.testing.assert_allclose(a.tip_mm, b.tip_mm)
        np.testing.assert_allclose(a.entry_mm, b.entry_mm)
    assert out.joinpath("probes.mrk.json").is_file()
