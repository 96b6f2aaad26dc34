"""cryoplan: plan and simulate cancer cryoablation.

Python API:

    import cryoplan
    case = cryoplan.load_case("examples/single-probe-gel.yaml")
    result = cryoplan.simulate(case)
    result.summary()["isotherms"]["-40"]["volume_ml"]
"""

from cryoplan.case import Case, load_case
from cryoplan.errors import CaseError
from cryoplan.simulate import SimulationResult, simulate

__version__ = "0.1.0"
__all__ = ["Case", "CaseError", "SimulationResult", "__version__", "load_case", "simulate"]
