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
"""

from cryoplan.case import Case, case_from_dict, load_case
from cryoplan.errors import CaseError
from cryoplan.outcome import ALL_OBJECTIVES, Objective, Outcome, evaluate
from cryoplan.preparation import PreparedCase, prepare
from cryoplan.simulation import SimulationResult, simulate
from cryoplan.simulator import Run, Simulator

__version__ = "0.1.0"
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
    "simulate",
]
