"""The command line and the case file: outputs, examples, and every kind of bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from test_vtk import read_vti, read_vtp
from typer.testing import CliRunner

import cryoplan
from cryoplan.cli import app
from cryoplan.discretise import discretise

REPO = Path(__file__).parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
runner = CliRunner()


@pytest.fixture(scope="module", params=[p.name for p in EXAMPLES])
def example_run(request: pytest.FixtureRequest, run_example):
    return run_example(request.param)


def test_example_runs_and_writes_the_contract_files(example_run) -> None:
    _, out, result = example_run
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    for key in ("0", "-20", "-40"):
        iso = summary["isotherms"][key]
        assert iso["volume_ml"] > 0
        assert len(iso["extent_mm"]) == 3
    # the isotherms nest: colder zones are smaller
    vols = [summary["isotherms"][k]["volume_ml"] for k in ("0", "-20", "-40")]
    assert vols[0] > vols[1] > vols[2]
    assert summary["energy_balance"]["relative_error"] < 0.005
    assert summary["timing"]["steps"] > 0


def test_example_tmin_carries_the_grid_affine(example_run) -> None:
    case_file, out, _ = example_run
    case = cryoplan.load_case(case_file)
    grid = discretise(case).grid
    image = nib.load(out / "tmin.nii.gz")
    np.testing.assert_allclose(image.affine, grid.affine_ras, atol=1e-6)
    assert image.shape == grid.shape
    tmin = np.asarray(image.dataobj)
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert tmin.min() == pytest.approx(summary["minimum_temperature_c"], abs=1e-3)
    if case.domain.image is None:
        # a box or phantom is centred on the LPS origin: (0, 0, 0) maps to the middle voxel
        centre = np.linalg.inv(grid.affine_lps) @ np.array([0.0, 0.0, 0.0, 1.0])
        assert np.all(np.abs(centre[:3] - (np.asarray(grid.shape) - 1) / 2) < 1e-9)


def test_requested_snapshots_are_written(example_run) -> None:
    case_file, out, _ = example_run
    minutes = (
        yaml.safe_load(case_file.read_text("utf-8")).get("output", {}).get("snapshot_times_min", [])
    )
    written = sorted(p.name for p in out.glob("temperature_*min.nii.gz"))
    assert written == sorted(f"temperature_{m:g}min.nii.gz" for m in minutes)
    for name in written:
        field = np.asarray(nib.load(out / name).dataobj)
        tmin = np.asarray(nib.load(out / "tmin.nii.gz").dataobj)
        assert np.all(field >= tmin - 1e-3)  # a snapshot never goes below the minimum reached


def test_out_that_is_a_file_is_refused_before_solving(tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a directory")
    case_file = tmp_path / "case.yaml"
    case_file.write_text(yaml.safe_dump(GOOD))
    result = runner.invoke(app, ["simulate", str(case_file), "--out", str(blocker)])
    assert result.exit_code == 2
    assert "--out" in result.stderr
    assert blocker.read_text("utf-8") == "a file, not a directory"


def test_example_sensors_csv(example_run) -> None:
    case_file, out, _ = example_run
    names = [s["name"] for s in yaml.safe_load(case_file.read_text("utf-8"))["sensors"]]
    rows = list(csv.reader((out / "sensors.csv").open(encoding="utf-8")))
    assert rows[0] == ["time_s", *names]
    times = [float(r[0]) for r in rows[1:]]
    assert times[0] == 0.0
    assert times == sorted(times)
    first = [float(v) for v in rows[1][1:]]
    # t = 0 is the basal steady state: blood temperature, plus what metabolism adds where
    # perfusion cannot carry it off (at most q_m/(w_b ρ_b c_b) = 1.74 K, in muscle)
    assert all(37.0 <= t <= 38.75 for t in first), first
    coldest = min(float(v) for r in rows[1:] for v in r[1:])
    assert coldest < 0.0  # the nearest sensor froze


def test_sensor_nearer_the_probe_gets_colder() -> None:
    case = cryoplan.load_case(REPO / "examples" / "single-probe-gel.yaml")
    result = cryoplan.simulate(case)
    lows = result.history.sensor_temperature_c.min(axis=0)
    assert lows[0] < lows[1] < lows[2]


def test_demo_command_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert summary["name"] == "demo-liver-tumour-vessel"
    assert not list(out.glob("*.vt[ip]"))  # VTK files only on request (simulate --vtk)
    assert summary["tissues"]["vessel"] > 0
    assert summary["energy_balance"]["relative_error"] < 0.005


# --- bad input: one line naming file, field and expectation; exit 2; nothing written ---------
GOOD = {
    "name": "bad-input",
    "domain": {"box": {"size_mm": [30, 30, 40], "tissue": "gel"}},
    "grid": {"spacing_mm": 2.0},
    "probes": [{"model": "generic-17g", "tip_mm": [0, 0, -10], "entry_mm": [0, 0, 50]}],
    "protocol": [{"phase": "freeze", "duration_min": 1}],
}


def _with(path: tuple, value: object) -> dict:
    data = json.loads(json.dumps(GOOD))
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


_DELETE = object()
BAD_CASES = {
    "unknown tissue": (
        _with(("domain", "box", "tissue"), "livr"),
        "domain.box.tissue",
        "unknown tissue",
    ),
    "unknown probe model": (
        _with(("probes", 0, "model"), "nope"),
        "probes[0].model",
        "unknown probe model",
    ),
    "probe outside": (
        _with(("probes", 0, "tip_mm"), [0, 0, -60]),
        "probes[0].tip_mm",
        "outside the domain",
    ),
    "tip equals entry": (_with(("probes", 0, "entry_mm"), [0, 0, -10]), "probes[0]", "same point"),
    "negative duration": (
        _with(("protocol", 0, "duration_min"), -5),
        "protocol[0]",
        "greater than 0",
    ),
    "missing duration": (
        _with(("protocol", 0, "duration_min"), _DELETE),
        "protocol[0]",
        "duration",
    ),
    "missing protocol": (_with(("protocol",), _DELETE), "protocol", "required"),
    "NaN value": (
        _with(("tissues",), {"gel": {"latent_heat_j_m3": float("nan")}}),
        "tissues.gel.latent_heat_j_m3",
        "finite",
    ),
    "negative conductivity": (
        _with(("tissues",), {"gel": {"conductivity_w_mk": {"unfrozen": -0.5, "frozen": 2}}}),
        "tissues.gel.conductivity_w_mk.unfrozen",
        "greater than 0",
    ),
    "solidus above liquidus": (
        _with(("tissues",), {"gel": {"freezing_range_c": [0, -5]}}),
        "tissues.gel",
        "solidus",
    ),
    "incomplete new tissue": (
        _with(("tissues",), {"jelly": {"latent_heat_j_m3": 1e8}}),
        "tissues.jelly",
        "needs every value",
    ),
    "zero spacing": (_with(("grid", "spacing_mm"), 0), "grid.spacing_mm", "greater than 0"),
    "grid too fine": (_with(("grid", "spacing_mm"), 0.01), "grid.spacing_mm", "at most"),
    "misspelt field": (_with(("protocl",), []), "protocl", "unknown field"),
    "phase names unknown probe": (
        _with(("protocol", 0, "probes"), ["p9"]),
        "protocol[0].probes",
        "no probe named",
    ),
    "sensor outside": (
        _with(("sensors",), [{"name": "s", "at_mm": [99, 0, 0]}]),
        "sensors[0].at_mm",
        "inside",
    ),
}
# values outside their plausible ranges (src/cryoplan/limits.yaml)
_INLINE = {"diameter_mm": 1.5, "active_length_mm": 20, "wall_temperature_c": -150}
_OUTSIDE = {
    "body at 1000 °C": (("body_temperature_c",), 1000, "body_temperature_c"),
    "body at −300 °C": (("body_temperature_c",), -300, "body_temperature_c"),
    "lethal at +10 °C": (("tissues",), {"gel": {"lethal_temperature_c": 10}}, "lethal"),
    "lethal at +50 °C": (("tissues",), {"gel": {"lethal_temperature_c": 50}}, "lethal"),
    "a 1e9-minute freeze": (("protocol", 0, "duration_min"), 1e9, "protocol[0].duration_min"),
    "a tiny sensor interval": (("output",), {"sensor_interval_s": 1e-6}, "sensor_interval_s"),
    "absurd heat capacity": (
        ("tissues",),
        {"gel": {"heat_capacity_j_m3k": {"unfrozen": 1e12, "frozen": 1.9e6}}},
        "tissues.gel.heat_capacity_j_m3k.unfrozen",
    ),
    "absurd perfusion": (("tissues",), {"gel": {"perfusion_1_s": 1000}}, "perfusion_1_s"),
    "a 500 mm probe": (
        ("probes", 0),
        {**_INLINE, "diameter_mm": 500, "tip_mm": [0, 0, -10], "entry_mm": [0, 0, 50]},
        "probes[0].diameter_mm",
    ),
    "a wall at +80 °C": (
        ("probes", 0),
        {**_INLINE, "wall_temperature_c": 80, "tip_mm": [0, 0, -10], "entry_mm": [0, 0, 50]},
        "probes[0].wall_temperature_c",
    ),
    "a wall at −500 °C": (
        ("probes", 0),
        {**_INLINE, "wall_temperature_c": -500, "tip_mm": [0, 0, -10], "entry_mm": [0, 0, 50]},
        "probes[0].wall_temperature_c",
    ),
    "a thaw at −400 °C": (
        ("probes", 0, "active_thaw_temperature_c"),
        -400,
        "probes[0].active_thaw_temperature_c",
    ),
}
BAD_CASES |= {
    name: (_with(path, value), field, "allow_unphysical")
    for name, (path, value, field) in _OUTSIDE.items()
}
BAD_CASES |= {
    "spacing 1e-7 mm (a voxel count past int64)": (
        _with(("grid", "spacing_mm"), 1e-7),
        "grid.spacing_mm",
        "at most",
    ),
    "spacing 0.06 mm on a 200 mm box": (
        _with(("domain", "box", "size_mm"), [200, 200, 200]) | {"grid": {"spacing_mm": 0.06}},
        "grid.spacing_mm",
        "at most",
    ),
    "one voxel coarser than the box": (
        _with(("grid", "spacing_mm"), 200),
        "grid.spacing_mm",
        "at least 4 voxels",
    ),
}
BAD_CASES["a 1e12 mm lesion"] = (
    {
        "domain": {
            "image": {
                "file": "ct.nii.gz",
                "labels": "labels.nii.gz",
                "tissues": {"liver": "liver"},
                "lesions": [{"centre_mm": [0, 0, 0], "diameter_mm": 1e12}],
            }
        }
    },
    "domain.image.lesions[0].diameter_mm",
    "allow_unphysical",
)
BAD_CASES["duplicate sensor names"] = (
    _with(("sensors",), [{"name": "t", "at_mm": [1, 0, 0]}, {"name": "t", "at_mm": [2, 0, 0]}]),
    "sensors[1].name",
    "a name of its own",
)
BAD_CASES["allow_unphysical: yes"] = (
    _with(("allow_unphysical",), "yes"),
    "allow_unphysical",
    "valid boolean",
)


def _assert_clean_failure(result, case_file: Path, out: Path, field: str, expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert str(case_file) in line
    assert field in line
    assert expected in line
    assert "Traceback" not in result.output + result.stderr
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_bad_case_is_one_clear_line_with_exit_status_2(name: str, tmp_path: Path) -> None:
    data, field, expected = BAD_CASES[name]
    case_file = tmp_path / "case.yaml"
    case_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", str(case_file), "--out", str(out)])
    _assert_clean_failure(result, case_file, out, field, expected)


def _good_with(path: tuple, literal: str) -> str:
    """The GOOD case as YAML text with the value at `path` written as `literal` (a YAML
    scalar that a dumper would quote, such as `yes`)."""
    return yaml.safe_dump(_with(path, "__LITERAL__")).replace("__LITERAL__", literal)


BAD_FILES = {
    "malformed YAML": ("name: x\nprobes: [ {tip_mm: [0, 0\n", "line", "malformed YAML"),
    "missing file": (None, "", "cannot read"),
    "not a mapping": ("- just\n- a list\n", "(top level)", "mapping"),
    "duplicate key": (yaml.safe_dump(GOOD) + "name: again\n", "line", "duplicate key 'name'"),
    "yes as a number": (
        _good_with(("grid", "spacing_mm"), "yes"),
        "grid.spacing_mm",
        "valid number (got 'yes')",
    ),
    "true as a number": (
        _good_with(("grid", "spacing_mm"), "true"),
        "grid.spacing_mm",
        "valid number (got True)",
    ),
    "true as a count": (
        _good_with(("protocol", 0, "duration_min"), "true"),
        "protocol[0]",
        "valid number",
    ),
    "nested 20,000 deep": ("name: " + "[" * 20_000 + "]" * 20_000 + "\n", "(top level)", "nested"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_one_clear_line_with_exit_status_2(name: str, tmp_path: Path) -> None:
    content, field, expected = BAD_FILES[name]
    case_file = tmp_path / "case.yaml"
    if content is not None:
        case_file.write_text(content)
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", str(case_file), "--out", str(out)])
    _assert_clean_failure(result, case_file, out, field, expected)


def test_case_overrides_library_values_and_records_the_source() -> None:
    data = _with(("tissues",), {"gel": {"latent_heat_j_m3": 1.0e8}})
    d = discretise(cryoplan.case.case_from_dict(data))
    gel = d.tissues[0]
    assert gel.latent_heat_j_m3 == 1.0e8
    assert gel.sources["latent_heat_j_m3"] == "case file"
    assert gel.conductivity_w_mk.frozen == 2.2  # untouched library value


def test_vtk_files_for_paraview(example_run) -> None:
    """`--vtk`: the fields on the grid (T_min as in tmin.nii.gz) and the three isotherms."""
    _, out, _ = example_run
    image, fields = read_vti(out / "fields.vti")
    assert {"minimum_temperature_c", "lethal_zone", "tissue_index"} <= set(fields)
    tmin = np.asarray(nib.load(out / "tmin.nii.gz").dataobj)
    np.testing.assert_array_equal(fields["minimum_temperature_c"], tmin)
    np.testing.assert_array_equal(
        fields["lethal_zone"], np.asarray(nib.load(out / "lethal.nii.gz").dataobj)
    )
    assert image.get("Origin") is not None
    for threshold in ("0", "-20", "-40"):
        points, triangles, _ = read_vtp(out / f"isotherm_{threshold}c.vtp")
        assert len(points) > 0
        assert len(triangles) > 0


def test_allow_unphysical_runs_and_every_output_says_so(tmp_path: Path) -> None:
    data = _with(("body_temperature_c",), 50) | {"allow_unphysical": True}
    case_file = tmp_path / "case.yaml"
    case_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", str(case_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    warnings = json.loads((out / "summary.json").read_text("utf-8"))["outcome"]["warnings"]
    assert any("allow_unphysical" in w and "body_temperature_c = 50" in w for w in warnings)
    assert "allow_unphysical" in result.output


@pytest.fixture
def small_labels(tmp_path: Path) -> Path:
    """A 20 mm cube of labels (1 in a central block) at 1 mm, identity affine."""
    array = np.zeros((20, 20, 20), np.uint8)
    array[5:15, 5:15, 5:15] = 1
    path = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(array, np.eye(4)), path)
    return path


BAD_LESIONS = {
    "NaN diameter": (["--diameter", "nan"], "--diameter"),
    "infinite diameter": (["--diameter", "inf"], "--diameter"),
    "a 1e12 mm lesion": (["--diameter", "1e12"], "--diameter"),
    "label 0": (["--diameter", "4", "--label", "0"], "--label"),
    "label 2^40": (["--diameter", "4", "--label", str(2**40)], "--label"),
    "out is the input": (["--diameter", "4", "--out", "{labels}"], "--out"),
    "out under a file": (["--diameter", "4", "--out", "{labels}/x.nii.gz"], "--out"),
}


@pytest.mark.parametrize("name", sorted(BAD_LESIONS))
def test_bad_lesion_add_is_one_line_and_writes_nothing(
    name: str, small_labels: Path, tmp_path: Path
) -> None:
    args, field = BAD_LESIONS[name]
    args = [a.replace("{labels}", str(small_labels)) for a in args]
    out = ["--out", str(tmp_path / "new.nii.gz")] if "--out" not in args else []
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = runner.invoke(
        app, ["lesion", "add", str(small_labels), "--centre", "-10", "-10", "10", *out, *args]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert field in lines[0]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_lesion_add_sidecar_names_no_input_path(small_labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "with.nii.gz"
    result = runner.invoke(
        app, ["lesion", "add", str(small_labels), "--out", str(out), "--centre", "-10", "-10",
              "10", "--diameter", "4"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    sidecar = (tmp_path / "with.lesion.json").read_text("utf-8")
    assert str(tmp_path) not in sidecar
    assert json.loads(sidecar)["label"] == 2


_LINE = {"type": "Line", "controlPoints": [{"position": [0, 0, -10]}, {"position": [0, 0, 50]}]}
BAD_MARKUPS = {
    "a list": ([_LINE], "(top level)"),
    "no position": ({"markups": [{"type": "Line", "controlPoints": [{}, {}]}]}, "position"),
    "a string position": (
        {
            "markups": [
                {**_LINE, "controlPoints": [{"position": "0 0 -10"}, {"position": [0, 0, 5]}]}
            ]
        },
        "position",
    ),
    "2-D points": (
        {"markups": [{**_LINE, "controlPoints": [{"position": [0, 0]}, {"position": [0, 5]}]}]},
        "position",
    ),
    "NaN coordinates": (
        {"markups": [{**_LINE, "controlPoints": [{"position": [0, 0, float("nan")]}] * 2}]},
        "position",
    ),
    "nested deep": ("[" * 100_000 + "]" * 100_000, "(top level)"),
}


@pytest.mark.parametrize("name", sorted(BAD_MARKUPS))
def test_bad_markups_are_one_line_naming_the_markups_file(name: str, tmp_path: Path) -> None:
    content, field = BAD_MARKUPS[name]
    markups = tmp_path / "plan.mrk.json"
    markups.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    data = _with(("probes",), _DELETE) | {
        "probe_markups": {"file": str(markups), "model": "generic-17g"}
    }
    case_file = tmp_path / "case.yaml"
    case_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", str(case_file), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(markups) in lines[0]
    assert field in lines[0]
    assert not out.exists()


def test_a_grid_beyond_the_memory_limit_is_refused_before_allocating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYOPLAN_MEMORY_LIMIT_GB", "0.0001")  # 100 kB: less than this case
    case_file = tmp_path / "case.yaml"
    case_file.write_text(yaml.safe_dump(GOOD))
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", str(case_file), "--out", str(out)])
    _assert_clean_failure(result, case_file, out, "grid.spacing_mm", "fits in memory")


def test_records_count_in_the_memory_estimate(tmp_path: Path, monkeypatch) -> None:
    """The grid alone fits in 10 MB; 2,000 temperature snapshots of it do not."""
    monkeypatch.setenv("CRYOPLAN_MEMORY_LIMIT_GB", "0.01")
    data = _with(("output",), {"snapshot_times_min": [i / 2000 for i in range(2000)]})
    case_file = tmp_path / "case.yaml"
    case_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", str(case_file), "--out", str(out)])
    _assert_clean_failure(result, case_file, out, "grid.spacing_mm", "and their records")


def test_a_run_longer_than_the_time_limit_is_refused_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYOPLAN_TIME_LIMIT_H", "1e-9")  # any run is longer than this
    case_file = tmp_path / "case.yaml"
    case_file.write_text(yaml.safe_dump(GOOD))
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", str(case_file), "--out", str(out)])
    _assert_clean_failure(result, case_file, out, "grid.spacing_mm", "a run that ends")
