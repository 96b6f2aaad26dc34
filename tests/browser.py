"""Headless Debian Chromium for the tests, through Playwright for Python.

A browser build cannot be downloaded here, so Playwright drives the system's Chromium
(`make test` installs it with apt-get where it is missing). Without a GPU, WebGL2 comes from
SwiftShader through ANGLE. The machine has no network, so Chromium's own background
connections are switched off. Where Chromium is missing a test skips, except under CI
(CI=true), where a missing browser is a failure.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pytest

NAVIGATION_TIMEOUT_MS = 180_000
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]


def chromium_path() -> str:
    """The system Chromium's path; skips the test where it is absent (fails under CI)."""
    path = shutil.which("chromium")
    if path is None:
        message = "Debian's chromium is not installed (make test installs it: apt-get)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class PageLog:
    """What a page said and asked for while it was open."""

    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    requests: list[str] = field(default_factory=list)  # every URL it loaded


@contextmanager
def open_page(url: str, width: int = 1400, height: int = 1000) -> Iterator[tuple[object, PageLog]]:
    """A page of headless Chromium at `url`, with its console errors and requests logged."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    executable = chromium_path()
    log = PageLog()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            # generous: a 4 MB report parsed beside a full test run on two cores can take
            # far longer than the 3 s it takes alone (these are not timing tests)
            page.set_default_timeout(NAVIGATION_TIMEOUT_MS)
            page.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
            page.on("console", lambda m: log.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: log.errors.append(str(e)))
            page.on("request", lambda r: log.requests.append(r.url))
            page.goto(url)
            yield page, log
        finally:
            browser.close()


def pixels(png: bytes) -> np.ndarray:
    """An RGB screenshot as an (h, w, 3) int array."""
    from PIL import Image  # noqa: PLC0415  (matplotlib's dependency)

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def share_near(image: np.ndarray, hex_colour: str, tolerance: int = 40) -> float:
    """The share of pixels within `tolerance` (per channel) of a colour."""
    value = hex_colour.lstrip("#")
    rgb = np.array([int(value[i : i + 2], 16) for i in (0, 2, 4)])
    return float((np.abs(image - rgb).max(axis=2) <= tolerance).mean())
