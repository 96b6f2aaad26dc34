"""The browser application's latencies on the CT example, against baselines of the same run.

    .venv/bin/python benchmarks/bench_server.py [--repeat 5]

Starts `cryoplan serve`'s application (two workers, one solver thread each) in-process on a
free loopback port, and measures over HTTP, as the front end asks:

- preview: a probe moved (PUT) → preview job done and its overlay downloaded; against the
  same coarse run in this process with the case already prepared (the floor: the solve);
- full result, warm: a simulate job (results folder, report) against `simulate` in this
  process with two solver threads;
- two users at once: two cases simulated together, each against its own time alone;
- first view: a page of a running headless Chromium opens the application on the case until
  the still of its CT is shown, and until the viewer has drawn the CT, against the page
  opened with no case (where Chromium is installed).

Needs ../shared/data (the CT example). Prints one table; writes benchmarks/results/server.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx2 as httpx
import uvicorn
from playwright.sync_api import sync_playwright

from cryoplan.case import case_from_dict, load_case
from cryoplan.server.app import create_app
from cryoplan.server.worker import PREVIEW_SPACING_MM, PreparedCache
from cryoplan.simulation import simulate
from cryoplan.simulator import Simulator
from cryoplan.thermal import compile_solver
from cryoplan.yamlio import load_yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from browser import CHROMIUM_ARGS  # noqa: E402  (the tests' Chromium set-up: SwiftShader)

EXAMPLE = "ct-liver-ivc"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data: Path) -> tuple[uvicorn.Server, str]:
    port = free_port()
    config = uvicorn.Config(create_app(data, workers=2), host="127.0.0.1", port=port,
                            log_level="warning")  # fmt: skip
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(f"{url}/api/cases", timeout=1)
            return server, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


def wait(client: httpx.Client, job_id: str) -> dict:
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            if job["state"] != "done":
                raise SystemExit(f"job {job_id} {job['state']}: {job['error']}")
            return job
        time.sleep(0.02)


def run_job(client: httpx.Client, case_id: str, kind: str, fetch: str | None = None) -> float:
    started = time.perf_counter()
    job = client.post(f"/api/cases/{case_id}/jobs", json={"kind": kind}).json()
    wait(client, job["id"])
    if fetch:
        client.get(f"/api/jobs/{job['id']}/files/{fetch}").raise_for_status()
    return time.perf_counter() - started


def move(client: httpx.Client, case_id: str, probes: list[dict], dx_mm: float) -> None:
    moved = [dict(p) for p in probes]
    for key in ("tip_mm", "entry_mm"):
        moved[0][key] = [moved[0][key][0] + dx_mm, *moved[0][key][1:]]
    client.put(f"/api/cases/{case_id}", json={"probes": moved}).raise_for_status()


def first_view(url: str, case_id: str, repeat: int) -> dict[str, list[float]] | None:
    """Seconds from opening the page on a case (`#case=…`), each in a new page of one running
    Chromium: to the still of its image painted ("still"), and to its image drawn by the
    viewer ("viewer"); and, as the baseline, the page with no case ready ("page alone": the
    page and NiiVue's WebGL start). Times are the page's own, from its navigation's start."""
    if shutil.which("chromium") is None:
        print("first view not measured: Debian's chromium is not installed")
        return None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS, headless=True
        )

        def timed(address: str, *marks: str) -> list[float]:
            """The page's own times (ms after it was opened, `performance.now()`, which it
            writes into data-* attributes of its body) of each mark, in seconds."""
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(address, wait_until="commit")
            for mark in marks:
                page.wait_for_function(f"!!document.body.dataset.{mark}", timeout=60_000)
            elapsed = [float(page.evaluate(f"document.body.dataset.{m}")) / 1e3 for m in marks]
            page.close()
            return elapsed

        timed(f"{url}/", "readyAt")  # the browser's own start
        views = [timed(f"{url}/#case={case_id}", "stillAt", "caseAt") for _ in range(repeat)]
        bare = [timed(f"{url}/", "readyAt")[0] for _ in range(repeat)]
        browser.close()
    return {"still": [v[0] for v in views], "viewer": [v[1] for v in views], "page alone": bare}


def in_process_floor(repeat: int) -> tuple[float, float]:
    """(the preview's coarse run alone, the full `simulate` with two threads) in seconds."""
    compile_solver("fast")
    path = REPO / "examples" / f"{EXAMPLE}.yaml"
    data = load_yaml(path.read_text("utf-8"))
    data["grid"]["spacing_mm"] = max(data["grid"]["spacing_mm"], PREVIEW_SPACING_MM)
    case = case_from_dict(data, str(path))
    prepared = PreparedCache().get(data, case)
    coarse = []
    for _ in range(repeat):
        started = time.perf_counter()
        Simulator(prepared).run(probes=case.probes, protocol=case.protocol)
        coarse.append(time.perf_counter() - started)
    started = time.perf_counter()
    simulate(load_case(path))
    return statistics.median(coarse), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--first-view", action="store_true", help="measure the first view only")
    args = parser.parse_args()
    if not (REPO.parent / "shared" / "data").is_dir():
        sys.exit("../shared/data is absent: the CT example needs it")
    server, url = start(Path(tempfile.mkdtemp(prefix="cryoplan-bench-")))
    client = httpx.Client(base_url=url, timeout=600)
    first = client.post(f"/api/cases/example/{EXAMPLE}").json()
    if args.first_view:
        viewed = first_view(url, first["id"], args.repeat)
        for name, times in (viewed or {}).items():
            print(f"{name:12} median {statistics.median(times):.2f} s  "
                  f"({', '.join(f'{t:.2f}' for t in times)})")  # fmt: skip
        server.should_exit = True
        return
    second = client.post(f"/api/cases/example/{EXAMPLE}").json()
    probes = first["case"]["probes"]

    run_job(client, first["id"], "preview")  # warm: each worker's kernels, the cache
    run_job(client, second["id"], "preview")
    previews = []
    for i in range(args.repeat):
        started = time.perf_counter()
        move(client, first["id"], probes, 0.5 * (i + 1))
        run_job(client, first["id"], "preview", "tmin_on_image.nii.gz")
        previews.append(time.perf_counter() - started)  # the move (PUT) included
    preview = statistics.median(previews)

    run_job(client, first["id"], "simulate")  # warm the full-spacing preparation
    alone = [run_job(client, c["id"], "simulate") for c in (first, second)]
    together: dict[str, float] = {}

    def user(case: dict) -> None:
        together[case["id"]] = run_job(httpx.Client(base_url=url, timeout=600), case["id"],
                                       "simulate")  # fmt: skip

    threads = [threading.Thread(target=user, args=(c,)) for c in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    viewed = first_view(url, first["id"], args.repeat)
    server.should_exit = True
    coarse_floor, full_floor = in_process_floor(args.repeat)
    ratios = [together[c["id"]] / a for c, a in zip((first, second), alone, strict=True)]
    rows = [
        ("probe move → preview overlay (median)", preview, coarse_floor, "≤ 1 s"),
        *(
            [
                (
                    "page opened → still of the CT (median)",
                    statistics.median(viewed["still"]),
                    statistics.median(viewed["page alone"]),
                    "≤ 2 s",
                ),
                (
                    "page opened → the CT in the viewer (median)",
                    statistics.median(viewed["viewer"]),
                    statistics.median(viewed["page alone"]),
                    "(≤ 2 s)",
                ),
            ]
            if viewed
            else []
        ),
        ("full CT result, warm (one user)", min(alone), full_floor, "≤ 15 s"),
        ("two users at once: slower of the two", max(together.values()), max(alone), "≤ 2.5×"),
    ]
    print(f"{'measure':44} {'seconds':>8} {'baseline':>9} {'ratio':>6}  target")
    for name, value, base, target in rows:
        print(f"{name:44} {value:8.2f} {base:9.2f} {value / base:6.2f}  {target}")
    print(f"two users: each against its own time alone: {', '.join(f'{r:.2f}×' for r in ratios)}")
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "server.json").write_text(json.dumps({
        "previews_s": previews, "preview_floor_s": coarse_floor, "full_alone_s": alone,
        "full_in_process_s": full_floor, "two_users_s": list(together.values()),
        "two_users_ratio": ratios, "first_view_s": viewed,
    }, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
