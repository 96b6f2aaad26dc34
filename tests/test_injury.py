"""Cell-death models: thresholds per tissue, the logistic fit to its source, cycle credit."""

from __future__ import annotations

import numpy as np
import pytest

from cryoplan.injury import LogisticInjury, ThresholdInjury, logistic_parameters
from cryoplan.tissues import complete_tissue, load_library

TISSUES = tuple(complete_tissue(n, load_library().tissues[n]) for n in ("tumour", "liver"))


def test_threshold_uses_each_tissues_lethal_temperature() -> None:
    tmin = np.array([-39.9, -40.0, -60.0, -39.0])
    material = np.array([0, 0, 1, 1])
    p = ThresholdInjury().probability_of_death(tmin, np.zeros(4, np.uint8), material, TISSUES)
    assert p.tolist() == [0.0, 1.0, 1.0, 0.0]


def test_logistic_reproduces_its_source_points() -> None:
    # A549 cells: ≈ 50 % death at −25.4 °C and ≈ 71 % at −35 °C (physics.md §5)
    tmin = np.array([-25.4, -35.0])
    p = LogisticInjury().probability_of_death(
        tmin, np.zeros(2, np.uint8), np.zeros(2, int), TISSUES
    )
    assert p[0] == pytest.approx(0.50, abs=1e-9)
    assert p[1] == pytest.approx(0.71, abs=0.005)


def test_logistic_falls_back_to_threshold_without_parameters() -> None:
    assert "liver" not in logistic_parameters()
    tmin = np.array([-30.0, -45.0])
    p = LogisticInjury().probability_of_death(tmin, np.zeros(2, np.uint8), np.ones(2, int), TISSUES)
    assert p.tolist() == [0.0, 1.0]
    notes = " ".join(LogisticInjury().notes(TISSUES))
    assert "no logistic parameters for liver" in notes


def test_second_cycle_credit_moves_t50_only_for_twice_frozen_voxels() -> None:
    tmin = np.array([-25.4, -25.4])
    cycles = np.array([1, 2], np.uint8)
    model = LogisticInjury(second_cycle_shift_c=5.0)
    p = model.probability_of_death(tmin, cycles, np.zeros(2, int), TISSUES)
    assert p[0] == pytest.approx(0.5)
    assert p[1] > 0.5
    assert LogisticInjury().second_cycle_shift_c == 0.0  # no sourced value: no credit by default


def test_logistic_parameters_carry_sources() -> None:
    for name, par in logistic_parameters().items():
        assert set(par.sources) == {"t50_c", "width_c"}, name
        assert par.width_c > 0
