"""The report: one self-contained HTML file (and a PDF), from a result directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cryoplan.case import case_from_dict
from cryoplan.cli import app
from cryoplan.outputs import write_result
from cryoplan.report import write_report
from cryoplan.report.data import load_report_data
from cryoplan.report.html import figure_pngs, probe_geometry, render_html
from cryoplan.report.scene import viewer_script
from cryoplan.simulation import simulate

runner = CliRunner()
CASE = {
    "name": "report-test",
    "domain": {"phantom": "liver-tumour"},
    "target": "tumour",
    "grid": {"spacing_mm": 2.5},
    "probes": [
        {"name": "a", "model": "generic-17g", "tip_mm": [-5, 11, 0], "entry_mm": [-5, -120, 0]},
        {"name": "b", "model": "generic-17g", "tip_mm": [5, 11, 0], "entry_mm": [5, -120, 0]},
    ],
    "protocol": [
        {"phase": "freeze", "duration_min": 4},
        {"phase": "passive_thaw", "duration_min": 2},
        {"phase": "freeze", "duration_min": 4},
    ],
    "sensors": [{"name": "centre", "at_mm": [0, 0, 0]}],
    "critical_structures": [{"tissue": "vessel", "keep_above_c": 30}],
}


@pytest.fixture(scope="module")
def result_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "result"
    write_result(simulate(case_from_dict(CASE, "report-test.yaml")), out)
    return out


@pytest.fixture(scope="module")
def written(result_dir: Path) -> list[Path]:
    """report.html and report.pdf, written once for the tests that read them."""
    return write_report(result_dir, pdf=True)


def test_report_is_one_self_contained_html_file(written: list[Path]) -> None:
    html_path = written[0]
    text = html_path.read_text("utf-8")
    # slices, the axial, coronal and sagittal strips, slices through the smallest margin,
    # sensors, growth, histogram; the 3-D view is the inlined viewer (built by `make web`)
    script = viewer_script()
    assert script is not None
    assert script[:200] in text  # inlined, not linked
    page = text.replace(script, "")  # the bundle carries pictures of its own
    assert page.count("data:image/png;base64,") == 8
    assert "CryoplanView.show(" in page
    for external in ("<script src", "<link", 'src="http', "src='http", "@import", "url("):
        assert external not in text
    # nothing escaped twice, nothing left unrendered
    assert "&amp;lt;" not in text
    assert "{{" not in text
    assert "Verdict:" in text
    assert "generic-17g" in text  # the plan
    assert "not calibrated" in text  # the warning about uncalibrated probes


def test_report_verdict_matches_the_summary(result_dir: Path, written: list[Path]) -> None:
    summary = json.loads((result_dir / "summary.json").read_text("utf-8"))
    verdict = summary["outcome"]["verdict"]
    html_path = written[0]
    assert verdict["text"].split(";")[0] in html_path.read_text("utf-8").replace("&#x27;", "'")
    vessel = summary["outcome"]["structures"]["vessel"]
    # held at blood temperature by the model: its 30 °C limit is not a test that can fail;
    # the ice ball's distance to its wall is given instead
    assert vessel["constraint_met"] is None
    assert "held at blood temperature" in vessel["constraint_note"]
    assert vessel["clearance_from_ice_mm"] is not None
    assert vessel["clearance_from_ice_mm"] <= vessel["clearance_from_lethal_zone_mm"]


def test_pdf_on_request(result_dir: Path, written: list[Path]) -> None:
    pdf = result_dir / "report.pdf"
    assert pdf in written
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_the_pdf_is_the_print_variant_of_the_same_page(result_dir: Path) -> None:
    data = load_report_data(result_dir)
    pictures = figure_pngs(data)
    screen, paper = render_html(data, False, pictures), render_html(data, True, pictures)
    # the still 3-D picture in place of the viewer, and otherwise the same sections
    assert "CryoplanView" not in paper
    assert paper.count("data:image/png;base64,") == 9

    def headings(text: str) -> list[str]:
        return [part.split("</h2>")[0] for part in text.split("<h2>")[1:]]

    assert headings(screen) == headings(paper)


def test_report_command_and_a_directory_that_is_not_a_result(
    tmp_path: Path, result_dir: Path
) -> None:
    ok = runner.invoke(app, ["report", str(result_dir)])
    assert ok.exit_code == 0, ok.output
    assert "report.html" in ok.output
    bad = runner.invoke(app, ["report", str(tmp_path)])
    assert bad.exit_code == 2
    assert str(tmp_path) in bad.stderr
    assert "missing summary.json" in bad.stderr
    assert not (tmp_path / "report.html").exists()


def test_report_states_the_margin_asked_for_and_how_far_to_trust_it(
    result_dir: Path, written: list[Path]
) -> None:
    summary = json.loads((result_dir / "summary.json").read_text("utf-8"))
    html_path = written[0]
    text = html_path.read_text("utf-8")
    asked = summary["outcome"]["target"]["required_margin_mm"]
    reached = summary["outcome"]["target"]["margin_mm"]["minimum"]
    assert f"Margin asked for: {asked:g} mm. Reached: {reached:+.1f} mm" in text
    assert ("inside the target" in text) == (reached < 0)
    assert "Research use only: not a medical device" in text
    assert "How far to trust these figures" in text
    # every probe model of the run, with its calibration
    for name, model in summary["probe_models"].items():
        assert name in text
        assert model["calibrated"] is False  # generic-17g: never fitted
    assert "not validated" in text
    assert "Uncertainty: generic-17g is not validated against measured ice balls" in text


def test_report_plan_gives_spacings_edges_phases_and_thermocouples(
    result_dir: Path, written: list[Path]
) -> None:
    html_path = written[0]
    text = html_path.read_text("utf-8")
    plan = text[text.index("<h2>Plan</h2>") :]
    plan = plan[: plan.index("<h2>", 5)]
    # probes a and b stand 10 mm apart, parallel: each is 10.0 mm from the other
    assert plan.count("<td>10.0</td>") == 2
    # both active lengths run through the tumour's middle: inside its edge (+)
    summary = json.loads((result_dir / "summary.json").read_text("utf-8"))
    assert [p["probes"] for p in summary["protocol"]] == [["a", "b"], [], ["a", "b"]]
    assert "<td>passive thaw</td><td>4</td><td>6</td><td>none</td>" in plan
    assert "2 freeze cycles" in plan
    assert "Thermocouples (shown on the slices): centre at" in plan


def test_probe_geometry_signs_the_distance_to_the_target_edge(result_dir: Path) -> None:
    spacing, to_edge = probe_geometry(load_report_data(result_dir))
    assert spacing == pytest.approx([10.0, 10.0], abs=0.01)
    # the phantom's 30 mm tumour around the origin, the probes' middles 5 mm off its centre
    # (grid 2.5 mm): about 15 − 5 = 10 mm inside its edge
    assert to_edge == pytest.approx([10.0, 10.0], abs=2.5)


def test_an_incomplete_plan_gets_advice_naming_the_worst_point_and_nearest_probe(
    result_dir: Path, written: list[Path]
) -> None:
    summary = json.loads((result_dir / "summary.json").read_text("utf-8"))
    target = summary["outcome"]["target"]
    html_path = written[0]
    text = html_path.read_text("utf-8").replace("&#x27;", "'")
    short = target["required_margin_mm"] - target["margin_mm"]["minimum"]
    assert short > 0  # the test plan falls short of its 5 mm margin
    assert "What would help:" in text
    assert f"moved about {short:.1f} mm towards it" in text
    assert target["margin_mm"]["minimum_side"] in text
