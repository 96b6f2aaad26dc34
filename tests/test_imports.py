"""`import cryoplan` and the `cryoplan` command start lean: no numerical or imaging library is
imported until a command or function that uses it runs (what `cryoplan --help` costs)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# numba and the solver (cryoplan.thermal), SciPy, the image readers and writers, plotting
HEAVY = (
    "numba",
    "llvmlite",
    "cryoplan.thermal",
    "scipy",
    "SimpleITK",
    "nibabel",
    "highdicom",
    "pydicom",
    "skimage",
    "matplotlib",
    "vtk",
    "vtkmodules",
    "weasyprint",
    "jinja2",
)


def loaded_after(statement: str) -> list[str]:
    """The heavy modules a fresh interpreter holds after running `statement`."""
    code = (
        f"import sys, json\n{statement}\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "                        if any(m == h or m.startswith(h + '.') for h in heavy))))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("statement", ["import cryoplan", "import cryoplan.cli"])
def test_import_loads_no_heavy_library(statement: str) -> None:
    assert loaded_after(statement) == []


def test_help_loads_no_heavy_library() -> None:
    statement = (
        "from typer.testing import CliRunner\n"
        "from cryoplan.cli import app\n"
        "result = CliRunner().invoke(app, ['simulate', '--help'])\n"
        "assert result.exit_code == 0 and '--vtk' in result.output, result.output"
    )
    assert loaded_after(statement) == []


def test_the_public_names_load_on_use() -> None:
    """Each public name comes from its module on first use; importing the submodule that
    defines `simulate` first does not hide the function behind the module."""
    statement = (
        "import cryoplan\n"
        "import cryoplan.simulation, cryoplan.preparation\n"
        "assert callable(cryoplan.simulate) and callable(cryoplan.prepare)\n"
        "assert cryoplan.Simulator.__module__ == 'cryoplan.simulator'\n"
        "assert set(cryoplan.__all__) == {*cryoplan._EXPORTS, '__version__'}\n"
        "assert set(cryoplan.__all__) <= set(dir(cryoplan))\n"
        "for name in cryoplan.__all__: getattr(cryoplan, name)"
    )
    assert "numba" in loaded_after(statement)  # the names did load (the solver with them)
    import cryoplan  # noqa: PLC0415

    with pytest.raises(AttributeError, match="no attribute 'simulat'"):
        cryoplan.simulat  # noqa: B018
