"""The browser application's HTTP API (FastAPI) and its static front end.

    GET  /                                  the application (static/index.html)
    GET  /api/examples                      example cases to open
    POST /api/cases                         upload an image and its labels (multipart)
    POST /api/cases/example/{name}          open an example as a new case
    GET  /api/cases, /api/cases/{id}        cases; one case: its case file and label names
    PUT  /api/cases/{id}                    edit target, lesions, margin, probes, protocol
    POST /api/cases/{id}/paths              probes' paths from the skin (depth, angles, …)
    GET  /api/cases/{id}/files/{image|labels}   the case's volumes (NIfTI/NRRD as stored)
    GET  /api/cases/{id}/markups            the case's probes as 3D Slicer Markups
    POST /api/cases/{id}/markups            probes from a 3D Slicer Markups file (multipart)
    POST /api/cases/{id}/accept-plan        {"job": id}: a plan job's probes and protocol
    GET  /api/cases/{id}/case.yaml          the case file (the store's file names)
    GET  /api/probe-models                  the probe catalogue
    POST /api/cases/{id}/jobs               run: {"kind": "preview" | "simulate" | "plan"}
    GET  /api/jobs/{id}, /api/jobs/{id}/events  a job; its progress as server-sent events
    POST /api/jobs/{id}/cancel
    GET  /api/jobs/{id}/files/{name}        a finished job's result file
    GET  /api/jobs/{id}/isotherms           its 0, −20, −40 °C isotherms (a NIfTI label map)
    GET  /api/cases/{id}/target-outline     the target's outline (a NIfTI label map)
    POST /api/cases/{id}/drawn-target       a drawn mask (multipart NIfTI) as the target
    DELETE /api/cases/{id}/drawn-target     discard it: the label map and target as before

Every position is LPS millimetres, as in case files. A mistake in what a client sends gets
status 400 (a bad file or case: the command line's one line) or 404 (no such id or file),
with {"error": "…"}; nothing is stored half-way. Files are served by id and name from the
store, never by a path the client gives. Where the server is bound beyond loopback, every
request must carry the token (`Authorization: Bearer …`, or `?token=…` once, which sets a
cookie).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from pydantic import BaseModel

from cryoplan.errors import CaseError
from cryoplan.server.store import JOB_KINDS, REPORT_PENDING, Store
from cryoplan.server.workers import WorkerPool
from cryoplan.yamlio import load_yaml

MAX_UPLOAD_BYTES = 1 << 30  # one upload at most (1 GiB): a whole-body CT fits
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
EDITABLE = ("target", "margin_mm", "probes", "protocol", "sensors", "critical_structures",
            "planning", "frozen_properties", "grid")  # fmt: skip
IMAGE_EDITABLE = ("tissues", "lesions", "default_tissue")
DEFAULT_PROTOCOL = [
    {"phase": "freeze", "duration_min": 10},
    {"phase": "passive_thaw", "duration_min": 5},
    {"phase": "freeze", "duration_min": 10},
]
TOKEN_COOKIE = "cryoplan_token"
TMIN_ON_IMAGE = "tmin_on_image.nii.gz"
CACHED_OVERLAYS = 8  # outline files kept in memory (each a few kB: mostly zeros, gzipped)
DRAWN_RECORD = "drawn-target.json"  # beside case.yaml: what a drawn target changed
DRAWN_TISSUE = "tumour"
MAX_LABEL = 65535  # label maps are written as unsigned 16-bit at most


class ApiError(Exception):
    """A request the API refuses: (status, one line)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class JobRequest(BaseModel):
    kind: str


def examples_dir() -> Path | None:
    """The source checkout's examples/ folder, where cryoplan runs from one."""
    folder = Path(__file__).resolve().parents[3] / "examples"
    return folder if folder.is_dir() else None


def _suffix(name: str) -> str:
    lower = name.lower()
    for suffix in VOLUME_SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    raise ApiError(400, f"{name}: a volume file ({', '.join(VOLUME_SUFFIXES)}) was expected")


class Application:
    """The state behind the routes: the store, the workers, cached access maps."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.access: OrderedDict[str, Any] = OrderedDict()  # case key → AccessMap
        self.names: dict[str, dict[str, str]] = {}  # case id and image → label names
        self.overlays: OrderedDict[str, bytes] = OrderedDict()  # outline files (overlays.py)

    def cached_overlay(self, key: str, make: Any) -> bytes:
        if key not in self.overlays:
            self.overlays[key] = make()
            while len(self.overlays) > CACHED_OVERLAYS:
                self.overlays.popitem(last=False)
        self.overlays.move_to_end(key)
        return self.overlays[key]

    # --- cases ------------------------------------------------------------------------------

    def case_data(self, case_id: str) -> dict[str, Any]:
        if self.store.case(case_id) is None:
            raise ApiError(404, f"no case {case_id}")
        text = (self.store.case_dir(case_id) / "case.yaml").read_text("utf-8")
        return load_yaml(text)

    def validated(self, case_id: str, data: dict[str, Any]) -> Any:
        """The case as cryoplan reads it; a mistake is a 400 with the one-line error."""
        from cryoplan.case import case_from_dict  # noqa: PLC0415

        try:
            return case_from_dict(data, str(self.store.case_dir(case_id) / "case.yaml"))
        except CaseError as error:
            raise ApiError(400, str(error)) from None

    def save_case(self, case_id: str, data: dict[str, Any]) -> None:
        import yaml  # noqa: PLC0415

        from cryoplan.outputs import written_whole  # noqa: PLC0415

        with written_whole(self.store.case_dir(case_id) / "case.yaml") as temporary:
            temporary.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")

    def describe(self, case_id: str) -> dict[str, Any]:
        """A case for the front end: its case file, the label names it may target."""
        data = self.case_data(case_id)
        row = self.store.case(case_id) or {}
        image = (data.get("domain") or {}).get("image") or {}
        return {
            "id": case_id,
            "name": row.get("name"),
            "source": row.get("source"),
            "case": data,
            "files": {
                key: f"/api/cases/{case_id}/files/{key}"
                for key in ("image", "labels")
                if image.get("file" if key == "image" else "labels")
            },
            "label_names": self.label_names(case_id),
            "drawn_target": self.drawn_record(case_id),
            "jobs": [job.public() for job in self.store.jobs(case_id)],
        }

    def label_names(self, case_id: str) -> dict[str, str]:
        """The label map's values present → names (its own, else TotalSegmentator's when
        the case maps labels by those names, else the value)."""
        from cryoplan.anatomy.images import (  # noqa: PLC0415
            Volume,
            dicom_modality,
            read_labels,
            read_volume,
        )
        from cryoplan.anatomy.patient import organ_names  # noqa: PLC0415
        from cryoplan.anatomy.rtstruct import read_rtstruct  # noqa: PLC0415

        data = self.case_data(case_id)
        key = _cache_key([case_id, (data.get("domain") or {}).get("image")])
        if key not in self.names:
            case = self.validated(case_id, data)
            image = case.domain.image
            if image is None:
                return {}
            path = case.resolve_path(image.labels)
            if dicom_modality(path) == "RTSTRUCT":  # its ROIs drawn on the image's grid
                picture = read_volume(case.resolve_path(image.file), "domain.image.file")
                drawn, rois = read_rtstruct(path, picture.grid)
                labels = Volume(drawn.array, drawn.grid, rois)
            else:
                labels = read_labels(path, "domain.image.labels")
            values = sorted(int(v) for v in np.unique(labels.array) if v != 0)
            names, _ = organ_names(case, labels, values)
            self.names[key] = {str(v): n for v, n in names.items()}
        return self.names[key]

    def new_upload(self, name: str, image: UploadFile | None, labels: UploadFile | None) -> str:
        from cryoplan.anatomy.images import read_labels, read_volume  # noqa: PLC0415

        with self.store.new_case(name, "upload") as (case_id, staging):
            files = {}
            if image is not None and (image.filename or "").lower().endswith(".zip"):
                files = dicom_upload(image, staging, labels)
                image = labels = None  # read and converted by dicom_upload
            for key, upload in (("image", image), ("labels", labels)):
                if upload is None or not upload.filename:
                    continue
                target = staging / f"{key}{_suffix(upload.filename)}"
                _save_upload(upload, target)
                try:
                    if key == "image":
                        read_volume(target, f"{key} ({upload.filename})")
                    else:
                        read_labels(target, f"{key} ({upload.filename})")
                except CaseError as error:
                    message = str(error).replace(str(target), upload.filename)
                    raise ApiError(400, message) from None
                files[key] = target.name
            if "labels" not in files:
                raise ApiError(400, "labels: a label map file is required")
            data = {
                "name": name,
                "domain": {"image": {"file": files.get("image"), "labels": files["labels"],
                                     "tissues": {}, "default_tissue": "muscle"}},
                "protocol": DEFAULT_PROTOCOL,
            }  # fmt: skip
            if data["domain"]["image"]["file"] is None:
                del data["domain"]["image"]["file"]
            import yaml  # noqa: PLC0415

            (staging / "case.yaml").write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
        return case_id

    def new_from_example(self, name: str) -> str:
        folder = examples_dir()
        path = (folder / f"{name}.yaml") if folder is not None and SAFE_NAME.match(name) else None
        if path is None or not path.is_file():
            raise ApiError(404, f"no example {name}")
        data = load_yaml(path.read_text("utf-8"))
        with self.store.new_case(name, f"example:{name}") as (case_id, staging):
            image = (data.get("domain") or {}).get("image")
            if image is not None:
                for key, field in (("image", "file"), ("labels", "labels")):
                    if image.get(field):
                        source = (path.parent / image[field]).resolve()
                        if not source.is_file():
                            raise ApiError(404, f"example {name}: {source.name} is not here")
                        copy = f"{key}{_suffix(source.name)}"
                        shutil.copyfile(source, staging / copy)
                        image[field] = copy
            import yaml  # noqa: PLC0415

            (staging / "case.yaml").write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
        return case_id

    def edit(self, case_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        data = self.case_data(case_id)
        unknown = sorted(set(changes) - set(EDITABLE) - {"image"})
        if unknown:
            raise ApiError(400, f"{', '.join(unknown)}: not editable here (one of {EDITABLE})")
        for key in EDITABLE:
            if key in changes:
                if changes[key] is None:
                    data.pop(key, None)
                else:
                    data[key] = changes[key]
        image_changes = changes.get("image") or {}
        image = (data.get("domain") or {}).get("image")
        for key, value in image_changes.items():
            if key not in IMAGE_EDITABLE or image is None:
                raise ApiError(400, f"image.{key}: not editable here (one of {IMAGE_EDITABLE})")
            if key == "tissues" and isinstance(value, dict):
                # JSON keys are strings: "5" is label value 5, "liver" a label's name
                image[key] = {int(k) if str(k).isdigit() else k: v for k, v in value.items()}
            else:
                image[key] = value
        self.validated(case_id, data)
        self.save_case(case_id, data)
        return self.describe(case_id)

    def probes_from_upload(
        self, case_id: str, upload: UploadFile, model: str
    ) -> list[dict[str, Any]]:
        """Probes from an uploaded Slicer Markups file (its lines: tip, then entry); a probe
        keeps the model of the case's probe of the same name, else takes `model`."""
        from cryoplan.markups import probes_from_markups  # noqa: PLC0415

        known = {p.get("name"): p for p in self.case_data(case_id).get("probes") or []}
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "probes.mrk.json"
            _save_upload(upload, path)
            try:
                probes = probes_from_markups(path)
            except CaseError as error:
                name = upload.filename or "markups"
                raise ApiError(400, str(error).replace(str(path), name)) from None
        return [{"model": (known.get(p["name"]) or {}).get("model", model), **p} for p in probes]

    def paths(self, case_id: str, probes: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        from cryoplan.case import PlanningSpec  # noqa: PLC0415
        from cryoplan.planning.access import image_access, probe_paths  # noqa: PLC0415

        data = {**self.case_data(case_id), "probes": probes}
        case = self.validated(case_id, data)
        if case.domain.image is None or case.target is None:
            return None
        key = _cache_key({k: data.get(k) for k in ("domain", "target", "planning", "tissues")})
        if key not in self.access:
            spec = case.planning or PlanningSpec()
            self.access[key] = image_access(case.model_copy(update={"planning": spec}))
            while len(self.access) > 4:
                self.access.popitem(last=False)
        try:
            return probe_paths(case, list(case.probes or []), self.access[key])
        except CaseError as error:
            raise ApiError(400, str(error)) from None

    def target_outline(self, case_id: str) -> bytes:
        """The target's outline on the label map's grid: a NIfTI label map, 1 on the outline."""
        from cryoplan.server.overlays import nifti_bytes, shell, target_mask  # noqa: PLC0415

        data = self.case_data(case_id)
        case = self.validated(case_id, data)
        if case.domain.image is None:
            raise ApiError(404, f"case {case_id} has no image")
        if case.target is None:
            raise ApiError(404, f"case {case_id} has no target")

        def make() -> bytes:
            try:
                found = target_mask(case)
            except CaseError as error:
                raise ApiError(400, str(error)) from None
            if found is None:
                raise ApiError(404, f"case {case_id}: its target {case.target} has no voxel")
            mask, grid = found
            return nifti_bytes(shell(mask).astype(np.uint8), grid)

        key = _cache_key(["target", case_id, data.get("domain"), case.target])
        return self.cached_overlay(key, make)

    def shown_file(self, case_id: str, key: str) -> Path:
        """The file of a case's image or labels (`key`) as the viewer is given it: a DICOM
        series or object as its NIfTI copy (dicom_upload); a label map drawn on since, which
        is a NIfTI file of its own, as itself."""
        image = (self.case_data(case_id).get("domain") or {}).get("image") or {}
        name = {"image": image.get("file"), "labels": image.get("labels")}.get(key)
        if not name:
            raise ApiError(404, f"case {case_id} has no {key}")
        path = self.store.case_dir(case_id) / Path(name).name
        view = self.store.case_dir(case_id) / VIEW_FILES[key]
        dicom = path.is_dir() or (path.suffix == ".dcm" and view.is_file())
        return view if dicom else path

    def still(self, case_id: str) -> bytes:
        """A PNG of the case image's axial slice where the page first centres its view (the
        target sphere's centre, else the first probe's tip, else the image's centre), for
        the page to show while its viewer starts (overlays.still_png)."""
        from cryoplan.anatomy.images import read_volume  # noqa: PLC0415
        from cryoplan.server.overlays import still_png  # noqa: PLC0415

        path = self.shown_file(case_id, "image")
        data = self.case_data(case_id)
        image = data["domain"]["image"]
        spheres = image.get("lesions") or []
        targets = [x for x in spheres if x.get("tissue", "tumour") == data.get("target")]
        probes = data.get("probes") or []
        centre = (
            (targets or spheres)[0]["centre_mm"] if spheres
            else probes[0]["tip_mm"] if probes else None
        )  # fmt: skip

        def make() -> bytes:
            try:
                volume = read_volume(path, "domain.image.file")
            except CaseError as error:
                raise ApiError(400, str(error)) from None
            at = centre
            if at is None:
                at = volume.grid.lps_from_index((np.asarray(volume.grid.shape) - 1) / 2)
            return still_png(volume, np.asarray(at, float))

        return self.cached_overlay(_cache_key(["still", case_id, image.get("file"), centre]), make)

    # --- a target drawn in the viewer --------------------------------------------------------

    def drawn_record(self, case_id: str) -> dict[str, Any] | None:
        path = self.store.case_dir(case_id) / DRAWN_RECORD
        return json.loads(path.read_text("utf-8")) if path.is_file() else None

    @staticmethod
    def undrawn(data: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        """The case file as it was before the drawing `record` describes: its own label map,
        no mapping or name of the drawn label, its target, the target's labels and spheres
        back, and (a DICOM label object's) tissues mapped by its names again."""
        image = data["domain"]["image"]
        image["labels"] = record["original_labels"]
        renamed = record.get("renamed_keys", {})  # label value → the DICOM object's name
        tissues = {renamed.get(str(k), k): v for k, v in (image.get("tissues") or {}).items()
                   if str(k) != str(record["label"])}  # fmt: skip
        image["tissues"] = tissues
        for key, tissue in record["removed_tissues"].items():  # JSON keys: "5" is label 5
            image["tissues"][int(key) if key.lstrip("-").isdigit() else key] = tissue
        names = {k: v for k, v in (image.get("label_names") or {}).items()
                 if str(k) not in record.get("added_label_names", [])}  # fmt: skip
        if names:
            image["label_names"] = names
        else:
            image.pop("label_names", None)
        if record["removed_lesions"]:
            image["lesions"] = [*(image.get("lesions") or []), *record["removed_lesions"]]
        if record["original_target"] is None:
            data.pop("target", None)
        else:
            data["target"] = record["original_target"]
        return data

    def draw_target(self, case_id: str, upload: UploadFile) -> dict[str, Any]:
        """A mask drawn on the label map's grid (NIfTI, 1 drawn, 0 not) as the case's target:
        a new label map in the case's folder (the original's labels, the drawn voxels a new
        label mapped to `tumour` and named as drawn by hand), the case pointed at it with
        `target: tumour`. The original file is kept, and a drawing again replaces this one
        rather than adding to it. The former target's spheres (they would be written over
        the drawing) and its labels' mapping are set aside, to come back with
        `discard_drawing`.

        A DICOM-SEG or RTSTRUCT is drawn on as the viewer shows it, on the image's grid: the
        new label map is that, its values named by the object's segment or ROI names
        (`label_names`), and the tissues it mapped by name mapped by value."""
        from cryoplan.anatomy.images import (  # noqa: PLC0415
            dicom_modality,
            read_volume,
            same_grid,
            totalsegmentator_names,
            write_image,
        )
        from cryoplan.anatomy.patient import read_image_anatomy  # noqa: PLC0415
        from cryoplan.outputs import written_whole  # noqa: PLC0415
        from cryoplan.server.overlays import target_mask  # noqa: PLC0415
        from cryoplan.server.store import new_id  # noqa: PLC0415
        from cryoplan.server.worker import PREVIEW_SPACING_MM  # noqa: PLC0415

        data = self.case_data(case_id)
        image = (data.get("domain") or {}).get("image")
        if image is None:
            raise ApiError(400, f"case {case_id} has no image to draw a target on")
        record = self.drawn_record(case_id)
        if record is not None:
            data = self.undrawn(data, record)
            image = data["domain"]["image"]
        folder = self.store.case_dir(case_id)
        case = self.validated(case_id, data)
        labels_path = case.resolve_path(case.domain.image.labels)
        try:  # the label map as the simulation reads it (a DICOM object on the image's grid)
            labels = read_image_anatomy(case).labels
        except CaseError as error:
            raise ApiError(400, str(error)) from None
        from_dicom = labels_path.is_dir() or dicom_modality(labels_path) is not None
        name = upload.filename or "drawing.nii"
        with tempfile.TemporaryDirectory(prefix=".drawing-", dir=folder) as staging:
            path = Path(staging) / f"drawing{_suffix(name)}"
            _save_upload(upload, path)
            try:
                drawing = read_volume(path, f"drawing ({name})")
            except CaseError as error:
                # SimpleITK's reason names the path, cut short at times: no store path shown
                message = re.sub(re.escape(str(folder)) + r'[^"\s)]*', name, str(error))
                raise ApiError(400, message) from None
        if not same_grid(drawing.grid, labels.grid):
            raise ApiError(400, f"{name}: not on the label map's grid (shape "
                                f"{'×'.join(map(str, labels.grid.shape))}, its affine): got "
                                f"{'×'.join(map(str, drawing.grid.shape))}")  # fmt: skip
        values = np.unique(drawing.array)
        if not set(values.tolist()) <= {0, 1}:
            shown = ", ".join(f"{v:g}" for v in values[:6]) + (", …" if len(values) > 6 else "")
            raise ApiError(400, f"{name}: a binary mask, 0 and 1, was expected (got {shown})")
        drawn = drawing.array == 1
        if not drawn.any():
            raise ApiError(400, f"{name}: empty (no voxel drawn)")
        # above every TotalSegmentator value too, so that no organ's name is given to it
        value = max(int(labels.array.max()), *totalsegmentator_names().values()) + 1
        if value > MAX_LABEL:
            raise ApiError(400, f"domain.image.labels: no free label up to {MAX_LABEL}")
        out = labels.array.astype(np.uint16 if labels.array.min() >= 0 else np.int32)
        out[drawn] = value
        target = data.get("target")
        lesions = image.get("lesions") or []
        removed = [x for x in lesions if target is not None and x.get("tissue") == target]
        kept = [x for x in lesions if x not in removed]
        tissues = image.get("tissues") or {}
        # the labels of the former target are no longer it (as "Target this label" does)
        unmapped = {str(k): v for k, v in tissues.items() if target is not None and v == target}
        kept_tissues = {k: v for k, v in tissues.items() if str(k) not in unmapped}
        own = (labels.label_names or {}) if from_dicom else {}
        by_name = {n: v for v, n in own.items()}
        renamed = {str(by_name[k]): k for k in kept_tissues if k in by_name}
        for number, by in renamed.items():  # one mapping a label, else no way back on discard
            if any(str(k) == number for k in kept_tissues):
                raise ApiError(400, f"domain.image.tissues: label {number} is mapped both as "
                                    f"{by!r} and as {number}: keep one to draw")  # fmt: skip
        kept_tissues = {by_name.get(k, k): v for k, v in kept_tissues.items()}
        named = image.get("label_names") or {}
        names = {**own, **named, value: f"{DRAWN_TISSUE} (drawn by hand)"}
        new_name = f"labels-drawn-{new_id()[:8]}.nii.gz"  # new address: no cache keeps the old
        record = {
            "drawn_target": True,
            "note": "a target drawn by hand in cryoplan serve; not from the label map",
            "labels": new_name,
            "label": value,
            "voxels": int(drawn.sum()),
            "original_labels": image["labels"],
            "original_target": target,
            "removed_lesions": removed,
            "removed_tissues": unmapped,
            "renamed_keys": renamed,
            "added_label_names": [str(v) for v in names if v not in named],
            "warning": thin_drawing_warning(drawn, labels.grid.spacing_mm,
                                            max(PREVIEW_SPACING_MM, case.grid.spacing_mm)),
        }
        image["labels"] = new_name
        image["tissues"] = {**kept_tissues, value: DRAWN_TISSUE}
        image["label_names"] = names
        if lesions:
            image["lesions"] = kept
        data["target"] = DRAWN_TISSUE
        write_image(folder / new_name, out, labels.grid)
        try:
            checked = self.validated(case_id, data)
            try:
                if target_mask(checked) is None:
                    raise ApiError(400, f"{name}: no drawn voxel is left in the target")
            except CaseError as error:
                raise ApiError(400, str(error)) from None
        except ApiError:
            (folder / new_name).unlink(missing_ok=True)
            raise
        # older drawn label maps are kept: a job queued with one still reads it
        with written_whole(folder / DRAWN_RECORD) as temporary:
            temporary.write_text(json.dumps(record, indent=2) + "\n", "utf-8")
        self.save_case(case_id, data)
        return self.describe(case_id)

    def discard_drawing(self, case_id: str) -> dict[str, Any]:
        data = self.case_data(case_id)
        record = self.drawn_record(case_id)
        if record is None:
            raise ApiError(404, f"case {case_id} has no drawn target")
        data = self.undrawn(data, record)
        self.validated(case_id, data)
        self.save_case(case_id, data)
        (self.store.case_dir(case_id) / DRAWN_RECORD).unlink()
        return self.describe(case_id)

    # --- jobs -------------------------------------------------------------------------------

    def submit(self, case_id: str, kind: str) -> dict[str, Any]:
        if kind not in JOB_KINDS:
            raise ApiError(400, f"kind: one of {', '.join(JOB_KINDS)} (got {kind!r})")
        data = self.case_data(case_id)
        case = self.validated(case_id, data)
        if kind == "plan":
            if case.target is None:
                raise ApiError(400, "target: the planner needs a target")
        else:
            try:
                case.require_plan()
            except CaseError as error:
                raise ApiError(400, str(error)) from None
        return self.store.submit(case_id, kind, {"case": data}).public()

    def job(self, job_id: str) -> Any:
        job = self.store.job(job_id)
        if job is None:
            raise ApiError(404, f"no job {job_id}")
        return job

    def job_file(self, job_id: str, name: str) -> Path:
        job = self.job(job_id)
        if job.state != "done":
            raise ApiError(404, f"job {job_id} is {job.state}: no files yet")
        folder = self.store.job_dir(job_id)
        # only a name listed in the job's own folder: no path reaches outside it
        if not SAFE_NAME.match(name) or name not in {p.name for p in folder.iterdir()}:
            if name == "report.html" and job.kind == "simulate":
                if job.message == REPORT_PENDING:
                    raise ApiError(404, f"job {job_id}: its report is still being written")
                raise ApiError(404, f"job {job_id}: no report ({job.message})")
            raise ApiError(404, f"no file {name!r} in job {job_id}")
        path = folder / name
        if not path.is_file():
            raise ApiError(404, f"no file {name!r} in job {job_id}")
        return path

    def isotherms(self, job_id: str) -> bytes:
        """The 0, −20 and −40 °C isotherms of a job's T_min on the image's grid: a NIfTI label
        map, 1, 2 and 3 on them (overlays.isotherm_labels)."""
        from cryoplan.server.overlays import isotherms_file  # noqa: PLC0415
        from cryoplan.simulator import ISOTHERMS_C  # noqa: PLC0415

        try:
            path = self.job_file(job_id, TMIN_ON_IMAGE)
        except ApiError:
            if self.job(job_id).state != "done":
                raise
            raise ApiError(404, f"job {job_id} has no minimum temperature on an image's grid "
                                "(a plan, or a case without an image)") from None  # fmt: skip
        return self.cached_overlay(f"isotherms {job_id}", lambda: isotherms_file(path, ISOTHERMS_C))


def thin_drawing_warning(
    drawn: np.ndarray, spacing_mm: tuple[float, float, float], preview_spacing_mm: float
) -> str | None:
    """What to say of a drawn target thinner than the preview's grid along an image axis:
    a coarse grid samples it at voxel centres only, and may miss it whole."""
    from scipy import ndimage  # noqa: PLC0415

    found = ndimage.find_objects(drawn.astype(np.uint8))[0]
    extents = [(s.stop - s.start) * h for s, h in zip(found, spacing_mm, strict=True)]
    thin = min(range(3), key=lambda a: extents[a])
    if extents[thin] >= preview_spacing_mm:
        return None
    slices = found[thin].stop - found[thin].start
    return (f"the drawing is {extents[thin]:.1f} mm thick ({slices} slice{'s' * (slices > 1)} "
            f"along the image's axis {'ijk'[thin]}), thinner than the preview's "
            f"{preview_spacing_mm:g} mm grid, which may miss it: paint every slice the "
            "lesion spans")  # fmt: skip


VIEW_FILES = {"image": "image_view.nii.gz", "labels": "labels_view.nii.gz"}
MAX_ZIP_MEMBERS = 20_000


def dicom_upload(archive: UploadFile, staging: Path, labels: UploadFile | None) -> dict[str, str]:
    """A zipped DICOM series with its SEG or RTSTRUCT (or a label map uploaded beside it),
    unpacked into `staging` and read back: the series in `dicom/`, the label object as
    `labels.dcm`, and NIfTI copies of both on the image's grid for the viewer (pixels and
    geometry only: no DICOM attribute is copied). Returns the case's image and labels."""
    import zipfile  # noqa: PLC0415

    from cryoplan.anatomy.images import (  # noqa: PLC0415
        Volume,
        dicom_modality,
        read_labels,
        read_volume,
        resample,
        write_image,
    )
    from cryoplan.anatomy.rtstruct import read_rtstruct  # noqa: PLC0415

    name = archive.filename or "image.zip"
    zipped = staging / ".upload.zip"
    _save_upload(archive, zipped)
    series = staging / "dicom"
    series.mkdir()
    try:
        with zipfile.ZipFile(zipped) as z:
            members = [m for m in z.infolist() if not m.is_dir()]
            if len(members) > MAX_ZIP_MEMBERS:
                raise ApiError(400, f"{name}: more than {MAX_ZIP_MEMBERS} files")
            if sum(m.file_size for m in members) > MAX_UPLOAD_BYTES:
                limit = f"{MAX_UPLOAD_BYTES / 2**20:g} MiB"
                raise ApiError(413, f"{name}: unpacks to more than {limit}")
            for i, member in enumerate(members):
                # written under a name of ours: no member's path is used as a path
                with z.open(member) as source, (series / f"{i:06d}.dcm").open("wb") as out:
                    shutil.copyfileobj(source, out)
    except (zipfile.BadZipFile, OSError) as error:
        raise ApiError(400, f"{name}: a readable zip archive ({error})") from None
    finally:
        zipped.unlink(missing_ok=True)
    objects = [p for p in sorted(series.iterdir()) if dicom_modality(p) in ("SEG", "RTSTRUCT")]
    if len(objects) > 1:
        raise ApiError(400, f"{name}: one SEG or RTSTRUCT at most ({len(objects)} found)")
    if objects:
        objects[0].rename(staging / "labels.dcm")
    try:
        picture = read_volume(series, f"image ({name})")
    except CaseError as error:
        raise ApiError(400, str(error).replace(str(series), name)) from None
    write_image(staging / VIEW_FILES["image"], picture.array, picture.grid)
    files = {"image": "dicom"}
    if labels is not None and labels.filename:
        files["labels"] = f"labels{_suffix(labels.filename)}"
        _save_upload(labels, staging / files["labels"])
        field = f"labels ({labels.filename})"
    elif objects:
        files["labels"] = "labels.dcm"
        field = f"labels (the {dicom_modality(staging / 'labels.dcm')} in {name})"
    else:
        raise ApiError(400, f"{name}: a SEG or RTSTRUCT in the archive, or a label map beside it")
    path = staging / files["labels"]
    try:
        if dicom_modality(path) == "RTSTRUCT":
            label_map, _ = read_rtstruct(path, picture.grid, field)
        else:
            label_map = read_labels(path, field)
    except CaseError as error:
        raise ApiError(400, str(error).replace(str(path), field)) from None
    on_image = resample(Volume(label_map.array, label_map.grid), picture.grid, nearest=True)
    write_image(staging / VIEW_FILES["labels"], on_image.astype("int16"), picture.grid)
    return files


def _save_upload(upload: UploadFile, target: Path) -> None:
    """Copy an upload to `target`, refusing one beyond MAX_UPLOAD_BYTES."""
    written = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(1 << 20):
            written += len(chunk)
            if written > MAX_UPLOAD_BYTES:
                limit = f"{MAX_UPLOAD_BYTES / 2**20:g} MiB"
                raise ApiError(413, f"{upload.filename}: larger than {limit}")
            out.write(chunk)


def _cache_key(value: Any) -> str:
    """A case's part as text, to key a cache: a label map's tissues may mix label values
    (int keys) and names (str keys), which json.dumps cannot sort together."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        return [plain(x) for x in v] if isinstance(v, list) else v

    return json.dumps(plain(value), sort_keys=True)


def _static(name: str) -> Path | None:
    path = resources.files("cryoplan.server").joinpath("static", name)
    return Path(str(path)) if path.is_file() else None


def create_app(
    data_dir: str | Path, workers: int = 2, token: str | None = None, start_workers: bool = True
) -> FastAPI:
    """The application on a data folder; `workers` job processes are started with it (and
    stopped with it) unless `start_workers` is False (tests of the API alone)."""
    store = Store(data_dir)
    pool = WorkerPool(store, workers) if start_workers else None
    state = Application(store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if pool is not None:
            pool.start()
        try:
            yield
        finally:
            if pool is not None:
                pool.stop()

    app = FastAPI(title="cryoplan", lifespan=lifespan, docs_url="/api/docs", redoc_url=None)
    app.state.cryoplan = state

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        # a case's error names its files (case.yaml: …) by their paths in the store
        return JSONResponse({"error": store.plain_message(str(error))}, status_code=error.status)

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if token is None:
            return await call_next(request)
        given = (
            request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            or request.cookies.get(TOKEN_COOKIE, "")
            or request.query_params.get("token", "")
        )
        if not secrets.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"error": "a valid token is required"}, status_code=401)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/", response_class=HTMLResponse)
    def index() -> Any:
        page = _static("index.html")
        if page is None:
            raise ApiError(404, "the front end is not built (make web)")
        return FileResponse(page, media_type="text/html")

    @app.get("/static/{name}")
    def static(name: str) -> Any:
        page = _static(name) if SAFE_NAME.match(name) else None
        if page is None:
            raise ApiError(404, f"no static file {name!r}")
        return FileResponse(page)

    @app.get("/api/examples")
    def examples() -> list[dict[str, str]]:
        folder = examples_dir()
        if folder is None:
            return []
        out = []
        for path in sorted(folder.glob("*.yaml")):
            first = path.read_text("utf-8").splitlines()[:1]
            title = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
            out.append({"name": path.stem, "title": title})
        return out

    @app.get("/api/probe-models")
    def probe_models() -> list[dict[str, Any]]:
        from cryoplan.probes.catalogue import load_catalogue  # noqa: PLC0415

        return [
            {"name": name, "description": model.description, "diameter_mm": model.diameter_mm,
             "active_length_mm": model.active_length_mm, "calibrated": model.calibrated}
            for name, model in load_catalogue().probes.items()
        ]  # fmt: skip

    @app.get("/api/cases")
    def cases() -> list[dict[str, Any]]:
        return store.cases()

    @app.post("/api/cases")
    def upload(
        labels: UploadFile | None = File(None),  # noqa: B008
        image: UploadFile | None = File(None),  # noqa: B008
        name: str = Form("uploaded case"),
    ) -> dict[str, Any]:
        return state.describe(state.new_upload(name, image, labels))

    @app.post("/api/cases/example/{name}")
    def from_example(name: str) -> dict[str, Any]:
        return state.describe(state.new_from_example(name))

    @app.get("/api/cases/{case_id}")
    def case(case_id: str) -> dict[str, Any]:
        return state.describe(case_id)

    @app.put("/api/cases/{case_id}")
    def edit(case_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return state.edit(case_id, changes)

    @app.post("/api/cases/{case_id}/paths")
    def paths(case_id: str, body: dict[str, Any]) -> Any:
        return {"paths": state.paths(case_id, body.get("probes") or [])}

    @app.get("/api/cases/{case_id}/files/{key}")
    def case_file(case_id: str, key: str) -> Any:
        return FileResponse(state.shown_file(case_id, key))

    @app.get("/api/cases/{case_id}/still.png")
    def still(case_id: str) -> Response:
        return Response(state.still(case_id), media_type="image/png",
                        headers={"Cache-Control": "no-store"})  # fmt: skip

    @app.get("/api/cases/{case_id}/target-outline")
    def target_outline(case_id: str) -> Response:
        # the target changes under the same address: never from the browser's cache
        return Response(state.target_outline(case_id), media_type="application/gzip",
                        headers={"Cache-Control": "no-store"})  # fmt: skip

    @app.post("/api/cases/{case_id}/drawn-target")
    def drawn_target(
        case_id: str,
        drawing: UploadFile = File(...),  # noqa: B008
    ) -> dict[str, Any]:
        return state.draw_target(case_id, drawing)

    @app.delete("/api/cases/{case_id}/drawn-target")
    def discard_drawing(case_id: str) -> dict[str, Any]:
        return state.discard_drawing(case_id)

    @app.get("/api/cases/{case_id}/markups")
    def markups(case_id: str) -> Any:
        from cryoplan.markups import probes_to_markups  # noqa: PLC0415
        from cryoplan.probes.geometry import probe_geometry  # noqa: PLC0415

        case = state.validated(case_id, state.case_data(case_id))
        placed = []
        for name, spec in zip(case.probe_names(), case.probes or [], strict=True):
            g = probe_geometry(spec, case.probe_models)
            placed.append(SimpleNamespace(
                name=name, model=spec.model, diameter_mm=g.diameter_mm,
                active_length_mm=g.active_length_mm, tip_mm=g.tip_mm, entry_mm=g.entry_mm,
            ))  # fmt: skip
        return JSONResponse(probes_to_markups(placed))

    @app.post("/api/cases/{case_id}/markups")
    def markups_in(
        case_id: str,
        markups: UploadFile = File(...),  # noqa: B008
        model: str = Form("argon-17g"),
    ) -> dict[str, Any]:
        return state.edit(case_id, {"probes": state.probes_from_upload(case_id, markups, model)})

    @app.post("/api/cases/{case_id}/accept-plan")
    def accept_plan(case_id: str, body: dict[str, Any]) -> dict[str, Any]:
        job_id = str(body.get("job", ""))
        found = state.job(job_id)
        if found.kind != "plan" or found.case_id != case_id:
            raise ApiError(400, f"job: a plan job of case {case_id} (got {job_id})")
        alternative = body.get("alternative")
        if alternative is None:  # the plan chosen
            planned = load_yaml(state.job_file(job_id, "plan.yaml").read_text("utf-8"))
            return state.edit(case_id, {k: planned.get(k) for k in ("probes", "protocol")})
        summary = json.loads(state.job_file(job_id, "summary.json").read_text("utf-8"))
        rows = (summary.get("plan") or {}).get("alternatives") or []
        if (isinstance(alternative, bool) or not isinstance(alternative, int)
                or not 0 <= alternative < len(rows)):  # fmt: skip
            raise ApiError(400, f"alternative: a row of the plan's {len(rows)} alternatives, "
                                f"0 to {len(rows) - 1} (got {alternative!r})")  # fmt: skip
        row = rows[alternative]
        if "probe_specs" not in row or "protocol_phases" not in row:
            raise ApiError(400, f"alternative: job {job_id}'s alternatives do not list "
                                "their probes (an older cryoplan's plan): plan again")  # fmt: skip
        return state.edit(case_id, {"probes": row["probe_specs"],
                                    "protocol": row["protocol_phases"]})  # fmt: skip

    @app.get("/api/cases/{case_id}/case.yaml")
    def case_yaml(case_id: str) -> Any:
        state.case_data(case_id)  # 404 for an unknown case
        return FileResponse(store.case_dir(case_id) / "case.yaml", media_type="application/yaml",
                            filename="case.yaml")  # fmt: skip

    @app.post("/api/cases/{case_id}/jobs")
    def submit(case_id: str, body: JobRequest) -> dict[str, Any]:
        return state.submit(case_id, body.kind)

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        found = state.job(job_id)
        out = found.public()
        if found.state == "done":
            folder = store.job_dir(job_id)
            out["files"] = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        return out

    @app.get("/api/jobs/{job_id}/events")
    async def events(job_id: str) -> StreamingResponse:
        state.job(job_id)  # 404 before the stream starts

        async def stream() -> AsyncIterator[str]:
            last = None
            while True:
                current = store.job(job_id)
                assert current is not None
                shown = current.public()
                if shown != last:
                    yield f"data: {json.dumps(shown)}\n\n"
                    last = shown
                if current.final:
                    return
                await asyncio.sleep(0.1)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict[str, Any]:
        state.job(job_id)
        cancelled = store.cancel(job_id)
        assert cancelled is not None
        return cancelled.public()

    @app.get("/api/jobs/{job_id}/files/{name}")
    def job_file(job_id: str, name: str) -> Any:
        return FileResponse(state.job_file(job_id, name))

    @app.get("/api/jobs/{job_id}/isotherms")
    def isotherms(job_id: str) -> Response:
        return Response(state.isotherms(job_id), media_type="application/gzip")

    return app
