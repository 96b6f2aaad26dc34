"""The reports in a real browser: headless Chromium opens each self-contained report.html
from file://, draws the 3-D scene with WebGL, with no console error and no request for
anything but the page itself (see browser.py for how Chromium is run here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from browser import open_page, pixels, share_near

from cryoplan.case import case_from_dict
from cryoplan.outputs import write_result
from cryoplan.report import write_report
from cryoplan.report.figures import LETHAL_COLOUR, TARGET_COLOUR

READY = (
    "() => { const c = document.getElementById('view3d');"
    " return c.dataset.ready === '1' || !!c.dataset.error; }"
)
PHANTOM = {
    "name": "browser-test",
    "domain": {"phantom": "liver-tumour"},
    "target": "tumour",
    "grid": {"spacing_mm": 2.5},
    "probes": [
        {"name": "a", "model": "generic-17g", "tip_mm": [0, 11, 0], "entry_mm": [0, -120, 0]}
    ],
    "protocol": [{"phase": "freeze", "duration_min": 5}],
}


def _drawn_scene(report: Path) -> tuple[np.ndarray, object]:
    """Open a report, wait for its 3-D view, return the canvas's pixels and the page log."""
    with open_page(report.as_uri()) as (page, log):
        page.wait_for_function(READY, timeout=180_000)
        error = page.eval_on_selector("#view3d", "c => c.dataset.error || ''")
        assert error == ""
        assert "Verdict:" in page.inner_text(".verdict")
        canvas = page.locator("#view3d")
        canvas.scroll_into_view_if_needed()
        before = pixels(canvas.screenshot())
        box = canvas.bounding_box()
        # a drag turns the scene: the picture must change
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2 + 150, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
        after = pixels(canvas.screenshot())
    assert log.errors == []
    assert log.requests == [report.as_uri()]  # nothing fetched: the page carries everything
    assert np.abs(after - before).max(axis=2).astype(bool).mean() > 0.01
    return before, log


@pytest.fixture(scope="module")
def phantom_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cryoplan.simulation import simulate  # noqa: PLC0415

    out = tmp_path_factory.mktemp("browser") / "result"
    write_result(simulate(case_from_dict(PHANTOM, "browser-test.yaml")), out)
    (html,) = write_report(out)
    return html


def test_the_phantom_report_draws_its_scene(phantom_report: Path) -> None:
    image, _ = _drawn_scene(phantom_report)
    # no image volume: the scene's surfaces on a black background. The lethal zone is drawn
    # see-through over the target, so its yellow and the target's colours both show.
    # (measured: 17 % of the canvas lit, 3.1 % in those colours)
    lit = image.max(axis=2) > 30
    assert 0.06 < lit.mean() < 0.5
    assert share_near(image, LETHAL_COLOUR, 60) + share_near(image, TARGET_COLOUR, 60) > 0.01


@pytest.mark.shared_data
def test_the_ct_report_draws_the_image_and_its_organs(run_example) -> None:
    _, out, result = run_example("ct-liver-ivc.yaml")
    assert result.exit_code == 0, result.output
    html = out / "report.html"
    if not html.is_file():  # written already where test_report_ct.py ran first
        (html,) = write_report(out)
    image, _ = _drawn_scene(html)
    # the CT's volume rendering (greys) and coloured surfaces both show
    grey = (np.ptp(image, axis=2) < 12) & (image.mean(axis=2) > 90)
    coloured = np.ptp(image, axis=2) > 40
    assert grey.mean() > 0.05  # measured 0.14
    assert coloured.mean() > 0.01  # measured 0.020
