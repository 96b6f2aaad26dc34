"""Shared test set-up: the exact-solution helpers sit beside the tests, and the examples'
simulations, run once per session for every test module that reads them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def run_example(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], tuple[Path, Path, Any]]:
    """`run_example(name)` → (case file, results folder, CLI result) of
    `cryoplan simulate examples/NAME --vtk`, simulated once per session; skips where the
    example needs ../shared and it is absent."""
    from typer.testing import CliRunner  # noqa: PLC0415

    from cryoplan.cli import app  # noqa: PLC0415

    done: dict[str, tuple[Path, Path, Any]] = {}

    def run(name: str) -> tuple[Path, Path, Any]:
        case_file = REPO / "examples" / name
        if "shared/data" in case_file.read_text("utf-8") and not SHARED_DATA.is_dir():
            pytest.skip(
                f"{SHARED_DATA} is absent: example {name} needs ../shared beside the checkout"
            )
        if name not in done:
            out = tmp_path_factory.mktemp("example") / "result"
            result = CliRunner().invoke(
                app, ["simulate", str(case_file), "--out", str(out), "--vtk"]
            )
            done[name] = (case_file, out, result)
        return done[name]

    return run
