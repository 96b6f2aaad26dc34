"""The browser application's server: its API (FastAPI's test client), its jobs on real
worker processes, and its faults: a bad upload, path traversal, two jobs at once, a cancel,
and a server killed with `kill -9` while a job runs."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import ndimage

from cryoplan.server.app import create_app
from cryoplan.server.store import Store

REPO = Path(__file__).parent.parent
GEL = {  # a small box case: about a second a run
    "probes": [{"name": "a", "model": "argon-17g", "tip_mm": [0, 0, -11], "entry_mm": [0, 0, 60]}],
    "protocol": [{"phase": "freeze", "duration_min": 4}],
    "grid": {"spacing_mm": 2.0},
}


def _labels_nifti(path: Path) -> Path:
    """A 40 mm cube of labels at 2 mm: liver (5) with a 10 mm tumour label (1)."""
    labels = np.full((20, 20, 20), 5, np.uint8)
    labels[8:13, 8:13, 8:13] = 1
    nib.save(nib.Nifti1Image(labels, np.diag([2.0, 2.0, 2.0, 1.0])), path)
    return path


def _labels_case(client: TestClient, tmp_path: Path) -> str:
    """A case of `_labels_nifti`'s label map alone, uploaded; its id."""
    labels = _labels_nifti(tmp_path / "labels.nii.gz")
    with labels.open("rb") as f:
        return _ok(client.post("/api/cases", files={"labels": ("seg.nii.gz", f)}))["id"]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    """The API alone, on a fresh store, without workers."""
    with TestClient(create_app(tmp_path / "data", start_workers=False)) as client:
        yield client


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert "\n" not in message
    assert "Traceback" not in message
    return message


def test_an_uploaded_label_map_becomes_a_case_to_plan(api: TestClient, tmp_path: Path) -> None:
    labels = _labels_nifti(tmp_path / "labels.nii.gz")
    with labels.open("rb") as f:
        case = api.post("/api/cases", files={"labels": ("seg.nii.gz", f)}, data={"name": "cube"})
    assert case.status_code == 200, case.text
    body = case.json()
    assert body["name"] == "cube"
    assert body["label_names"] == {"1": "label 1", "5": "label 5"}  # names none: values
    case_id = body["id"]
    # choose the target and place a probe: the edit is validated as a case file is
    edited = api.put(f"/api/cases/{case_id}", json={
        "image": {"tissues": {"1": "tumour", "5": "liver"}},  # JSON keys: label values
        "target": "tumour",
        "probes": [{"name": "a", "model": "argon-17g", "tip_mm": [19, 19, 10],
                    "entry_mm": [19, 19, 60]}],
    })  # fmt: skip
    assert edited.status_code == 200, edited.text
    assert edited.json()["case"]["target"] == "tumour"
    stored = api.get(f"/api/cases/{case_id}/files/labels")
    assert stored.status_code == 200
    assert gzip.decompress(stored.content)[:4] == gzip.decompress(labels.read_bytes())[:4]
    markups = api.get(f"/api/cases/{case_id}/markups").json()
    assert markups["markups"][0]["controlPoints"][0]["position"] == [19.0, 19.0, 10.0]


def test_a_bad_upload_gets_one_line_and_nothing_is_stored(api: TestClient, tmp_path: Path) -> None:
    data_dir = Path(api.app.state.cryoplan.store.root)
    garbage = tmp_path / "labels.nii.gz"
    garbage.write_bytes(b"not a volume at all")
    with garbage.open("rb") as f:
        message = _error(api.post("/api/cases", files={"labels": ("mine.nii.gz", f)}), 400)
    assert message.startswith("mine.nii.gz")  # names the file as the user knows it
    assert str(data_dir) not in message  # not the store's own path
    with garbage.open("rb") as f:
        message = _error(api.post("/api/cases", files={"labels": ("notes.txt", f)}), 400)
    assert "notes.txt" in message
    assert ".nii.gz" in message
    assert api.get("/api/cases").json() == []
    assert list((data_dir / "cases").iterdir()) == []  # no staging left behind


def test_probes_round_trip_through_slicer_markups(api: TestClient, tmp_path: Path) -> None:
    case_id = api.post("/api/cases/example/single-probe-gel").json()["id"]
    _ok(api.put(f"/api/cases/{case_id}", json={"probes": [
        {"name": "a", "model": "argon-2.4mm", "tip_mm": [1, 2, -11], "entry_mm": [1, 2, 60]},
        {"name": "b", "model": "argon-17g", "tip_mm": [-5, 0, -11], "entry_mm": [-5, 0, 60]},
    ]}))  # fmt: skip
    document = api.get(f"/api/cases/{case_id}/markups").content
    other = api.post("/api/cases/example/single-probe-gel").json()["id"]
    _ok(api.put(f"/api/cases/{other}", json={"probes": [
        {"name": "a", "model": "argon-2.4mm", "tip_mm": [0, 0, -11], "entry_mm": [0, 0, 60]},
    ]}))  # fmt: skip
    loaded = _ok(api.post(f"/api/cases/{other}/markups",
                          files={"markups": ("plan.mrk.json", document)}))  # fmt: skip
    probes = loaded["case"]["probes"]
    assert [(p["name"], p["model"]) for p in probes] == [("a", "argon-2.4mm"), ("b", "argon-17g")]
    assert [p["tip_mm"] for p in probes] == [[1.0, 2.0, -11.0], [-5.0, 0.0, -11.0]]
    message = _error(api.post(f"/api/cases/{other}/markups",
                              files={"markups": ("mine.mrk.json", b"{")}), 400)  # fmt: skip
    assert message.startswith("mine.mrk.json")


def test_an_upload_over_the_bound_is_refused(
    api: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cryoplan.server.app.MAX_UPLOAD_BYTES", 1024)
    labels = _labels_nifti(tmp_path / "labels.nii")  # uncompressed: 8 kB of voxels
    with labels.open("rb") as f:
        message = _error(api.post("/api/cases", files={"labels": ("big.nii", f)}), 413)
    assert message == "big.nii: larger than 0.000976562 MiB"
    assert api.get("/api/cases").json() == []


def test_a_bad_edit_is_refused_whole(api: TestClient) -> None:
    case_id = api.post("/api/cases/example/single-probe-gel").json()["id"]
    before = api.get(f"/api/cases/{case_id}").json()["case"]
    bad = api.put(f"/api/cases/{case_id}", json={
        "probes": [{"name": "a", "model": "no-such-probe", "tip_mm": [0, 0, 0],
                    "entry_mm": [0, 0, 50]}],
    })  # fmt: skip
    message = _error(bad, 400)
    assert message.startswith("case.yaml: probes[0].model")  # the store's path not shown
    assert _error(api.put(f"/api/cases/{case_id}", json={"domain": {}}), 400).startswith("domain")
    assert api.get(f"/api/cases/{case_id}").json()["case"] == before


# --- outlines for the viewer: isotherms and the target -----------------------------------


def _nifti(content: bytes) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(content))


def _closed_in_slices(line: np.ndarray, region: np.ndarray) -> bool:
    """Every axial slice of `line` encloses that slice of `region` (a closed line around it,
    holes filled with 4-connected background, as a slice shows it)."""
    return all(
        (region[:, :, k] <= ndimage.binary_fill_holes(line[:, :, k])).all()
        for k in range(region.shape[2])
    )


def test_isotherm_labels_are_one_voxel_shells_at_their_levels() -> None:
    from cryoplan.server.overlays import isotherm_labels  # noqa: PLC0415

    # an ellipsoidal T_min (°C): 0 on the ellipsoid of semi-axes 24, 17, 13 voxels, −20 and
    # −40 on the ones 0.8 and 0.6 its size
    i, j, k = np.indices((56, 40, 32), dtype=float)
    rho = np.sqrt(((i - 27.3) / 24) ** 2 + ((j - 19.6) / 17) ** 2 + ((k - 15.2) / 13) ** 2)
    tmin_c = 100.0 * (rho - 1.0)
    levels_c = (0.0, -20.0, -40.0)
    labels = isotherm_labels(tmin_c, levels_c)
    assert labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    colder = np.zeros(labels.shape, bool)
    for value, level in reversed(list(enumerate(levels_c, start=1))):
        inside = tmin_c <= level
        # a shell voxel: inside, with a face neighbour (distance exactly one voxel) outside
        shell = inside & (ndimage.distance_transform_edt(inside) == 1.0)
        assert np.array_equal(labels == value, shell & ~colder), level
        assert _closed_in_slices(labels >= value, inside)  # a line around each section …
        assert (labels >= value).sum() < 0.5 * inside.sum()  # … not the section filled
        colder |= shell


def test_the_target_outline_is_the_shell_of_its_label_or_sphere(
    api: TestClient, tmp_path: Path
) -> None:
    case_id = _labels_case(api, tmp_path)
    assert _error(api.get(f"/api/cases/{case_id}/target-outline"), 404).endswith("no target")
    _ok(api.put(f"/api/cases/{case_id}", json={
        "image": {"tissues": {"1": "tumour", "5": "liver"}}, "target": "tumour",
    }))  # fmt: skip
    answer = api.get(f"/api/cases/{case_id}/target-outline")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"  # the same address after a change
    outline = _nifti(answer.content)
    labels = nib.load(tmp_path / "labels.nii.gz")
    assert np.allclose(outline.affine, labels.affine)  # on the label map's grid
    expected = np.zeros((20, 20, 20), bool)
    expected[8:13, 8:13, 8:13] = True  # the tumour label's 5-voxel cube …
    expected[9:12, 9:12, 9:12] = False  # … without its inside
    assert np.array_equal(np.asarray(outline.dataobj) == 1, expected)
    assert set(np.unique(np.asarray(outline.dataobj))) == {0, 1}

    # a 16 mm sphere as the target instead (label 1 back to liver)
    sphere = {"centre_mm": [-21.0, -17.0, 23.0], "diameter_mm": 16, "tissue": "tumour"}
    _ok(api.put(f"/api/cases/{case_id}", json={
        "image": {"tissues": {"1": "liver", "5": "liver"}, "lesions": [sphere]},
    }))  # fmt: skip
    line = np.asarray(_nifti(api.get(f"/api/cases/{case_id}/target-outline").content).dataobj)
    ijk = np.indices(line.shape).reshape(3, -1).T
    lps = ijk * [-2.0, -2.0, 2.0]  # the label map's affine, RAS diag(2, 2, 2), in LPS
    distance_mm = np.linalg.norm(lps - sphere["centre_mm"], axis=1).reshape(line.shape)
    inside = distance_mm <= 8.0
    assert line.any()
    assert (distance_mm[line == 1] <= 8.0).all()  # inside the sphere, on its surface:
    assert (distance_mm[line == 1] > 8.0 - 2.0 * np.sqrt(3)).all()  # within a voxel of it
    assert _closed_in_slices(line == 1, inside)

    box = api.post("/api/cases/example/single-probe-gel").json()["id"]
    assert _error(api.get(f"/api/cases/{box}/target-outline"), 404).endswith("has no image")
    assert _error(api.get("/api/cases/0123456789abcdef/target-outline"), 404)


# --- a target drawn in the viewer ---------------------------------------------------------


def _drawing(mask: np.ndarray, affine: np.ndarray | None = None) -> bytes:
    """A mask as the viewer sends it: uncompressed NIfTI, uint8, on the given affine."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine
    return nib.Nifti1Image(mask.astype(np.uint8), affine).to_bytes()


def test_a_drawn_mask_becomes_the_target_and_discarding_it_restores_the_case(
    api: TestClient, tmp_path: Path
) -> None:
    from cryoplan.anatomy.patient import build_patient_anatomy  # noqa: PLC0415
    from cryoplan.case import Phase, ProbeSpec, load_case  # noqa: PLC0415
    from cryoplan.outputs import write_result  # noqa: PLC0415
    from cryoplan.report import write_report  # noqa: PLC0415
    from cryoplan.simulation import simulate  # noqa: PLC0415

    case_id = _labels_case(api, tmp_path)
    sphere = {"centre_mm": [-21.0, -17.0, 23.0], "diameter_mm": 16, "tissue": "tumour"}
    before = _ok(api.put(f"/api/cases/{case_id}", json={  # label 1 and a sphere: the target
        # a label by value and one by name (TotalSegmentator's liver is 5), as examples do
        "image": {"tissues": {"1": "tumour", "liver": "liver"}, "lesions": [sphere]},
        "target": "tumour", "grid": {"spacing_mm": 2.0},
    }))  # fmt: skip
    folder = Path(api.app.state.cryoplan.store.root) / "cases" / case_id
    original = (folder / "labels.nii.gz").read_bytes()
    outline_before = api.get(f"/api/cases/{case_id}/target-outline").content
    url = f"/api/cases/{case_id}/drawn-target"

    drawn = np.zeros((20, 20, 20), bool)
    drawn[3:7, 12:16, 10:14] = True  # 64 voxels, apart from the sphere and from label 1
    body = _ok(api.post(url, files={"drawing": ("drawing.nii", _drawing(drawn))}))
    image = body["case"]["domain"]["image"]
    assert body["case"]["target"] == "tumour"
    assert image["labels"].startswith("labels-drawn-")
    value = [k for k, v in image["tissues"].items() if v == "tumour"]
    assert len(value) == 1
    assert int(value[0]) > 117  # above every TotalSegmentator value
    assert json.loads((folder / "drawn-target.json").read_text("utf-8"))["drawn_target"] is True
    assert image["lesions"] == []  # the former target's sphere, set aside …
    assert "1" not in image["tissues"]  # … and its label
    assert body["label_names"][value[0]] == "tumour (drawn by hand)"  # the outputs' name
    assert body["drawn_target"]["warning"] is None  # 8 mm thick: the 4 mm preview sees it
    assert (folder / "labels.nii.gz").read_bytes() == original  # never written over
    outline = np.asarray(_nifti(api.get(f"/api/cases/{case_id}/target-outline").content).dataobj)
    expected = drawn.copy()
    expected[4:6, 13:15, 11:13] = False  # the drawn box without its inside
    assert np.array_equal(outline == 1, expected)
    # the simulation's tissue map: its tumour voxels are the drawn ones, at the same places
    case = load_case(folder / "case.yaml")
    tissues = build_patient_anatomy(case)
    tumour = [k for k, n in tissues.tissue_of_label.items() if n == "tumour"]
    ijk = np.argwhere(np.isin(tissues.labels, tumour))
    assert len(ijk) == drawn.sum()
    on_labels = np.rint(tissues.source_grid.index_from_lps(tissues.grid.lps_from_index(ijk)))
    assert drawn[tuple(on_labels.astype(int).T)].all()

    # the outputs and the report say the target was drawn by hand
    run = case.model_copy(update={
        "probes": [ProbeSpec(name="a", model="argon-17g", tip_mm=(-36, -27, 23),
                             entry_mm=(60, -27, 23))],  # across the 40 mm box, along x
        "protocol": [Phase(phase="freeze", duration_min=2)],
    })  # fmt: skip
    write_result(simulate(run), tmp_path / "result")
    summary = (tmp_path / "result" / "summary.json").read_text("utf-8")
    organs = json.loads(summary)["outcome"]["organs"]
    assert organs["tumour (drawn by hand)"]["role"] == "target"
    write_report(tmp_path / "result")
    report = (tmp_path / "result" / "report.html").read_text("utf-8")
    assert "tumour (drawn by hand)</td>" in report

    # drawn again: the new drawing replaces the first rather than adding to it
    again = np.zeros((20, 20, 20), bool)
    again[14:17, 3:6, 3:6] = True
    body = _ok(api.post(url, files={"drawing": ("drawing.nii", _drawing(again))}))
    assert body["case"]["domain"]["image"]["lesions"] == []
    outline = np.asarray(_nifti(api.get(f"/api/cases/{case_id}/target-outline").content).dataobj)
    assert (outline == 1).sum() == again.sum() - 1  # 27 voxels, the centre one inside
    assert not (outline[drawn] == 1).any()

    # what is wrong gets one line, and leaves the case as it was
    drawn_case = api.get(f"/api/cases/{case_id}").json()["case"]
    files = sorted(p.name for p in folder.iterdir())
    shifted = np.diag([2.0, 2.0, 2.0, 1.0])
    shifted[0, 3] = 1.0
    wrong = {
        "wrong shape": (_drawing(drawn[:, :, :19]), "not on the label map's grid"),
        "wrong affine": (_drawing(drawn, shifted), "not on the label map's grid"),
        "empty": (_drawing(np.zeros((20, 20, 20), bool)), "empty (no voxel drawn)"),
        "not binary": (_drawing(drawn.astype(np.uint8) * 2), "a binary mask, 0 and 1"),
        "not a volume": (b"not a NIfTI file", "drawing.nii"),
    }
    for what, (content, says) in wrong.items():
        message = _error(api.post(url, files={"drawing": ("drawing.nii", content)}), 400)
        assert says in message, (what, message)
        assert str(folder) not in message, (what, message)
    assert "txt" in _error(api.post(url, files={"drawing": ("mask.txt", b"x")}), 400)
    assert api.get(f"/api/cases/{case_id}").json()["case"] == drawn_case
    assert sorted(p.name for p in folder.iterdir()) == files  # nothing half-written left
    _error(api.post("/api/cases/0123456789abcdef/drawn-target",
                    files={"drawing": ("drawing.nii", _drawing(drawn))}), 404)  # fmt: skip
    box = api.post("/api/cases/example/single-probe-gel").json()["id"]
    assert _error(api.post(f"/api/cases/{box}/drawn-target",
                           files={"drawing": ("drawing.nii", _drawing(drawn))}),
                  400).endswith("has no image to draw a target on")  # fmt: skip

    # discard: the original label map, its sphere and target back
    restored = _ok(api.delete(url))
    assert restored["case"] == before["case"]
    assert api.get(f"/api/cases/{case_id}/target-outline").content == outline_before
    assert _error(api.delete(url), 404).endswith("has no drawn target")


def test_the_report_worker_uses_the_database_only_under_its_guard(tmp_path: Path) -> None:
    """The real report worker (`--reports`) takes no job while the guard the server stops it
    under is held elsewhere, and takes it once the guard is free."""
    store = Store(tmp_path / "data")
    worker = subprocess.Popen(
        [sys.executable, "-m", "cryoplan.server.worker", str(store.root), "--reports"],
        stderr=subprocess.PIPE, text=True, encoding="utf-8",
    )  # fmt: skip
    try:
        for line in worker.stderr:  # up and polling
            if "ready (report)" in line:
                break
        with store.database_guard():
            report = store.submit("0123456789abcdef", "report", {"of": "fedcba9876543210"})
            time.sleep(1.0)  # 20 of its polls
            assert store.job(report.id).state == "queued"
        deadline = time.monotonic() + 30
        while store.job(report.id).state == "queued":
            assert time.monotonic() < deadline, "the report worker did not take the job"
            time.sleep(0.05)
    finally:
        worker.kill()
        worker.wait()


def test_an_alternative_of_a_plan_is_taken_into_the_case(api: TestClient) -> None:
    """A row of the plan's alternatives, used in the plan's place: its probes and protocol
    (a plan job's summary.json as the planner writes it; the planner itself is tested in
    test_planning.py)."""
    store: Store = api.app.state.cryoplan.store
    case_id = api.post("/api/cases/example/single-probe-gel").json()["id"]
    job = store.submit(case_id, "plan")
    store.claim(os.getpid())
    row = {
        "probes": 2, "protocol": "10-5-10",
        "probe_specs": [{"name": f"p{i + 1}", "model": "argon-17g", "tip_mm": [5.0 * i, 0, -11],
                         "entry_mm": [5.0 * i, 0, 60]} for i in range(2)],
        "protocol_phases": [{"phase": "freeze", "duration_min": 10.0},
                            {"phase": "passive_thaw", "duration_min": 5.0},
                            {"phase": "freeze", "duration_min": 10.0}],
    }  # fmt: skip
    store.job_dir(job.id).mkdir(parents=True)
    summary = {"plan": {"alternatives": [{**row, "probes": 1}, row]}}
    (store.job_dir(job.id) / "summary.json").write_text(json.dumps(summary))
    store.finish(job.id, "done")
    url = f"/api/cases/{case_id}/accept-plan"
    case = _ok(api.post(url, json={"job": job.id, "alternative": 1}))["case"]
    assert case["probes"] == row["probe_specs"]
    assert case["protocol"] == row["protocol_phases"]
    for bad in (2, -1, "1", True):
        message = _error(api.post(url, json={"job": job.id, "alternative": bad}), 400)
        assert message.startswith("alternative: a row of the plan's 2 alternatives"), message
    assert _ok(api.get(f"/api/cases/{case_id}"))["case"]["probes"] == row["probe_specs"]
    # a plan whose alternatives do not list their probes (an older cryoplan's)
    summary["plan"]["alternatives"] = [{"probes": 1, "protocol": "10-5-10"}]
    (store.job_dir(job.id) / "summary.json").write_text(json.dumps(summary))
    message = _error(api.post(url, json={"job": job.id, "alternative": 0}), 400)
    assert message.endswith("do not list their probes (an older cryoplan's plan): plan again")


def test_the_still_shows_the_image_as_the_viewer_does(api: TestClient, tmp_path: Path) -> None:
    """The still shown while the viewer starts: the axial slice, the patient's right on the
    left and anterior up, in square millimetres."""
    from PIL import Image  # noqa: PLC0415

    intensity = np.full((30, 20, 10), 100.0, np.float32)  # an MRI's values (none below -500)
    intensity[24:29, 14:19, :] = 1000.0  # towards the patient's right (+x) and front (+y)
    nib.save(nib.Nifti1Image(intensity, np.diag([1.0, 2.0, 3.0, 1.0])), tmp_path / "mr.nii.gz")
    labels = np.zeros((30, 20, 10), np.uint8)
    labels[10:20, 5:15, 3:7] = 1
    nib.save(nib.Nifti1Image(labels, np.diag([1.0, 2.0, 3.0, 1.0])), tmp_path / "seg.nii.gz")
    with (tmp_path / "mr.nii.gz").open("rb") as image, (tmp_path / "seg.nii.gz").open("rb") as seg:
        files = {"image": ("mr.nii.gz", image), "labels": ("seg.nii.gz", seg)}
        case_id = _ok(api.post("/api/cases", files=files))["id"]
    response = api.get(f"/api/cases/{case_id}/still.png")
    assert response.headers["content-type"] == "image/png"
    still = np.asarray(Image.open(io.BytesIO(response.content)).convert("L"), float)
    assert still.shape == (480, 360)  # 40 mm (A–P) high, 30 mm (R–L) wide
    bright = np.argwhere(still > 128)
    rows, columns = bright.mean(axis=0) / still.shape
    assert rows < 0.25, rows  # the top: anterior
    assert columns < 0.25, columns  # the left: the patient's right
    assert len(bright) == pytest.approx(still.size * (5 * 5) / (30 * 20), rel=0.25)
    box = api.post("/api/cases/example/single-probe-gel").json()["id"]
    assert _error(api.get(f"/api/cases/{box}/still.png"), 404).endswith("has no image")
    # an image that cannot be read (damaged in the store): one line, no store path
    with (tmp_path / "mr.nii.gz").open("rb") as image, (tmp_path / "seg.nii.gz").open("rb") as seg:
        files = {"image": ("mr.nii.gz", image), "labels": ("seg.nii.gz", seg)}
        damaged = _ok(api.post("/api/cases", files=files))
    store: Store = api.app.state.cryoplan.store
    stored = store.case_dir(damaged["id"]) / damaged["case"]["domain"]["image"]["file"]
    stored.write_bytes(b"not an image")
    message = _error(api.get(f"/api/cases/{damaged['id']}/still.png"), 400)
    assert "domain.image.file" in message
    assert str(store.root) not in message


@pytest.mark.parametrize(
    "url",
    [
        "/api/jobs/{job}/files/..%2F..%2Fcryoplan.sqlite",
        "/api/jobs/{job}/files/%2E%2E",
        "/api/jobs/../cases/{case}/files/labels",
        "/api/cases/{case}/files/..%2F..%2Fcryoplan.sqlite",
        "/api/cases/..%2F{case}/files/labels",
        "/static/..%2Fapp.py",
        "/static/%2E%2E%2F%2E%2E%2Fcryoplan.sqlite",
        "/api/jobs/{job}/files/",
    ],
)
def test_no_path_reaches_outside_the_store(api: TestClient, url: str) -> None:
    case_id = api.post("/api/cases/example/single-probe-gel").json()["id"]
    store: Store = api.app.state.cryoplan.store
    job = store.submit(case_id, "preview", {"case": {}})
    response = api.get(url.format(job=job.id, case=case_id))
    assert response.status_code in (404, 405), response.text
    assert b"SQLite" not in response.content


def test_a_token_is_required_when_one_is_set(tmp_path: Path) -> None:
    app = create_app(tmp_path / "data", start_workers=False, token="s3cret")
    with TestClient(app) as client:
        assert _error(client.get("/api/cases"), 401) == "a valid token is required"
        assert client.get("/api/cases", headers={"Authorization": "Bearer s3cret"}).json() == []
        assert client.get("/api/cases?token=s3cret").status_code == 200
        assert client.get("/api/cases").status_code == 200  # the cookie it set


def test_binding_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from cryoplan.cli import app  # noqa: PLC0415

    result = CliRunner().invoke(app, ["serve", "--data", str(tmp_path), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "needs --token" in result.stderr


# --- jobs on real workers ------------------------------------------------------------------


def _wait(client: Any, job_id: str, timeout_s: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The application with two worker processes."""
    app = create_app(tmp_path_factory.mktemp("served") / "data", workers=2)
    with TestClient(app) as client:
        yield client


def test_two_jobs_at_once_both_finish_with_their_own_results(served: TestClient) -> None:
    case_id = served.post("/api/cases/example/single-probe-gel").json()["id"]
    _ok(served.put(f"/api/cases/{case_id}", json={k: GEL[k] for k in ("grid", "protocol")}))
    first = served.post(f"/api/cases/{case_id}/jobs", json={"kind": "simulate"}).json()
    moved = [{**GEL["probes"][0], "tip_mm": [4, 0, -11], "entry_mm": [4, 0, 60]}]
    _ok(served.put(f"/api/cases/{case_id}", json={"probes": moved}))
    second = served.post(f"/api/cases/{case_id}/jobs", json={"kind": "simulate"}).json()
    done = [_wait(served, job["id"]) for job in (first, second)]
    assert [j["state"] for j in done] == ["done", "done"], done
    tips = [
        json.loads(served.get(f"/api/jobs/{j['id']}/files/summary.json").content)["probes"][0][
            "tip_mm"
        ]
        for j in done
    ]
    assert tips == [[0.0, 0.0, -11.0], [4.0, 0.0, -11.0]]  # each job ran the case it was given
    # done when its results are published; its report follows
    early = served.get(f"/api/jobs/{done[0]['id']}/files/report.html")
    if early.status_code == 404:
        assert early.json()["error"].endswith("its report is still being written")
    deadline = time.monotonic() + 120
    while served.get(f"/api/jobs/{done[0]['id']}").json()["message"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    report = served.get(f"/api/jobs/{done[0]['id']}/files/report.html")
    assert report.status_code == 200
    assert "Verdict:" in report.text


def test_a_preview_comes_back_with_the_overlay_and_a_cancel_stops_a_job(
    served: TestClient,
) -> None:
    case_id = served.post("/api/cases/example/single-probe-gel").json()["id"]
    preview = served.post(f"/api/cases/{case_id}/jobs", json={"kind": "preview"}).json()
    preview = _wait(served, preview["id"])
    assert preview["state"] == "done", preview
    assert "tmin.nii.gz" in preview["files"]
    figures = json.loads(served.get(f"/api/jobs/{preview['id']}/files/preview.json").content)
    assert figures["spacing_mm"] >= 4.0
    # a box has no image to draw isotherms over
    message = _error(served.get(f"/api/jobs/{preview['id']}/isotherms"), 404)
    assert message.endswith("(a plan, or a case without an image)")
    assert _error(served.get("/api/jobs/0123456789abcdef/isotherms"), 404)
    assert figures["lethal_volume_ml"] > 0
    # a long job, cancelled while it runs
    long = {"protocol": [{"phase": "freeze", "duration_min": 60}]}
    _ok(served.put(f"/api/cases/{case_id}", json=long))
    job = served.post(f"/api/cases/{case_id}/jobs", json={"kind": "simulate"}).json()
    deadline = time.monotonic() + 60
    while served.get(f"/api/jobs/{job['id']}").json()["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    served.post(f"/api/jobs/{job['id']}/cancel")
    stopped = _wait(served, job["id"], timeout_s=30)
    assert stopped["state"] == "cancelled"
    assert _error(served.get(f"/api/jobs/{job['id']}/files/summary.json"), 404)


def test_a_simulation_s_isotherms_lie_on_its_minimum_temperature(
    served: TestClient, tmp_path: Path
) -> None:
    case_id = _labels_case(served, tmp_path)
    _ok(served.put(f"/api/cases/{case_id}", json={
        "image": {"tissues": {"1": "tumour", "5": "liver"}}, "target": "tumour",
        "probes": [{"name": "a", "model": "argon-17g", "tip_mm": [-20, -20, 4],
                    "entry_mm": [-20, -20, 60]}],
        "protocol": [{"phase": "freeze", "duration_min": 4}], "grid": {"spacing_mm": 2.0},
    }))  # fmt: skip
    job = served.post(f"/api/cases/{case_id}/jobs", json={"kind": "simulate"}).json()
    early = served.get(f"/api/jobs/{job['id']}/isotherms")  # queued or running: nothing yet
    assert early.status_code == 200 or "no files yet" in _error(early, 404)
    assert _wait(served, job["id"])["state"] == "done"
    tmin = _nifti(served.get(f"/api/jobs/{job['id']}/files/tmin_on_image.nii.gz").content)
    isotherms = _nifti(served.get(f"/api/jobs/{job['id']}/isotherms").content)
    assert np.allclose(isotherms.affine, tmin.affine)  # on the image's grid, as T_min
    labels, tmin_c = np.asarray(isotherms.dataobj), tmin.get_fdata()
    for value, level in ((1, 0.0), (2, -20.0), (3, -40.0)):
        on_line = labels == value
        assert on_line.any(), level
        assert (tmin_c[on_line] <= level).all()
        assert _closed_in_slices(labels >= value, tmin_c <= level)

    # the probe 17 mm from the tumour: no margin to measure, which preview.json says in
    # standard JSON (null), as the page's JSON.parse reads it
    away = {"name": "a", "model": "argon-17g", "tip_mm": [-4, -4, 4], "entry_mm": [-4, -4, 60]}
    _ok(served.put(f"/api/cases/{case_id}", json={"probes": [away]}))
    preview = served.post(f"/api/cases/{case_id}/jobs", json={"kind": "preview"}).json()
    assert _wait(served, preview["id"])["state"] == "done"
    text = served.get(f"/api/jobs/{preview['id']}/files/preview.json").text
    figures = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {text}"))
    assert figures["minimum_margin_mm"] is None


def test_a_failing_case_says_why(served: TestClient) -> None:
    case_id = served.post("/api/cases/example/single-probe-gel").json()["id"]
    # a probe outside the prepared box: the worker's one-line case error
    outside = [{**GEL["probes"][0], "tip_mm": [0, 0, -200], "entry_mm": [0, 0, 60]}]
    _ok(served.put(f"/api/cases/{case_id}", json={"probes": outside}))
    job = served.post(f"/api/cases/{case_id}/jobs", json={"kind": "simulate"}).json()
    failed = _wait(served, job["id"])
    assert failed["state"] == "failed"
    assert failed["error"].startswith("case.yaml: probes[0]")  # the store's path not shown
    assert "\n" not in failed["error"]


def test_a_report_whose_worker_died_is_written_again_or_said_to_have_failed(
    api: TestClient,
) -> None:
    """The report is a job of its own: a worker that dies while writing it (here a pid that
    is not running) leaves it to be run again once, then failed with the reason on the
    simulation, whose results stand."""
    from cryoplan.server.worker import PreparedCache, execute  # noqa: PLC0415

    store: Store = api.app.state.cryoplan.store
    case_id = api.post("/api/cases/example/single-probe-gel").json()["id"]
    _ok(api.put(f"/api/cases/{case_id}", json=GEL))
    simulation = api.post(f"/api/cases/{case_id}/jobs", json={"kind": "simulate"}).json()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cache = PreparedCache()
    execute(store, store.claim(os.getpid()), cache)
    assert store.job(simulation["id"]).message == "done; writing the report"
    assert "still being written" in _error(
        api.get(f"/api/jobs/{simulation['id']}/files/report.html"), 404
    )
    assert [j.kind for j in store.jobs(case_id)] == ["simulate"]  # the report is not listed

    for attempt in (1, 2):
        report = store.claim(dead.pid, ("report",))  # by a worker that then died
        assert (report.kind, report.attempts) == ("report", attempt)
        assert report.params == {"of": simulation["id"]}
        (recovered,) = store.recover(alive={os.getpid()})
        assert recovered.state == ("queued" if attempt == 1 else "failed")
    message = store.job(simulation["id"]).message
    assert message.startswith("done; the report failed: its worker stopped while it ran, 2 times")
    assert _ok(api.get(f"/api/jobs/{simulation['id']}"))["state"] == "done"
    assert f"no report ({message})" in _error(
        api.get(f"/api/jobs/{simulation['id']}/files/report.html"), 404
    )
    assert api.get(f"/api/jobs/{simulation['id']}/files/summary.json").status_code == 200

    # a simulation whose report's first worker died: the next one writes it
    again = api.post(f"/api/cases/{case_id}/jobs", json={"kind": "simulate"}).json()
    execute(store, store.claim(os.getpid()), cache)
    store.claim(dead.pid, ("report",))
    store.recover(alive={os.getpid()})
    execute(store, store.claim(os.getpid(), ("report",)), cache)
    assert store.job(again["id"]).message == "done"
    assert "Verdict:" in api.get(f"/api/jobs/{again['id']}/files/report.html").text


def _stopped(pid: int, timeout_s: float = 5.0) -> bool:
    """Whether a process is stopped, once a signal sent to it has had up to `timeout_s` to
    arrive (its delivery is not immediate): False as soon as it runs."""
    from cryoplan.server.workers import process_state  # noqa: PLC0415

    deadline = time.monotonic() + timeout_s
    while process_state(pid) != "T" and time.monotonic() < deadline:
        time.sleep(0.01)
    return process_state(pid) == "T"


def test_the_report_worker_is_stopped_while_a_solve_runs(tmp_path: Path) -> None:
    """Reports are drawn by a worker of their own, which the server stops (SIGSTOP) while
    a preview or a simulation runs (never inside a database transaction of its own), and
    continues after; a solver worker takes no report."""
    from cryoplan.server.workers import WorkerPool  # noqa: PLC0415

    store = Store(tmp_path / "data")
    simulation = store.submit("0123456789abcdef", "simulate")
    store.submit("0123456789abcdef", "report", {"of": simulation.id})
    assert store.claim(os.getpid()).id == simulation.id  # a solve running
    assert store.claim(os.getpid()) is None  # the report is not a solver worker's
    # as the report worker: inside a database transaction of its own (its guard) for 0.5 s
    inside, done = tmp_path / "inside", tmp_path / "done"
    worker = subprocess.Popen([sys.executable, "-c", f"""
import time
from cryoplan.server.store import Store
store = Store({str(store.root)!r}, guarded=True)
with store.database_guard():
    open({str(inside)!r}, "w").close()
    time.sleep(0.5)
    open({str(done)!r}, "w").close()
time.sleep(60)
"""])  # fmt: skip
    pool = WorkerPool(store, 1)
    pool.processes = [worker]
    try:
        deadline = time.monotonic() + 30
        while not inside.exists():
            assert time.monotonic() < deadline, "the stand-in worker did not start"
            time.sleep(0.01)
        pool.pace_reports()  # waits for it to leave the database before stopping it
        assert done.exists()
        assert pool.reports_paused
        assert _stopped(pool.report_worker.pid)
        pool.pace_reports()  # no change while the solve runs
        assert _stopped(pool.report_worker.pid, timeout_s=0)
        store.finish(simulation.id, "done")
        pool.pace_reports()
        assert not pool.reports_paused
        deadline = time.monotonic() + 5
        while _stopped(pool.report_worker.pid, timeout_s=0):  # continued
            assert time.monotonic() < deadline, "the report worker was not continued"
            time.sleep(0.01)
    finally:
        pool.report_worker.kill()


# --- kill -9 ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(data: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", "from cryoplan.cli import main; main()", "serve", "--data",
         str(data), "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/cases", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("the server did not start")


def test_a_job_survives_a_kill_of_the_server(tmp_path: Path) -> None:
    data, port = tmp_path / "data", _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(data, port)
    try:
        case_id = httpx.post(f"{url}/api/cases/example/single-probe-gel").json()["id"]
        long = {"protocol": [{"phase": "freeze", "duration_min": 30}], "grid": GEL["grid"]}
        _ok(httpx.put(f"{url}/api/cases/{case_id}", json=long))
        job_id = httpx.post(f"{url}/api/cases/{case_id}/jobs", json={"kind": "simulate"}).json()[
            "id"
        ]
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/api/jobs/{job_id}").json()["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(server.pid, signal.SIGKILL)  # the server only: its worker dies with it
        server.wait(timeout=10)
        time.sleep(0.5)
        store = Store(data)
        assert store.job(job_id).state == "running"  # as the dead server left it
        server = _serve(data, port)
        finished = _wait(httpx.Client(base_url=url, timeout=10), job_id, timeout_s=180)
        assert finished["state"] == "done", finished
        assert finished["attempts"] == 2  # run again once, not lost, not twice at once
        assert len(store.jobs(case_id)) == 1
        summary = json.loads(httpx.get(f"{url}/api/jobs/{job_id}/files/summary.json").content)
        assert summary["timing"]["simulated_s"] == 30 * 60
    finally:
        os.killpg(server.pid, signal.SIGKILL)


# --- a zipped DICOM series ---------------------------------------------------------------


@pytest.mark.shared_data
def test_a_zipped_dicom_series_with_its_rtstruct_becomes_a_case(
    api: TestClient, tmp_path: Path
) -> None:
    import zipfile  # noqa: PLC0415

    from dicom_series import IDENTITY_STRINGS, ct_subvolume, write_series  # noqa: PLC0415
    from test_rtstruct import circle, contour_item, write_rtstruct  # noqa: PLC0415

    from cryoplan.anatomy.images import read_volume  # noqa: PLC0415

    shared = REPO.parent / "shared" / "data" / "abdomen_ct"
    if not shared.is_dir():
        pytest.skip(f"{shared} is absent: the DICOM test needs ../shared beside the checkout")
    folder = tmp_path / "series"
    write_series(ct_subvolume(shared / "ct.nii.gz", (10, 28)), folder,
                 "1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.12")  # fmt: skip
    grid = read_volume(folder, "series").grid
    zs = [float(grid.lps_from_index(np.array([0.0, 0.0, k]))[2]) for k in range(grid.shape[2])]
    items = [contour_item(circle((-47.0, -161.3), 12.0, z)) for z in zs if abs(z - 148.3) <= 7.5]
    write_rtstruct(folder / "rt.dcm", [(1, "Lesion GTV")], {1: items})
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.iterdir()):
            z.write(path, f"STUDY/SERIES/{path.name}")
    with archive.open("rb") as f:
        body = _ok(api.post("/api/cases", files={"image": ("study.zip", f)}))
    assert body["label_names"] == {"1": "Lesion GTV"}  # the RTSTRUCT's own ROI name
    assert body["case"]["domain"]["image"]["file"] == "dicom"
    # the viewer gets NIfTI copies on the series' grid, with nothing of the patient in them
    for key in ("image", "labels"):
        view = api.get(f"/api/cases/{body['id']}/files/{key}")
        assert view.status_code == 200
        raw = gzip.decompress(view.content)
        header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw))
        assert tuple(int(n) for n in header.get_data_shape()) == grid.shape
        for identity in IDENTITY_STRINGS:
            assert identity.encode() not in raw

    # a target drawn on the RTSTRUCT's labels, as the viewer shows them: one slice thick
    case_id, url = body["id"], f"/api/cases/{body['id']}/drawn-target"
    _ok(api.put(f"/api/cases/{case_id}", json={  # label 1 by its ROI's name and by value
        "image": {"tissues": {"Lesion GTV": "liver", "1": "muscle"}},
    }))  # fmt: skip
    view_labels = _nifti(api.get(f"/api/cases/{case_id}/files/labels").content)
    one_slice = np.zeros(grid.shape, np.uint8)
    one_slice[20:26, 20:26, 9] = 1
    drawing = nib.Nifti1Image(one_slice, view_labels.affine).to_bytes()
    message = _error(api.post(url, files={"drawing": ("drawing.nii", drawing)}), 400)
    assert message.endswith("mapped both as 'Lesion GTV' and as 1: keep one to draw")
    before = _ok(api.put(f"/api/cases/{case_id}", json={
        "image": {"tissues": {"Lesion GTV": "liver"}}, "grid": {"spacing_mm": 2.0},
    }))  # fmt: skip
    view_bytes = api.get(f"/api/cases/{case_id}/files/labels").content
    view = _nifti(view_bytes)
    drawn = np.zeros(grid.shape, bool)
    drawn[20:26, 20:26, 9] = True
    body = _ok(api.post(url, files={"drawing": ("drawing.nii", _drawing(drawn, view.affine))}))
    image = body["case"]["domain"]["image"]
    value = int(max(image["label_names"]))
    assert image["labels"].endswith(".nii.gz")
    assert image["tissues"] == {"1": "liver", str(value): "tumour"}  # by value, not by name
    assert body["label_names"] == {"1": "Lesion GTV", str(value): "tumour (drawn by hand)"}
    assert "1 slice" in body["drawn_target"]["warning"]  # thinner than the preview's grid
    shown = np.asarray(_nifti(api.get(f"/api/cases/{case_id}/files/labels").content).dataobj)
    assert np.array_equal(shown == value, drawn)  # the viewer gets the drawn label map
    assert np.array_equal(shown == 1, np.asarray(view.dataobj) == 1)
    restored = _ok(api.delete(url))
    assert restored["case"] == before["case"]  # the RTSTRUCT, mapped by its ROI's name
    assert api.get(f"/api/cases/{case_id}/files/labels").content == view_bytes

    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    with bad.open("rb") as f:
        assert _error(api.post("/api/cases", files={"image": ("bad.zip", f)}), 400).startswith(
            "bad.zip"
        )
