"""Probe geometry from a case: catalogue values with the case's overrides, in LPS mm."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cryoplan.case import ProbeSpec
from cryoplan.probes.catalogue import ProbeModel


@dataclass(frozen=True)
class ProbeGeometry:
    diameter_mm: float
    active_length_mm: float
    tip_mm: np.ndarray
    entry_mm: np.ndarray
    active_end_mm: np.ndarray  # tip + active length towards the entry


def probe_geometry(spec: ProbeSpec, models: Mapping[str, ProbeModel]) -> ProbeGeometry:
    """The active length runs from the tip towards the entry (the entry may lie far out).

    `models` is the catalogue the case was loaded with (`Case.probe_models`).
    """
    model = models[spec.model] if spec.model is not None else None
    diameter = spec.diameter_mm or (model.diameter_mm if model else 0.0)
    active = spec.active_length_mm or (model.active_length_mm if model else 0.0)
    tip = np.asarray(spec.tip_mm, float)
    entry = np.asarray(spec.entry_mm, float)
    axis = (entry - tip) / np.linalg.norm(entry - tip)
    return ProbeGeometry(diameter, active, tip, entry, tip + active * axis)
