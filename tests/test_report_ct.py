"""The report of a patient case (the CT example): organs by their own names, paths from the
skin, collateral warnings, the interactive 3-D scene, and the PDF's pages.

The example's simulation is shared with test_cli.py (conftest's `run_example`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from pypdf import PdfReader

from cryoplan.report import write_report
from cryoplan.report.data import load_report_data
from cryoplan.report.scene import scene_payload

pytestmark = pytest.mark.shared_data
EXAMPLE = "ct-liver-ivc.yaml"


@pytest.fixture(scope="module")
def ct_result(run_example) -> tuple[Path, dict[str, Any]]:
    _, out, result = run_example(EXAMPLE)
    assert result.exit_code == 0, result.output
    write_report(out, pdf=True)
    return out, json.loads((out / "summary.json").read_text("utf-8"))


def test_organs_keep_their_own_names_and_roles(ct_result) -> None:
    out, summary = ct_result
    labels = summary["organ_labels"]
    assert labels["names_from"] == "TotalSegmentator 'total' label names"
    on_grid = np.asarray(nib.load(out / "organs.nii.gz").dataobj)
    present = {int(v) for v in np.unique(on_grid)} - {0}
    assert present == {int(v) for v in labels["names"]}
    organs = summary["outcome"]["organs"]
    assert set(organs) == set(labels["names"].values())
    # the tissues lump every unmapped label into muscle; the organs keep them apart
    assert organs["adrenal_gland_right"]["tissue"] == "muscle"
    assert organs["duodenum"]["tissue"] == "muscle"
    assert organs["liver"]["role"] == "host"  # the synthetic lesion lies in the liver
    assert organs["inferior_vena_cava"]["role"] == "vessel"
    assert organs["portal_vein_and_splenic_vein"]["role"] == "vessel"


def test_a_frozen_organ_is_a_warning_and_a_vessel_reports_its_distance_to_the_ice(
    ct_result,
) -> None:
    _, summary = ct_result
    organs = summary["outcome"]["organs"]
    warnings = summary["outcome"]["warnings"]
    adrenal = organs["adrenal_gland_right"]
    # the right adrenal lies against the lesion's posterior side: about 1.5 mL freezes
    assert 1.0 < adrenal["frozen_volume_ml"] < 2.2
    assert adrenal["ice_clearance_mm"] < 0.0
    assert any(w.startswith("adrenal_gland_right freezes:") for w in warnings)
    for name, organ in organs.items():
        frozen = organ["role"] == "nearby" and organ["frozen_volume_ml"] > 0.0
        assert any(w.startswith(f"{name} freezes:") for w in warnings) == frozen
    # vessels are held at blood temperature: never frozen, and the ice reaches their wall
    ivc = organs["inferior_vena_cava"]
    assert ivc["frozen_volume_ml"] == 0.0
    assert ivc["minimum_temperature_c"] == pytest.approx(37.0, abs=0.01)
    assert 0.0 <= ivc["ice_clearance_mm"] <= 3.0
    # the organ farthest from the ice is at least as far as any frozen one
    assert organs["pancreas"]["ice_clearance_mm"] > 15.0


def test_each_probe_has_its_path_from_the_skin(ct_result) -> None:
    _, summary = ct_result
    paths = {p["probe"]: p for p in summary["paths"]}
    assert set(paths) == {"a", "b", "c"}
    for probe in summary["probes"]:
        path = paths[probe["name"]]
        tip = np.asarray(probe["tip_mm"])
        skin = np.asarray(path["skin_entry_mm"])
        outward = np.asarray(probe["entry_mm"]) - tip
        # the skin entry lies on the probe's axis, between its tip and its entry point
        along = np.dot(skin - tip, outward) / np.linalg.norm(outward) ** 2
        assert 0.0 < along < 1.0
        np.testing.assert_allclose(skin, tip + along * outward, atol=1e-6)
        assert path["depth_mm"] == pytest.approx(np.linalg.norm(skin - tip), abs=1e-6)
        # straight anterior, in the axial plane
        assert path["angle_to_axial_plane_deg"] == pytest.approx(0.0, abs=1e-9)
        assert path["angle_in_axial_plane_deg"] == pytest.approx(0.0, abs=1e-9)
        crossed = path["crosses"]
        assert sum(c["length_mm"] for c in crossed) == pytest.approx(path["depth_mm"], abs=1e-6)
        assert crossed[0]["region"] == "unlabelled (simulated as muscle)"
        regions = [c["region"] for c in crossed]
        assert "liver" in regions
        assert "tumour" in regions
        # every shaft passes the portal vein closer than the 3 mm clearance asked for
        assert path["nearest_no_fly"] == "portal_vein_and_splenic_vein"
        assert path["clearance_mm"] < 3.0
        assert "portal_vein_and_splenic_vein" in path["problem"]


def test_report_names_the_organs_paths_and_frozen_organs(ct_result) -> None:
    out, _ = ct_result
    text = (out / "report.html").read_text("utf-8")
    for heading in ("Paths from the skin", "Organs near the treatment", "3-D view"):
        assert f"<h2>{heading}</h2>" in text
    organs = text[text.index("<h2>Organs near the treatment</h2>") :]
    organs = organs[: organs.index("<h2>", 5)]
    assert '<td class="warn">adrenal_gland_right</td>' in organs
    assert "TotalSegmentator" in organs
    # nothing identifying: digests, never the image's path
    assert "SHA-256" in text
    assert "abdomen_ct" not in text
    assert "1 synthetic lesion" in text
    # the probe model's residual beside the margin it makes uncertain
    assert "Uncertainty: argon-17g&#39;s zones differ from measured ones by" in text


def test_scene_draws_the_organs_near_the_ice_in_their_own_colours(ct_result) -> None:
    out, summary = ct_result
    payload, legend = scene_payload(load_report_data(out))
    names = [m["name"] for m in payload["meshes"]]
    assert names[:3] == ["target (tumour)", "lethal zone", "ice ball (0 °C)"]
    for organ in ("adrenal_gland_right", "inferior_vena_cava", "portal_vein_and_splenic_vein"):
        assert organ in names
    assert "pancreas" not in names  # 25 mm from the ice: left out
    assert sum(n.startswith("probe ") for n in names) == 6  # active length and shaft each
    colours = {e.label: e.colour for e in legend}
    organ_colours = [colours[n] for n in names if n in summary["outcome"]["organs"]]
    assert len(set(organ_colours)) == len(organ_colours)  # no two organs alike
    assert payload["volumes"][0]["colormap"] == "gray"  # the CT under the scene


def test_pdf_pages_are_one_size_with_the_pictures(ct_result) -> None:
    out, _ = ct_result
    reader = PdfReader(out / "report.pdf")
    sizes = {(round(float(p.mediabox.width), 1), round(float(p.mediabox.height), 1))
             for p in reader.pages}  # fmt: skip
    assert sizes == {(595.3, 841.9)}  # A4 in points, every page
    text = "".join(page.extract_text() for page in reader.pages)
    for heading in ("Paths from the skin", "Organs near the treatment", "3-D view", "Verdict"):
        assert heading in text
    images = {image.name for page in reader.pages for image in page.images}
    # the slices, three strips, the worst-point slices, the 3-D still, growth,
    # thermocouples and histograms
    assert len(images) >= 9
