"""Anatomy: grids in patient LPS millimetres, label maps, phantoms."""

from cryoplan.anatomy.grid import Grid, TissueMap
from cryoplan.anatomy.phantoms import PHANTOMS, build_phantom

__all__ = ["PHANTOMS", "Grid", "TissueMap", "build_phantom"]
