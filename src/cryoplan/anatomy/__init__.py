"""Anatomy: grids in patient LPS millimetres, label maps, phantoms."""

from cryoplan.anatomy.grid import Grid, OrganMap, TissueMap
from cryoplan.anatomy.phantoms import PHANTOMS, build_phantom

__all__ = ["PHANTOMS", "Grid", "OrganMap", "TissueMap", "build_phantom"]
