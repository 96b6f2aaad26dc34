"""The browser application end to end: `cryoplan serve`'s page in headless Chromium, with the
server and its worker processes running in this process (see browser.py for Chromium).

One flow on the shared abdominal CT: open the example, see the image, move a probe's tip by
clicking a slice, see the preview's cold zone appear where the probes are, simulate, read the
verdict, plan, fetch the report, all with no console error and no request off the server.
The screenshots are left in the temporary folder for a person to look at."""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from browser import open_page, pixels

SHARED_DATA = Path(__file__).parents[2] / "shared" / "data"
# The example on a 3 mm grid, with one 10-minute freeze and a small planning search, so that
# the whole flow takes about a minute (the example's own settings: ~30 s to simulate, ~3 min
# to plan)
CHEAPER = {
    "grid": {"spacing_mm": 3, "crop_margin_mm": 15},
    "protocol": [{"phase": "freeze", "duration_min": 10}],
    "planning": {
        "max_probes": 2,
        "max_sessions": 1,
        "samples": 4,
        "model_spacing_mm": 4,
        "protocols": [{"name": "short", "phases": [{"phase": "freeze", "duration_min": 3}]}],
    },
}
TUMOUR_CENTRE = [-47.0, -161.3, 148.3]  # LPS mm, examples/ct-liver-ivc.yaml
JOB_TIMEOUT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path):
    """The application on a fresh data folder, with two workers; its base URL."""
    import uvicorn  # noqa: PLC0415

    from cryoplan.server.app import create_app  # noqa: PLC0415

    if not (Path(__file__).parents[1] / "src/cryoplan/server/static/index.html").is_file():
        message = "the front end is not built (make web)"
        if os.environ.get("CI"):
            pytest.fail(message)  # make test builds it: its absence is a failure there
        pytest.skip(message)
    port = _free_port()
    config = uvicorn.Config(
        create_app(tmp_path / "data", workers=2), host="127.0.0.1", port=port, log_level="warning"
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "api/examples", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        yield url
    finally:
        instance.should_exit = True
        thread.join(timeout=30)


def _bluish(image: np.ndarray) -> np.ndarray:
    """Pixels of the cold map (blue over grey), not of the grey image, the green crosshair,
    or the yellow, cyan and magenta probes."""
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    return (b > 150) & (b - r > 60) & (b - g > 30)


def _wait_job(page, kind: str) -> None:
    page.wait_for_selector(
        f'.job[data-kind="{kind}"]:is([data-state="done"], [data-state="failed"])',
        timeout=JOB_TIMEOUT_MS,
    )
    row = page.locator(f'.job[data-kind="{kind}"]')
    assert row.get_attribute("data-state") == "done", row.inner_text()


@pytest.mark.shared_data
def test_open_place_preview_simulate_plan(server: str, tmp_path: Path) -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent: the CT example needs ../shared beside the checkout")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    started = time.monotonic()
    with open_page(server, width=1400, height=900) as (page, log):
        page.wait_for_function("document.body.dataset.ready === '1'", timeout=30_000)

        # 1. open the example; the CT is drawn
        page.select_option("#examples", "ct-liver-ivc")
        page.click("#open-example")
        page.wait_for_function("!!document.body.dataset.caseId", timeout=60_000)
        case_id = page.evaluate("document.body.dataset.caseId")
        response = page.request.put(f"{server}api/cases/{case_id}", data=CHEAPER)
        assert response.ok, response.text()
        page.screenshot(path=shots / "1-opened.png")
        # the example's target: its synthetic 30 mm lesion, with the margin asked for
        assert "tumour: a 30 mm sphere at -47, -161.3, 148.3" in page.inner_text("#target-now")
        canvas = page.locator("#gl")
        opened = pixels(canvas.screenshot())
        grey = (np.ptp(opened, axis=2) < 12) & (opened.mean(axis=2) > 60)
        assert grey.mean() > 0.05  # the CT's soft tissue, in grey
        assert len(np.unique(opened.reshape(-1, 3) // 16, axis=0)) > 50  # an image, not a fill

        # the labels and the lethal zone hidden, so that only the cold map colours the image
        for slider in ("#label-opacity", "#lethal-opacity"):
            page.eval_on_selector(
                slider, "e => { e.value = 0; e.dispatchEvent(new Event('input')); }"
            )
        before = pixels(canvas.screenshot())

        # 2. probe a's tip to 3 mm beside the tumour's centre, by clicking the axial slice
        page.click("#probes li:first-child .set-tip")
        tip = [TUMOUR_CENTRE[0] + 3, TUMOUR_CENTRE[1], TUMOUR_CENTRE[2]]
        x, y = page.evaluate(f"window.cryoplanApp.viewer.screenPoint({tip}, 0)")
        box = canvas.bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_function(
            "window.cryoplanApp.state.probes[0].tip_mm[0] !== -47", timeout=10_000
        )
        placed = page.evaluate("window.cryoplanApp.state.probes[0].tip_mm")
        assert np.allclose(placed[:2], tip[:2], atol=3.0), placed  # within a voxel (3 mm)
        assert "depth" in page.inner_text("#probes li:first-child .path")  # its path, from the API

        # 3. the preview runs by itself; its cold zone appears around the probes
        _wait_job(page, "preview")
        page.wait_for_function("!!document.body.dataset.overlayJob", timeout=30_000)
        page.wait_for_timeout(300)  # one more frame
        page.screenshot(path=shots / "2-preview.png")
        after = pixels(canvas.screenshot())
        assert _bluish(after).mean() - _bluish(before).mean() > 0.002
        # where the anatomy says: blue at the tumour's centre, none 8 cm to the patient's left
        cx, cy = page.evaluate(f"window.cryoplanApp.viewer.screenPoint({TUMOUR_CENTRE}, 0)")
        sx, sy = page.evaluate(
            f"window.cryoplanApp.viewer.screenPoint({[33, -161.3, TUMOUR_CENTRE[2]]}, 0)"
        )
        assert _bluish(after[int(cy) - 6 : int(cy) + 6, int(cx) - 6 : int(cx) + 6]).mean() > 0.3
        assert _bluish(after[int(sy) - 6 : int(sy) + 6, int(sx) - 6 : int(sx) + 6]).mean() == 0
        assert "%" in page.inner_text("#results")

        # 4. the full result follows the preview by itself; Simulate keeps that run
        page.wait_for_selector('.job[data-kind="simulate"]', timeout=10_000)
        page.click("#simulate")
        _wait_job(page, "simulate")
        jobs = page.request.get(f"{server}api/cases/{case_id}").json()["jobs"]
        assert [j["kind"] for j in jobs].count("simulate") == 1
        verdict = page.locator("#results .verdict")
        verdict.wait_for(timeout=30_000)
        assert verdict.inner_text().split(":")[0] in {"COMPLETE", "INCOMPLETE"}, (
            verdict.inner_text()
        )
        page.click("#worst-point")
        page.screenshot(path=shots / "3-simulated.png")
        report = page.get_attribute("#report-link", "href")

        # 5. plan: its status, and its probes accepted into the case
        page.click("#plan")
        _wait_job(page, "plan")
        page.locator("#plan-status").wait_for(timeout=30_000)
        page.screenshot(path=shots / "4-planned.png")
        planned = page.locator("#plan-probes tr").count() - 1  # the header
        assert planned >= 1
        assert page.locator("#plan-alternatives tr").count() >= 2  # what else it tried
        previewed = page.get_attribute('.job[data-kind="preview"]', "data-id")
        page.click("#accept-plan")
        page.wait_for_function(
            f"window.cryoplanApp.state.probes.length === {planned}"
            " && window.cryoplanApp.state.probes[0].name === 'p1'",
            timeout=10_000,
        )
        # the accepted probes are previewed in turn
        page.wait_for_selector(f'.job[data-kind="preview"]:not([data-id="{previewed}"])')
        _wait_job(page, "preview")
        page.screenshot(path=shots / "5-accepted.png")

        with urllib.request.urlopen(server.rstrip("/") + report, timeout=30) as answer:
            assert "Verdict:" in answer.read().decode("utf-8")
        stored = page.request.get(f"{server}api/cases/{case_id}").json()
        assert [p["name"] for p in stored["case"]["probes"]][:1] == ["p1"]
        # the plan's protocol came with its probes (the planning menu's only one)
        assert [p["phase"] for p in stored["case"]["protocol"]] == ["freeze"]
        assert stored["case"]["protocol"] != CHEAPER["protocol"]

    assert log.errors == []
    assert all(u.startswith(server) or u.startswith("data:") for u in log.requests), log.requests
    print(f"flow took {time.monotonic() - started:.1f} s; screenshots in {shots}")
