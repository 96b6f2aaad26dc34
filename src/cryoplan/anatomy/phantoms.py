"""Built-in phantoms: label maps made from simple shapes, for demos and tests.

`liver-tumour`: an 80 mm cube of liver (LPS, centred on the origin) holding a 30 mm
spherical tumour at the centre and a 10 mm vessel (an IVC-like vein) running
superior–inferior (along z) with its axis at x = +25 mm, so that its wall passes 5 mm from
the tumour's edge: the layout in which a large vessel's heat sink matters clinically.
"""

from __future__ import annotations

import numpy as np

from cryoplan.anatomy.grid import Grid, TissueMap

LIVER_TUMOUR = {
    "size_mm": (80.0, 80.0, 80.0),
    "tumour_centre_mm": (0.0, 0.0, 0.0),
    "tumour_diameter_mm": 30.0,
    "vessel_axis_xy_mm": (25.0, 0.0),
    "vessel_diameter_mm": 10.0,
}

PHANTOM_SIZES_MM = {"liver-tumour": LIVER_TUMOUR["size_mm"]}
PHANTOMS = tuple(PHANTOM_SIZES_MM)


def liver_tumour(spacing_mm: float) -> TissueMap:
    """The liver–tumour–vessel phantom on a grid of the given spacing."""
    p = LIVER_TUMOUR
    grid = Grid.centred_box(p["size_mm"], spacing_mm)  # type: ignore[arg-type]
    x, y, z = grid.centres_lps()
    labels = np.zeros(grid.shape, np.uint8)  # 0 liver
    cx, cy, cz = p["tumour_centre_mm"]  # type: ignore[misc]
    r_t = p["tumour_diameter_mm"] / 2  # type: ignore[operator]
    labels[(x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= r_t**2] = 1
    vx, vy = p["vessel_axis_xy_mm"]  # type: ignore[misc]
    r_v = p["vessel_diameter_mm"] / 2  # type: ignore[operator]
    labels[(x - vx) ** 2 + (y - vy) ** 2 <= r_v**2] = 2
    return TissueMap(grid, labels, {0: "liver", 1: "tumour", 2: "vessel"})


def build_phantom(name: str, spacing_mm: float) -> TissueMap:
    if name == "liver-tumour":
        return liver_tumour(spacing_mm)
    raise KeyError(name)
