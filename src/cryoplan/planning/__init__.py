"""Automatic treatment planning: probe count, skin-to-target paths, layout, protocol and
robustness to placement error (`planner.plan`, docs/planning.md).

Names are imported on first use, so that `cryoplan.case` can import this package's
settings model without loading the solver.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PlanResult": "cryoplan.planning.planner",
    "plan": "cryoplan.planning.planner",
    "write_plan": "cryoplan.planning.outputs",
}
__all__ = ["PlanResult", "plan", "write_plan"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cryoplan.planning' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
