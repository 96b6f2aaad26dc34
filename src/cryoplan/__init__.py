"""cryoplan: plan and simulate cancer cryoablation.

Python API:

    import cryoplan
    case = cryoplan.load_case("examples/single-probe-gel.yaml")
    result = cryoplan.simulate(case)
    result.summary()["isotherms"]["-40"]["volume_ml"]

Prepare once, run many (a planner, a sweep):

    prepared = cryoplan.prepare(case)
    simulator = cryoplan.Simulator(prepared)
    run = simulator.run(probes=[...])            # the case's own protocol
    cryoplan.evaluate(run, prepared, {"coverage", "margin"}).coverage

Many runs on a Dask cluster (docs/sweep.md):

    cryoplan.run_sweep("sweep.yaml", "out/sweep", workers=2)

The names are loaded on first use (module `__getattr__`), so that `import cryoplan` and the
`cryoplan` command start without numba, SciPy, SimpleITK or the imaging libraries; the
module that defines each name is imported when the name is first asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name → the module that defines it
_EXPORTS = {
    "ALL_OBJECTIVES": "cryoplan.outcome",
    "Case": "cryoplan.case",
    "CaseError": "cryoplan.errors",
    "Objective": "cryoplan.outcome",
    "Outcome": "cryoplan.outcome",
    "PreparedCase": "cryoplan.preparation",
    "Run": "cryoplan.simulator",
    "SimulationResult": "cryoplan.simulation",
    "Simulator": "cryoplan.simulator",
    "case_from_dict": "cryoplan.case",
    "evaluate": "cryoplan.outcome",
    "load_case": "cryoplan.case",
    "prepare": "cryoplan.preparation",
    "run_sweep": "cryoplan.sweep.runner",
    "simulate": "cryoplan.simulation",
}
__all__ = [
    "ALL_OBJECTIVES",
    "Case",
    "CaseError",
    "Objective",
    "Outcome",
    "PreparedCase",
    "Run",
    "SimulationResult",
    "Simulator",
    "__version__",
    "case_from_dict",
    "evaluate",
    "load_case",
    "prepare",
    "run_sweep",
    "simulate",
]

if TYPE_CHECKING:
    from cryoplan.case import Case, case_from_dict, load_case
    from cryoplan.errors import CaseError
    from cryoplan.outcome import ALL_OBJECTIVES, Objective, Outcome, evaluate
    from cryoplan.preparation import PreparedCase, prepare
    from cryoplan.simulation import SimulationResult, simulate
    from cryoplan.simulator import Run, Simulator
    from cryoplan.sweep.runner import run_sweep


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use and kept (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cryoplan' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
