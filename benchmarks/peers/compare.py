"""How far apart two solvers put the same isotherm: symmetric Hausdorff distance of surfaces."""

from __future__ import annotations

import numpy as np

from cryoplan import metrics

LEVELS_C = (0.0, -20.0, -40.0)


def isotherm_distance_mm(
    tmin_a: np.ndarray,
    tmin_b: np.ndarray,
    spacing_mm: tuple[float, float, float],
    levels: tuple[float, ...] = LEVELS_C,
) -> dict[float, float]:
    """Largest distance [mm] between the isotherm surfaces {T = level} of two fields, per
    level (`cryoplan.metrics.isotherm_distance_mm`: symmetric Hausdorff distance of the
    marching-cubes surfaces; 0 when neither field reaches the level, inf when only one does).
    """
    return {
        level: metrics.isotherm_distance_mm(tmin_a, tmin_b, spacing_mm, level) for level in levels
    }


def spacing_mm_of(spacing_m: tuple[float, float, float]) -> tuple[float, float, float]:
    return tuple(1e3 * s for s in spacing_m)  # type: ignore[return-value]
