"""The browser application end to end: `cryoplan serve`'s page in headless Chromium, with the
server and its worker processes running in this process (see browser.py for Chromium).

One flow on the shared abdominal CT: open the example, see the image, move a probe's tip by
clicking a slice, see the preview's cold zone appear where the probes are, simulate, read the
verdict, plan, fetch the report, all with no console error and no request off the server.
The screenshots are left in the temporary folder for a person to look at."""

from __future__ import annotations

import itertools
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
# The example on a 3 mm grid, with one 10-minute freeze and a small planning search (its one
# protocol long enough to kill tissue, so that its probability map shows), so that the whole
# flow takes about a minute (the example's own settings: ~30 s to simulate, ~3 min to plan)
CHEAPER = {
    "grid": {"spacing_mm": 3, "crop_margin_mm": 15},
    "protocol": [{"phase": "freeze", "duration_min": 10}],
    "planning": {
        "max_probes": 2,
        "max_sessions": 1,
        "samples": 4,
        "model_spacing_mm": 4,
        "protocols": [{"name": "short", "phases": [{"phase": "freeze", "duration_min": 6}]}],
    },
}
TUMOUR_CENTRE = [-47.0, -161.3, 148.3]  # LPS mm, examples/ct-liver-ivc.yaml
# the page's colours (web/src/app/viewer.js): the target's outline, the isotherms' lines
TARGET_RGB = [170, 90, 255]
ISOTHERM_RGB = [[255, 255, 255], [255, 176, 0], [255, 40, 40]]
PROBABILITY_STOPS = [(0.05, [33, 145, 140]), (0.5, [94, 201, 98]), (1, [253, 231, 37])]
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


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels that differ between two screenshots (more than antialiasing's noise)."""
    return np.abs(a - b).max(axis=2) > 24


def _near(image: np.ndarray, rgb: list[int], tolerance: int = 40) -> np.ndarray:
    return np.abs(image - np.array(rgb)).max(axis=2) <= tolerance


def _set_slider(page, slider: str, value: float) -> None:
    page.eval_on_selector(
        slider, f"e => {{ e.value = {value}; e.dispatchEvent(new Event('input')); }}"
    )
    page.wait_for_timeout(100)  # NiiVue draws on the next frame


def _axial_tile(page, shape: tuple[int, ...]) -> np.ndarray:
    """A mask of a canvas screenshot's pixels inside the axial slice's tile."""
    left, top, width, height = page.evaluate(
        "window.cryoplanApp.viewer.nv.screenSlices.find(s => s.axCorSag === 0).leftTopWidthHeight"
    )
    left, width = min(left, left + width), abs(width)  # negative: drawn mirrored
    rows, columns = np.indices(shape[:2])
    return (columns >= left) & (columns < left + width) & (rows >= top) & (rows < top + height)


def _distance_px(shape: tuple[int, ...], centre: list[float]) -> np.ndarray:
    rows, columns = np.indices(shape[:2])
    return np.hypot(columns - centre[0], rows - centre[1])


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

        # the labels, the lethal zone and the isotherms hidden, so that the target's outline
        # and then the cold map alone colour the image
        for slider in ("#label-opacity", "#lethal-opacity", "#isotherms-opacity"):
            _set_slider(page, slider, 0)
        legend = page.inner_text("#legend")
        for line in ("0 °C isotherm", "−20 °C isotherm", "−40 °C isotherm", "target outline"):
            assert line in legend

        # the target's outline: the example's 30 mm sphere, a violet ring about the tumour's
        # centre on the axial slice through it, and nothing beyond
        page.wait_for_function("!!window.cryoplanApp.viewer.target", timeout=30_000)
        outlined = pixels(canvas.screenshot())
        _set_slider(page, "#target-opacity", 0)
        before = pixels(canvas.screenshot())
        axial = _axial_tile(page, before.shape)
        centre = page.evaluate(f"window.cryoplanApp.viewer.screenPoint({TUMOUR_CENTRE}, 0)")
        edge = page.evaluate(
            "window.cryoplanApp.viewer.screenPoint("
            f"{[TUMOUR_CENTRE[0] + 15, *TUMOUR_CENTRE[1:]]}, 0)"
        )
        radius_px = abs(edge[0] - centre[0])  # 15 mm
        distance = _distance_px(outlined.shape, centre)
        ring = _changed(outlined, before) & axial
        assert ring.sum() > 2 * radius_px  # a line around the section …
        assert (distance[ring] > 0.55 * radius_px).all()  # … not a disc
        assert (distance[ring] < 1.2 * radius_px).all()
        # towards violet, more blue than green (blended with the image at the line's edges,
        # where NiiVue interpolates, and with the probes where they cross it)
        shift = (outlined - before)[ring]
        assert (shift[:, 2] - shift[:, 1] > 20).mean() > 0.8
        assert _near(outlined, TARGET_RGB)[ring].sum() > 10  # and the colour itself

        # 1b. a target drawn by hand: on three axial slices (3 mm apart) about the tumour's
        # centre, a closed stroke round a 10 mm square, filled; used as the target, its
        # outline on the middle slice is a violet ring on that square, not the sphere's; then
        # discarded, the sphere is back. The cold map is hidden: a preview of the changed
        # target may land meanwhile.
        _set_slider(page, "#cold-opacity", 0)
        page.click("#draw-start")
        page.fill("#pen-size", "2")
        box = canvas.bounding_box()

        def stroke(a_lps: list[float], b_lps: list[float]) -> None:
            a, b = (page.evaluate(f"window.cryoplanApp.viewer.screenPoint({p}, 0)")
                    for p in (a_lps, b_lps))  # fmt: skip
            page.mouse.move(box["x"] + a[0], box["y"] + a[1])
            page.mouse.down()
            for f in (0.25, 0.5, 0.75, 1.0):
                page.mouse.move(box["x"] + a[0] + f * (b[0] - a[0]),
                                box["y"] + a[1] + f * (b[1] - a[1]))  # fmt: skip
            page.mouse.up()

        # a stroke 20 mm long, half of it erased, then the whole cleared
        page.evaluate(f"window.cryoplanApp.viewer.moveTo({TUMOUR_CENTRE})")
        left, right = ([TUMOUR_CENTRE[0] + dx, *TUMOUR_CENTRE[1:]] for dx in (-10, 10))
        stroke(left, right)
        painted = page.evaluate("window.cryoplanApp.viewer.drawnVoxels()")
        assert painted > 10
        page.fill("#pen-size", "3")
        page.check("#pen-erase")
        stroke(TUMOUR_CENTRE, [TUMOUR_CENTRE[0] + 12, *TUMOUR_CENTRE[1:]])
        erased = page.evaluate("window.cryoplanApp.viewer.drawnVoxels()")
        assert 0.3 * painted < erased < 0.7 * painted, (painted, erased)
        page.click("#draw-clear")
        assert page.evaluate("window.cryoplanApp.viewer.drawnVoxels()") == 0
        page.uncheck("#pen-erase")
        page.fill("#pen-size", "2")
        page.check("#pen-fill")  # its change event sets the pen
        for dz in (-3, 3, 0):
            z = TUMOUR_CENTRE[2] + dz
            page.evaluate(f"window.cryoplanApp.viewer.moveTo({[*TUMOUR_CENTRE[:2], z]})")
            corners = [[TUMOUR_CENTRE[0] + dx, TUMOUR_CENTRE[1] + dy, z]
                       for dx, dy in ((-5, -5), (5, -5), (5, 5), (-5, 5), (-5, -5))]  # fmt: skip
            points = [
                page.evaluate(f"window.cryoplanApp.viewer.screenPoint({c}, 0)") for c in corners
            ]
            page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
            page.mouse.down()
            for a, b in itertools.pairwise(points):
                for f in (0.25, 0.5, 0.75, 1.0):
                    page.mouse.move(box["x"] + a[0] + f * (b[0] - a[0]),
                                    box["y"] + a[1] + f * (b[1] - a[1]))  # fmt: skip
            page.mouse.up()
        page.wait_for_timeout(100)
        assert page.evaluate("window.cryoplanApp.viewer.drawnVoxels()") > 3 * 20
        page.screenshot(path=shots / "1b-drawing.png")
        page.evaluate("window.previousTarget = window.cryoplanApp.viewer.target")
        page.click("#draw-use")
        page.wait_for_function(
            "window.cryoplanApp.viewer.target && "
            "window.cryoplanApp.viewer.target !== window.previousTarget",
            timeout=30_000,
        )
        assert "tumour: drawn by hand" in page.inner_text("#target-now")
        page.evaluate(f"window.cryoplanApp.viewer.moveTo({TUMOUR_CENTRE})")
        _set_slider(page, "#target-opacity", 1)
        page.screenshot(path=shots / "1c-drawn-target.png")
        drawn_outline = pixels(canvas.screenshot())
        _set_slider(page, "#target-opacity", 0)
        drawn_line = _changed(drawn_outline, pixels(canvas.screenshot())) & axial
        mm_px = radius_px / 15
        # the stroke's voxels (3 mm) reach 5 + 1.5 mm out, the brush's one voxel more
        square = (np.abs(np.indices(distance.shape)[1] - centre[0]) <= 12.5 * mm_px) & (
            np.abs(np.indices(distance.shape)[0] - centre[1]) <= 12.5 * mm_px)  # fmt: skip
        assert drawn_line.sum() > 20
        assert square[drawn_line].all()  # on the drawn square (and a voxel's blur) only …
        assert (distance[drawn_line] > 2 * mm_px).all()  # … round it: the slices above and
        # below hold the square's inside
        # which the sphere's line was not: a third of it lay beyond the square
        assert (ring & ~square).sum() > 0.25 * ring.sum()
        assert _near(drawn_outline, TARGET_RGB)[drawn_line].sum() > 10
        page.click("#draw-discard")
        page.wait_for_function(
            "document.getElementById('target-now').textContent.includes('30 mm sphere')",
            timeout=30_000,
        )
        _set_slider(page, "#cold-opacity", 0.7)

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

        # 2b. probe b's tip dragged 10 mm anterior on the axial slice: its path follows while
        # the button is held, nothing is saved until it is released, and the drag stays in
        # the slice's plane (the tip's z is kept)
        tip_b = page.evaluate("window.cryoplanApp.state.probes[1].tip_mm")
        depth_b = page.evaluate("window.cryoplanApp.state.paths[1].depth_mm")
        start = page.evaluate(f"window.cryoplanApp.viewer.drawnPoint({tip_b}, 0)")
        end = page.evaluate(
            f"window.cryoplanApp.viewer.drawnPoint({[tip_b[0], tip_b[1] - 10, tip_b[2]]}, 0)"
        )
        page.mouse.move(box["x"] + start[0], box["y"] + start[1])
        page.mouse.down()
        for f in (0.25, 0.5, 0.75, 1.0):
            page.mouse.move(
                box["x"] + start[0] + f * (end[0] - start[0]),
                box["y"] + start[1] + f * (end[1] - start[1]),
            )
        page.wait_for_function(
            f"window.cryoplanApp.state.paths[1].depth_mm < {depth_b - 6}", timeout=10_000
        )
        # the list shows the depth the page holds (a throttled request may still be answering
        # as the state is read: wait, up to 10 s, for the text and the state to agree)
        page.wait_for_function(
            "(() => { const d = window.cryoplanApp.state.paths[1].depth_mm;"
            " const text = document.querySelector('#probes li:nth-child(2) .path').innerText;"
            " return text.includes(`depth ${d.toFixed(1)} mm`); })()",
            timeout=10_000,
        )
        stored = page.request.get(f"{server}api/cases/{case_id}").json()["case"]["probes"][1]
        assert stored["tip_mm"] == tip_b  # not saved while dragging
        rows = page.locator('.job[data-kind="preview"]')
        previewed = rows.get_attribute("data-id") if rows.count() else None
        page.mouse.up()
        deadline = time.monotonic() + 10
        while stored["tip_mm"] == tip_b:
            assert time.monotonic() < deadline, "the dragged tip was not saved"
            page.wait_for_timeout(100)
            stored = page.request.get(f"{server}api/cases/{case_id}").json()["case"]["probes"][1]
        assert stored["tip_mm"][2] == tip_b[2]
        assert np.allclose(stored["tip_mm"][:2], [tip_b[0], tip_b[1] - 10], atol=2.0), stored

        # 2c. the same tip dragged back 5 mm by a finger (touch: pointer events, as a tablet)
        touched = stored["tip_mm"]
        start, end = (
            page.evaluate(f"window.cryoplanApp.viewer.drawnPoint({p}, 0)")
            for p in (touched, [touched[0], touched[1] + 5, touched[2]])
        )
        touch = page.context.new_cdp_session(page)

        def finger(kind: str, f: float | None = None) -> None:
            points = [] if f is None else [{"x": box["x"] + start[0] + f * (end[0] - start[0]),
                                            "y": box["y"] + start[1] + f * (end[1] - start[1])}]
            touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

        finger("touchStart", 0.0)
        for f in (0.25, 0.5, 0.75, 1.0):
            finger("touchMove", f)
        assert page.evaluate("!!window.cryoplanApp.state.dragging")
        finger("touchEnd")
        deadline = time.monotonic() + 10
        while stored["tip_mm"] == touched:
            assert time.monotonic() < deadline, "the tip dragged by touch was not saved"
            page.wait_for_timeout(100)
            stored = page.request.get(f"{server}api/cases/{case_id}").json()["case"]["probes"][1]
        assert np.allclose(stored["tip_mm"], [touched[0], touched[1] + 5, touched[2]], atol=2.0)

        # 3. the preview of the released placement runs by itself; its cold zone appears
        # around the probes
        fresh = '.job[data-kind="preview"]'
        if previewed:
            fresh += f':not([data-id="{previewed}"])'
        page.wait_for_selector(fresh, timeout=10_000)
        _wait_job(page, "preview")
        preview_id = page.get_attribute('.job[data-kind="preview"]', "data-id")
        page.wait_for_function(
            f"document.body.dataset.overlayJob === '{preview_id}'", timeout=30_000
        )
        page.wait_for_timeout(300)  # one more frame
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

        page.screenshot(path=shots / "2-preview.png")

        # 4. the full result follows the preview by itself; Simulate keeps that run
        page.wait_for_selector('.job[data-kind="simulate"]', timeout=10_000)
        page.click("#simulate")
        _wait_job(page, "simulate")
        jobs = page.request.get(f"{server}api/cases/{case_id}").json()["jobs"]
        # one full run of this placement (an earlier placement's may have started before the
        # drag, which cancels it)
        previewed_at = page.request.get(f"{server}api/jobs/{preview_id}").json()["created"]
        assert [j["kind"] for j in jobs if j["created"] >= previewed_at].count("simulate") == 1
        verdict = page.locator("#results .verdict")
        verdict.wait_for(timeout=30_000)
        assert verdict.inner_text().split(":")[0] in {"COMPLETE", "INCOMPLETE"}, (
            verdict.inner_text()
        )
        # its isotherms' lines: white, amber and red around the probes, none beyond the cold
        # (nothing else runs now, so that only the lines differ between the screenshots)
        _set_slider(page, "#isotherms-opacity", 1)
        _set_slider(page, "#target-opacity", 1)  # for the screenshot
        page.screenshot(path=shots / "3-simulated.png")
        _set_slider(page, "#target-opacity", 0)
        lined = pixels(canvas.screenshot())
        _set_slider(page, "#isotherms-opacity", 0)
        unlined = pixels(canvas.screenshot())
        lines = _changed(lined, unlined) & axial
        assert lines.sum() > 2 * radius_px
        reach_px = distance[_bluish(unlined) & axial].max()  # the farthest blue from the centre
        assert (distance[lines] <= reach_px + 4).all()  # on the cold zone (a voxel's blur)
        for rgb in ISOTHERM_RGB:
            assert _near(lined, rgb)[lines].sum() > 3, rgb
        page.click("#worst-point")
        page.screenshot(path=shots / "3-worst-point.png")
        # the report follows the results: drawn by the report worker at a low priority, and
        # stopped while any preview or simulation runs
        page.wait_for_selector("#report-link", timeout=JOB_TIMEOUT_MS)
        report = page.get_attribute("#report-link", "href")

        # 5. plan: its status, its probability map over the image, and its probes accepted
        # into the case
        page.click("#plan")
        _wait_job(page, "plan")
        plan_id = page.get_attribute('.job[data-kind="plan"]', "data-id")
        page.locator("#plan-status").wait_for(timeout=30_000)
        page.wait_for_function("!!window.cryoplanApp.viewer.probability", timeout=30_000)
        assert page.is_visible("#probability-legend")
        page.click("#to-target")
        page.screenshot(path=shots / "4-planned.png")
        probable = pixels(canvas.screenshot())
        _set_slider(page, "#probability-opacity", 0)
        without = pixels(canvas.screenshot())
        _set_slider(page, "#probability-opacity", 0.6)
        mapped = _changed(probable, without) & axial
        assert mapped.sum() > 20
        assert (distance[mapped] < 3 * radius_px).all()  # about the target, not far away
        # in the map's colours: the layer at opacity 0.6 over what was there, so its own colour
        # is (shown - 0.4 without) / 0.6; most pixels lie on the ramp (the others on the
        # layer's edges, where NiiVue interpolates)
        own = (probable[mapped] - 0.4 * without[mapped]) / 0.6
        ramp = np.concatenate([np.linspace(a, b, 50) for a, b in itertools.pairwise(
            [np.array(rgb) for _, rgb in PROBABILITY_STOPS])])  # fmt: skip
        off_ramp = np.linalg.norm(own[:, None, :] - ramp[None], axis=2).min(axis=1)
        assert np.median(off_ramp) < 25
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

        # 5b. an alternative the planner tried, used in the plan's place: its probes
        page.click("#plan-alternatives summary")
        alternative = page.request.get(f"{server}api/jobs/{plan_id}/files/summary.json").json()[
            "plan"]["alternatives"][0]  # fmt: skip
        page.click("#plan-alternatives .use-alternative >> nth=0")
        page.wait_for_function(
            f"window.cryoplanApp.state.probes.length === {alternative['probes']}"
            f" && window.cryoplanApp.state.probes[0].tip_mm[0] === "
            f"{alternative['probe_specs'][0]['tip_mm'][0]}",
            timeout=10_000,
        )

        # 6. the case reopened by its address: a still of its CT is painted before the
        # viewer starts, at the target's centre, and the viewer's slices then replace it
        page.goto("about:blank")
        page.goto(f"{server}#case={case_id}")
        page.wait_for_function("!!document.body.dataset.caseAt", timeout=60_000)
        still_at, case_at = (float(page.evaluate(f"document.body.dataset.{m}"))
                             for m in ("stillAt", "caseAt"))  # fmt: skip
        assert still_at < case_at
        assert page.is_hidden("#still")

    assert log.errors == []
    assert all(u.startswith(server) or u.startswith("data:") for u in log.requests), log.requests
    print(f"flow took {time.monotonic() - started:.1f} s; screenshots in {shots}")
