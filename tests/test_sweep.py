"""`cryoplan sweep`: samples from the seed and their number alone, identical results on one
or two Dask workers, resume after the client is killed, a worker killed mid-sweep, the
sensitivity indices, and bad sweep files.

The cases are the liver phantom on a 2.5 mm grid (32³ voxels: above the size where the
solver's sweeps go threaded) with a 4-min freeze: about 0.15 s a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml

from cryoplan.case import load_case
from cryoplan.sweep import run_sweep
from cryoplan.sweep.folder import SweepFolder
from cryoplan.sweep.samples import samples_of
from cryoplan.sweep.spec import load_sweep_spec, sweep_from_dict
from cryoplan.sweep.worker import run_sample, variant_case

CASE = {
    "name": "phantom",
    "domain": {"phantom": "liver-tumour"},
    "target": "tumour",
    "margin_mm": 5,
    "grid": {"spacing_mm": 2.5},
    "probes": [
        {"name": "p1", "model": "argon-17g", "tip_mm": [-8, 11, 0], "entry_mm": [-8, -120, 0]},
        {"name": "p2", "model": "argon-17g", "tip_mm": [4, 11, -7], "entry_mm": [4, -120, -7]},
        {"name": "p3", "model": "argon-17g", "tip_mm": [4, 11, 7], "entry_mm": [4, -120, 7]},
    ],
    "protocol": [{"phase": "freeze", "duration_min": 4}],
}
LIVER_PERFUSION = {
    "name": "liver_perfusion",
    "tissue": "liver",
    "property": "perfusion_1_s",
    "factor": {"uniform": [0.5, 1.5]},
    "source": "test: ±50 %",
}
FREEZE_4 = {"phase": "freeze", "duration_min": 4}
FREEZE_2 = {"phase": "freeze", "duration_min": 2}
THAW_1 = {"phase": "passive_thaw", "duration_min": 1}
SWEEP = {
    "name": "robustness",
    "cases": ["case.yaml"],
    "samples": 6,
    "seed": 11,
    "vary": {
        "placement_error_mm": {"lateral": 2.0, "depth": 2.0},
        "parameters": [LIVER_PERFUSION],
        "protocols": [
            {"name": "freeze-4", "phases": [FREEZE_4]},
            {"name": "freeze-2-thaw-1-freeze-2", "phases": [FREEZE_2, THAW_1, FREEZE_2]},
        ],
    },
}


def write_sweep(folder: Path, **changes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "case.yaml").write_text(yaml.safe_dump(CASE), "utf-8")
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(SWEEP | changes), "utf-8")
    return path


def table(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "samples.parquet")


@pytest.fixture(scope="module")
def cluster_address():
    """A cluster of 2 worker processes started apart from the sweeps, reached by its
    scheduler's address as `--scheduler` reaches one (and shared by the tests that do not
    test the cluster's own start)."""
    import logging  # noqa: PLC0415

    from distributed import LocalCluster  # noqa: PLC0415

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:  # fmt: skip
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory) -> tuple[Path, Path]:
    """The sweep on a LocalCluster of 2 worker processes × 1 thread: (sweep file, results)."""
    root = tmp_path_factory.mktemp("sweep")
    spec = write_sweep(root)
    run_sweep(spec, root / "two", workers=2)
    return spec, root / "two"


def test_sample_inputs_depend_on_the_seed_and_the_number_only(tmp_path):
    spec_file = write_sweep(tmp_path)
    case = load_case(tmp_path / "case.yaml")
    few = samples_of(load_sweep_spec(spec_file), [case])
    many = samples_of(sweep_from_dict(SWEEP | {"samples": 400}, "x"), [case])
    assert few == many[: len(few)]
    other_seed = samples_of(sweep_from_dict(SWEEP | {"seed": 12}, "x"), [case])
    assert few[0].factors != other_seed[0].factors
    assert few[0].shifts_mm != other_seed[0].shifts_mm
    # both protocol variants of a sample run the same inputs (common random numbers)
    assert few[0].factors == few[1].factors
    assert few[0].shifts_mm == few[1].shifts_mm
    factors = np.array([dict(s.factors)["liver_perfusion"] for s in many[::2]])
    assert factors.min() >= 0.5
    assert factors.max() <= 1.5
    assert np.mean(factors) == pytest.approx(1.0, abs=0.06)  # uniform: σ/√400 = 0.014
    # the probes go in along +y: σ 3 mm along it (depth), 1 mm across (x and z)
    skewed = SWEEP | {"samples": 400, "vary": SWEEP["vary"] | {
        "placement_error_mm": {"lateral": 1.0, "depth": 3.0}}}  # fmt: skip
    runs = samples_of(sweep_from_dict(skewed, "x"), [case])[::2]
    shifts = np.array([s.shifts_mm for s in runs])
    assert shifts.shape == (400, 3, 3)  # samples, probes, LPS
    # 1,200 draws each: the sample σ within 10 % (about 4 standard errors), the mean near 0
    for axis, sigma in ((0, 1.0), (1, 3.0), (2, 1.0)):
        assert np.std(shifts[..., axis]) == pytest.approx(sigma, rel=0.1)
        assert abs(np.mean(shifts[..., axis])) < 4 * sigma / np.sqrt(1200)
    # in a design, the rows an index compares share their placement error
    morris = SWEEP | {"samples": 3, "sensitivity": {"method": "morris"}}
    rows = [s for s in samples_of(sweep_from_dict(morris, "x"), [case]) if s.protocol_index == 0]
    assert len(rows) == 6  # 3 trajectories × (1 parameter + 1)
    assert rows[0].shifts_mm == rows[1].shifts_mm
    assert rows[2].shifts_mm == rows[3].shifts_mm
    assert rows[1].shifts_mm != rows[2].shifts_mm


def test_a_sweep_writes_its_table_maps_and_summary(two_workers):
    _, out = two_workers
    rows = table(out)
    assert len(rows) == 12
    assert rows["key"].is_unique
    assert (rows["error"] == "").all()
    assert set(rows["protocol"]) == {"freeze-4", "freeze-2-thaw-1-freeze-2"}
    # the energy ledger closes on every sample (the solver's own check, verification.md f)
    assert rows["energy_relative_error"].max() < 1e-9
    # the placement error moves the outcome: the lethal volume is not the same in every sample
    assert rows.groupby("protocol")["lethal_volume_ml"].nunique().min() > 3
    import nibabel as nib  # noqa: PLC0415

    maps = out / "maps" / "001-phantom" / "01-freeze-4"
    probability = np.asarray(nib.load(maps / "lethal_probability.nii.gz").dataobj)
    sd = np.asarray(nib.load(maps / "tmin_sd_c.nii.gz").dataobj)
    mean = np.asarray(nib.load(maps / "tmin_mean_c.nii.gz").dataobj)
    assert probability.min() >= 0
    assert probability.max() == 1.0
    # P(lethal) is the fraction of samples: multiples of 1/6
    assert np.allclose(probability * 6, np.round(probability * 6), atol=1e-5)
    lethal_volume = rows[rows["protocol"] == "freeze-4"]["lethal_volume_ml"].mean()
    assert probability.sum() * 2.5**3 / 1000 == pytest.approx(lethal_volume, rel=1e-5)
    assert sd.max() > 5
    assert sd.min() >= 0
    assert mean.min() < -100
    html = (out / "summary.html").read_text("utf-8")
    assert html.count("data:image/png;base64,") >= 4  # two distributions, two maps


def test_one_and_two_workers_give_identical_results(two_workers, tmp_path):
    spec, out = two_workers
    one = tmp_path / "one"
    # one worker with the 2 cores' threads, against 2 workers × 1 thread
    run_sweep(spec, one, workers=1)
    pd.testing.assert_frame_equal(table(one), table(out), check_exact=True)
    for name in ("lethal_probability", "tmin_mean_c", "tmin_sd_c"):
        a = (one / "maps/001-phantom/01-freeze-4" / f"{name}.nii.gz").read_bytes()
        b = (out / "maps/001-phantom/01-freeze-4" / f"{name}.nii.gz").read_bytes()
        assert a == b, name


def spawned(process: psutil.Process) -> bool:
    """A live process started by multiprocessing's spawn (a LocalCluster's worker)."""
    try:
        return any("spawn_main" in part for part in process.cmdline())
    except psutil.Error:  # gone, or a zombie not yet reaped (an earlier cluster's)
        return False


def test_a_worker_killed_mid_sweep_loses_and_repeats_no_sample(two_workers, tmp_path):
    spec, reference = two_workers
    spec = write_sweep(tmp_path, samples=12)
    me = psutil.Process()
    killed = []
    stored_keys: Counter[str] = Counter()

    def kill_a_worker(stored: int, total: int, result) -> None:
        if result is not None:
            stored_keys[result.key] += 1
        if result is None or killed:
            return
        # LocalCluster: the nannies run in this process; each worker is a process they
        # spawned (multiprocessing's spawn_main), which its nanny restarts when it dies
        workers = [p for p in me.children(recursive=True) if spawned(p)]
        assert workers, "no worker process found"
        workers[0].kill()
        killed.append(workers[0].pid)

    result = run_sweep(spec, tmp_path / "out", workers=2, progress=kill_a_worker)
    assert killed, "no worker was killed"
    rows = table(tmp_path / "out")
    # every sample came back from the cluster and was stored exactly once
    assert set(stored_keys) == set(rows["key"])
    assert set(stored_keys.values()) == {1}
    assert len(rows) == 24
    assert (rows["error"] == "").all()
    assert result.ran_now == 24
    # the samples a killed worker ran are run again, to the same result
    first = rows.iloc[:12].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, table(reference), check_exact=True)


def test_a_killed_client_resumes_where_it_stopped(two_workers, tmp_path):
    _, reference = two_workers
    spec = write_sweep(tmp_path, samples=12)
    out = tmp_path / "out"
    cli = Path(sys.executable).with_name("cryoplan")
    proc = subprocess.Popen(
        [str(cli), "sweep", str(spec), "--out", str(out), "--workers", "2", "--quiet"],
        start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while len(SweepFolder(out).done()) < 4 if (out / "samples").is_dir() else True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no sample stored in 120 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the client and its LocalCluster, at once
        proc.wait()
    folder = SweepFolder(out)
    before = folder.done()
    assert 4 <= len(before) < 24, "the sweep ended before it could be interrupted"
    written = {key: folder.path_of(key).stat().st_mtime_ns for key in before}
    rerun: Counter[str] = Counter()

    def count(stored: int, total: int, result) -> None:
        if result is not None:
            rerun[result.key] += 1

    result = run_sweep(spec, out, workers=2, progress=count)
    rows = table(out)
    # the rerun ran exactly the samples not stored, once each, and left the others alone
    assert set(rerun) == set(rows["key"]) - before
    assert set(rerun.values()) == {1}
    assert result.ran_now == 24 - len(before)
    assert {key: folder.path_of(key).stat().st_mtime_ns for key in before} == written
    assert len(rows) == 24
    assert (rows["error"] == "").all()
    pd.testing.assert_frame_equal(rows.iloc[:12].reset_index(drop=True), table(reference),
                                  check_exact=True)  # fmt: skip
    assert not list((out / "samples").glob(".tmp-*"))


@pytest.mark.parametrize(
    ("method", "samples", "runs", "index"),
    [("morris", 3, 9, "mu_star"), ("sobol", 4, 16, "ST")],  # runs: 3 × (2 + 1), 4 × (2 + 2)
)
def test_sensitivity_finds_the_parameter_that_matters(
    tmp_path, cluster_address, method, samples, runs, index
):
    """Morris μ* and Sobol' total index: the liver's perfusion (the heat load around the
    tumour) moves the lethal volume; the vein's Pennes perfusion cannot (it is 0: a large
    vessel is blood held at body temperature), so its index is exactly 0."""
    parameters = [
        {"name": "liver_perfusion", "tissue": "liver", "property": "perfusion_1_s",
         "factor": {"uniform": [0.5, 1.5]}, "source": "test"},
        {"name": "vessel_perfusion", "tissue": "vessel", "property": "perfusion_1_s",
         "factor": {"uniform": [0.5, 1.5]}, "source": "test"},
    ]  # fmt: skip
    spec = write_sweep(tmp_path, samples=samples, vary={"parameters": parameters},
                       sensitivity={"method": method})  # fmt: skip
    result = run_sweep(spec, tmp_path / "out", scheduler=cluster_address)
    import json  # noqa: PLC0415

    indices = json.loads((tmp_path / "out" / "sensitivity.json").read_text("utf-8"))
    (entry,) = indices["results"]
    volume = entry["lethal_volume_ml"]
    assert volume["vessel_perfusion"][index] == 0.0
    # μ* in mL per unit of the design; a total index a fraction of the variance
    assert volume["liver_perfusion"][index] > (0.1 if method == "morris" else 0.5)
    assert result.summary["runs"] == runs


def test_a_sample_that_cannot_run_is_recorded_with_its_reason(tmp_path):
    spec = load_sweep_spec(write_sweep(tmp_path))
    case = load_case(tmp_path / "case.yaml")
    sample = samples_of(spec, [case])[0]
    from dataclasses import replace  # noqa: PLC0415

    from cryoplan.preparation import prepare  # noqa: PLC0415

    moved = replace(sample, shifts_mm=((0.0, 0.0, 60.0),) * 3)  # out of the 80 mm cube
    result = run_sample(prepare(case), [], None, moved)
    assert result.tmin_c is None
    assert "probes[0].tip_mm" in result.error
    assert "outside the domain" in result.error


def test_a_tissue_factor_scales_the_value_the_solver_sees(tmp_path):
    spec = load_sweep_spec(write_sweep(tmp_path))
    case = load_case(tmp_path / "case.yaml")
    varied = variant_case(case, list(spec.vary.parameters), {"liver_perfusion": 1.5})
    base = case.resolved_tissues["liver"].perfusion_1_s
    assert varied.resolved_tissues["liver"].perfusion_1_s == pytest.approx(1.5 * base)
    assert varied.resolved_tissues["tumour"] == case.resolved_tissues["tumour"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"samples": 0}, "samples"),
        ({"colour": "blue"}, "colour"),
        ({"cases": ["missing.yaml"]}, "cases[0]"),
        ({"vary": {"parameters": [{"name": "k", "tissue": "liver", "property": "colour",
                                   "factor": {"uniform": [1, 2]}, "source": "s"}]}},
         "vary.parameters[0]"),
        ({"vary": {"parameters": [{"name": "k", "tissue": "liver", "property": "perfusion_1_s",
                                   "factor": {"normal": [1, 0.5]}, "source": "s"}]}},
         "vary.parameters[0].factor"),
        ({"vary": {"parameters": [{"name": "k", "tissue": "nerve", "property": "perfusion_1_s",
                                   "factor": {"uniform": [1, 2]}, "source": "s"}]}},
         "vary.parameters[0].tissue"),
        ({"vary": {"parameters": [{"name": "h", "probe_model": "argon-17g",
                                   "property": "heat_transfer_w_m2k",
                                   "factor": {"uniform": [1, 2]}, "source": "s"}]}},
         "vary.parameters[0].probe_model"),
        # two parameters on one value would overwrite each other
        ({"vary": {"parameters": [
            {"name": "k", "tissue": "liver", "property": "conductivity_w_mk",
             "factor": {"uniform": [1, 1.2]}, "source": "s"},
            {"name": "kf", "tissue": "liver", "property": "conductivity_w_mk.frozen",
             "factor": {"uniform": [1, 1.1]}, "source": "s"}]}},
         "vary.parameters[1].property"),
        # a protocol variant naming a probe the case does not have
        ({"vary": {"protocols": [{"name": "x", "phases": [
            {"phase": "freeze", "duration_min": 1, "probes": ["nope"]}]}]}},
         "vary.protocols[0]"),
        # a factor whose range leaves the plausible values (limits.yaml)
        ({"vary": {"parameters": [{"name": "w", "tissue": "liver", "property": "perfusion_1_s",
                                   "factor": {"uniform": [0.5, 30]}, "source": "s"}]}},
         "vary.parameters[0].factor"),
        # a tissue the phantom does not hold: no effect, most likely a typo
        ({"vary": {"parameters": [{"name": "f", "tissue": "fat", "property": "perfusion_1_s",
                                   "factor": {"uniform": [0.5, 1.5]}, "source": "s"}]}},
         "vary.parameters[0].tissue"),
        ({"samples": 6, "sensitivity": {"method": "sobol"}}, "samples"),
    ],
)  # fmt: skip
def test_a_bad_sweep_file_gets_one_line(tmp_path, change, field):
    from typer.testing import CliRunner  # noqa: PLC0415

    from cryoplan.cli import app  # noqa: PLC0415

    spec = write_sweep(tmp_path, **change)
    done = CliRunner().invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "out")])
    assert done.exit_code == 2, (done.output, done.exception)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"cryoplan: error: {spec}: {field}"), lines
    assert "Traceback" not in done.output
    assert not (tmp_path / "out").exists()


def test_a_folder_of_another_sweep_is_refused(two_workers, tmp_path):
    _, out = two_workers
    other = write_sweep(tmp_path, seed=99)
    cli = Path(sys.executable).with_name("cryoplan")
    done = subprocess.run([str(cli), "sweep", str(other), "--out", str(out)],
                          check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert "holds the samples of another sweep" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_planner_maps_its_runs_on_a_dask_cluster(cluster_address):
    """`cryoplan plan --scheduler`: the search model's runs (layouts, the placement-error
    Monte Carlo) go to the cluster, the model sent to each worker once, with the results the
    local search gives."""
    from cryoplan.case import ProtocolOption, case_from_dict  # noqa: PLC0415
    from cryoplan.planning.planner import SearchModel  # noqa: PLC0415
    from cryoplan.preparation import prepare  # noqa: PLC0415
    from cryoplan.sweep.runner import dask_client  # noqa: PLC0415

    bare = case_from_dict({k: v for k, v in CASE.items() if k not in ("probes", "protocol")})
    fine = prepare(bare)
    protocol = ProtocolOption(name="freeze-4", phases=[FREEZE_4])
    jobs = []
    for dx in (-3.0, 0.0, 3.0, 60.0):  # the last leaves the model's grid: None
        probes = [p | {"tip_mm": [p["tip_mm"][0] + dx, *p["tip_mm"][1:]],
                       "entry_mm": [p["entry_mm"][0] + dx, *p["entry_mm"][1:]]}
                  for p in CASE["probes"]]  # fmt: skip
        jobs.append((probes, protocol))
    want = SearchModel.for_case(bare, fine, 5.0, None).evaluate_many(jobs)
    with dask_client(cluster_address, None) as client:
        remote = SearchModel.for_case(bare, fine, 5.0, None, client=client)
        assert remote.workers == 2  # the cluster's task slots
        got = remote.evaluate_many(jobs)
        again = remote.evaluate_many(jobs[:2])  # the model already on the workers
        remote.close()
        # the workers' solver threads: their host's 2 CPUs over its 2 task slots
        threads = set(client.run(lambda: os.environ.get("CRYOPLAN_THREADS")).values())
    assert want[3] is None
    assert got[3] is None
    for (score, lethal), (score_here, lethal_here) in zip(got[:3], want[:3], strict=True):
        assert score.as_dict() == score_here.as_dict()
        assert np.array_equal(lethal, lethal_here)
    assert [s.as_dict() for s, _ in again] == [s.as_dict() for s, _ in want[:2]]
    assert len({s.ice_margin_mm for s, _ in want[:3]}) > 1  # the shifts matter
    if "CRYOPLAN_THREADS" not in os.environ and psutil.cpu_count() == 2:
        assert threads == {"1"}


def test_the_sweep_file_in_the_docs_is_valid():
    import re  # noqa: PLC0415

    text = (Path(__file__).parent.parent / "docs" / "sweep.md").read_text("utf-8")
    (block,) = re.findall(r"^```yaml\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    spec = sweep_from_dict(yaml.safe_load(block), "docs/sweep.md")
    assert spec.sensitivity is not None
    assert spec.runs_per_sample_set == 8 * (1 + 1)  # Morris: trajectories × (parameters + 1)


def test_a_cohort_of_a_phantom_and_an_image_case(tmp_path, cluster_address):
    """Two cases (a cohort), each with its own maps; the image case's maps also on its
    image's grid; a gas-cooled probe's film coefficient varied (it moves the 2.4 mm probe's
    ice, and leaves the argon-17g phantom, whose wall is held at a temperature, alone)."""
    import SimpleITK as sitk  # noqa: N813, PLC0415

    labels = np.ones((60, 60, 80), np.int16)  # z, y, x: an 80 × 60 × 60 mm liver at 1 mm
    image = sitk.GetImageFromArray(labels)
    image.SetOrigin((-40.0, -30.0, -30.0))
    sitk.WriteImage(image, str(tmp_path / "labels.nrrd"))
    image_case = {
        "name": "image",
        "domain": {"image": {"labels": "labels.nrrd", "tissues": {1: "liver"},
                             "lesions": [{"centre_mm": [0, 0, 0], "diameter_mm": 10}]}},
        "target": "tumour",
        "grid": {"spacing_mm": 3.0, "crop_margin_mm": 15.0},
        "probes": [{"model": "argon-2.4mm", "tip_mm": [0, 10, 0], "entry_mm": [0, -80, 0]}],
        "protocol": [FREEZE_4],
    }  # fmt: skip
    (tmp_path / "image.yaml").write_text(yaml.safe_dump(image_case), "utf-8")
    film = {"name": "film", "probe_model": "argon-2.4mm", "property": "heat_transfer_w_m2k",
            "factor": {"uniform": [0.5, 1.5]}, "source": "test"}  # fmt: skip
    spec = write_sweep(tmp_path, cases=["case.yaml", "image.yaml"], samples=3,
                       vary={"parameters": [film]})  # fmt: skip
    run_sweep(spec, tmp_path / "out", scheduler=cluster_address)
    rows = table(tmp_path / "out")
    assert list(rows["case"]) == ["phantom"] * 3 + ["image"] * 3
    assert (rows["error"] == "").all()
    phantom, image_rows = rows.iloc[:3], rows.iloc[3:]
    assert phantom["lethal_volume_ml"].nunique() == 1  # a wall-temperature probe: no film
    assert image_rows["volume_0c_ml"].nunique() == 3
    # the 2.4 mm probe freezes more with the better film coefficient
    order = np.argsort(image_rows["factor_film"].to_numpy())
    assert np.all(np.diff(image_rows["volume_0c_ml"].to_numpy()[order]) > 0)
    import nibabel as nib  # noqa: PLC0415

    maps = tmp_path / "out/maps/002-image"
    on_image = nib.load(maps / "lethal_probability_on_image.nii.gz")
    on_grid = np.asarray(nib.load(maps / "lethal_probability.nii.gz").dataobj)
    assert on_image.shape == (80, 60, 60)  # the label map's grid
    assert 0 < np.asarray(on_image.dataobj).max() <= on_grid.max() + 1e-6  # interpolated
    assert (tmp_path / "out/maps/001-phantom/tmin_sd_c.nii.gz").exists()


def test_a_scheduler_address_that_is_not_one_gets_one_line(tmp_path):
    from typer.testing import CliRunner  # noqa: PLC0415

    from cryoplan.cli import app  # noqa: PLC0415

    spec = write_sweep(tmp_path, samples=1)
    for address in ("localhost", "http://127.0.0.1:8787"):  # no port; the dashboard's form
        done = CliRunner().invoke(
            app, ["sweep", str(spec), "--out", str(tmp_path / "out"), "--scheduler", address]
        )
        assert done.exit_code == 2, (done.output, done.exception)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"cryoplan: error: {address}: --scheduler"), lines


def test_sensitivity_indices_of_a_known_function():
    """SALib fed from the table in the design's order: an output 3·u₁ (u the unit value of
    the first factor) has Morris μ* = 3 and Sobol' S1 = ST = 1 for it, 0 for the other."""
    from cryoplan.sweep.aggregate import _sensitivity  # noqa: PLC0415
    from cryoplan.sweep.samples import unit_design  # noqa: PLC0415

    parameters = [
        {"name": "a", "tissue": "liver", "property": "perfusion_1_s",
         "factor": {"uniform": [0.5, 1.5]}, "source": "s"},
        {"name": "b", "tissue": "liver", "property": "metabolic_w_m3",
         "factor": {"uniform": [0.5, 1.5]}, "source": "s"},
    ]  # fmt: skip
    for method, samples in (("morris", 20), ("sobol", 256)):
        spec = sweep_from_dict(SWEEP | {"samples": samples, "vary": {"parameters": parameters},
                                        "sensitivity": {"method": method}}, "x")  # fmt: skip
        design = unit_design(spec)
        rows = pd.DataFrame({
            "case_index": 0, "case": "c", "protocol": "case",
            "sample": np.arange(len(design)), "margin_min_mm": 3.0 * design[:, 0],
            "lethal_volume_ml": 3.0 * design[:, 0],
        }).iloc[::-1]  # stored out of order: the analysis must sort by sample
        (entry,) = _sensitivity(spec, rows)["results"]
        margin = entry["margin_min_mm"]
        if method == "morris":
            assert margin["a"]["mu_star"] == pytest.approx(3.0)
            assert margin["b"]["mu_star"] == 0.0
        else:
            assert margin["a"]["S1"] == pytest.approx(1.0, abs=0.05)
            assert margin["a"]["ST"] == pytest.approx(1.0, abs=0.05)
            assert margin["b"]["ST"] == 0.0


def test_map_folders_are_safe_paths():
    from cryoplan.sweep.aggregate import map_folder  # noqa: PLC0415
    from cryoplan.sweep.samples import Sample  # noqa: PLC0415

    spec = sweep_from_dict(SWEEP | {"vary": {"protocols": [
        {"name": "../../x", "phases": [FREEZE_4]}]}}, "x")  # fmt: skip
    folder = map_folder(spec, ["a/b c"], Sample(0, 0, 0, (), ()))
    assert folder == "maps/001-a_b_c/01-x"
