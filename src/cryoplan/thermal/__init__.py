"""Physics-free-as-possible numerical core: enthalpy time stepping on a uniform grid.

Data flow: `ThermalProblem` (arrays + schedule) → `solve` (time loop over a back end) →
`ThermalHistory` (T_min, snapshots, sensors, volumes, energy ledger).
"""

from cryoplan.thermal.backend import CpuExplicitBackend, ThermalBackend, stable_time_step_s
from cryoplan.thermal.multirate import CpuMultirateBackend
from cryoplan.thermal.problem import (
    FACES,
    FIXED_TEMPERATURE,
    INSULATED,
    DriveKind,
    ProbeCoupling,
    ProbeDrive,
    RecordingPlan,
    Segment,
    ThermalProblem,
)
from cryoplan.thermal.stepping import EnergyLedger, ThermalHistory, compile_solver, solve

# The back ends a user can choose by name (`cryoplan simulate --solver`). "fast" is the
# default: it matches "reference" to well within 0.5 mm (tests/test_conservation.py).
SOLVERS = {"fast": CpuMultirateBackend, "reference": CpuExplicitBackend}

__all__ = [
    "FACES",
    "FIXED_TEMPERATURE",
    "INSULATED",
    "SOLVERS",
    "CpuExplicitBackend",
    "CpuMultirateBackend",
    "DriveKind",
    "EnergyLedger",
    "ProbeCoupling",
    "ProbeDrive",
    "RecordingPlan",
    "Segment",
    "ThermalBackend",
    "ThermalHistory",
    "ThermalProblem",
    "compile_solver",
    "solve",
    "stable_time_step_s",
]
