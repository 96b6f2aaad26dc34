"""Cell-death models: thresholds per tissue, the logistic fit to its source, cycle credit."""

from __future__ import annotations

import numpy as np
import pytest

from cryoplan.injury import LogisticInjury, ThresholdInjury, logistic_parameters
from cryoplan.outcome import _verdict
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


def test_the_verdict_says_how_many_freeze_cycles_and_what_a_repeat_is_credited() -> None:
    coverage = {"coverage_percent": {"lethal": 100.0}}
    margin = {"margin_mm": {"minimum": 6.0, "minimum_side": "left"}, "required_margin_mm": 5.0}
    twice = _verdict(coverage, margin, [], 2, 0.0)
    assert twice["text"] == (
        "complete ablation with ≥ 5 mm margin (minimum 6.0 mm), after 2 freeze cycles "
        "(no extra kill credited to repeated cycles: none is sourced)"
    )
    assert (twice["freeze_thaw_cycles"], twice["repeat_cycle_credit_c"]) == (2, 0.0)
    credited = _verdict(coverage, margin, ["bowel"], 3, 5.0)
    assert "after 3 freeze cycles (repeated cycles credited: lethal 5 K warmer)" in credited["text"]
    assert credited["text"].endswith("; critical structure limit exceeded: bowel")
    once = _verdict(coverage, margin, [], 1, 0.0)
    assert once["text"].endswith("(minimum 6.0 mm), after 1 freeze cycle")
