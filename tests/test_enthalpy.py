"""Enthalpy–temperature relations: inverse pairs, continuity, the Kirchhoff potential."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy.integrate import quad

from cryoplan.thermal.enthalpy import (
    conductivity_from_enthalpy,
    conductivity_from_temperature,
    enthalpy_bound_at_or_below,
    enthalpy_from_temperature,
    kirchhoff_from_temperature,
    liquid_fraction_from_enthalpy,
    liquid_fraction_from_temperature,
    temperature_from_enthalpy,
    temperature_from_kirchhoff,
)
from cryoplan.thermal.kernels import _refresh_run
from cryoplan.thermal.materials import H_LIQUIDUS, MaterialRow, material_table

MUSHY = material_table([MaterialRow(2.0, 0.5, 1.8e6, 3.6e6, 2.5e8, -8.0, -1.0, 0, 0, -40)])[0]
SHARP = material_table([MaterialRow(2.0, 0.5, 1.8e6, 3.6e6, 2.5e8, 0.0, 0.0, 0, 0, -40)])[0]
# a frozen phase whose k rises and C falls below the solidus (the ice slopes of tissues.yaml)
COLD = material_table(
    [MaterialRow(2.2, 0.6, 1.9e6, 4.18e6, 3.3e8, -1.0, 0.0, 0, 0, -40, 0.0163, 6525.0)]
)[0]
ALL = pytest.mark.parametrize("props", [MUSHY, SHARP, COLD], ids=["mushy", "sharp", "cold"])
TEMPS = np.linspace(-180.0, 45.0, 1001)


@ALL
def test_temperature_from_enthalpy_inverts_enthalpy_from_temperature(props) -> None:
    for t in TEMPS:
        assert temperature_from_enthalpy(
            enthalpy_from_temperature(t, props), props
        ) == pytest.approx(t, abs=1e-9)


def test_enthalpy_jumps_by_the_latent_heat_across_the_freezing_range() -> None:
    # H(T_l) − H(T_s) = L + C_m ΔT, with C_m the mean of the two phases' capacities
    rise = enthalpy_from_temperature(-1.0, MUSHY) - enthalpy_from_temperature(-8.0, MUSHY)
    assert rise == pytest.approx(2.5e8 + 0.5 * (1.8e6 + 3.6e6) * 7.0)
    # a sharp front: at T_f the whole plateau H ∈ [0, L] maps to T_f
    for h in np.linspace(0.0, 2.5e8, 7):
        assert temperature_from_enthalpy(h, SHARP) == 0.0
    assert liquid_fraction_from_enthalpy(1.25e8, SHARP) == pytest.approx(0.5)


def test_liquid_fraction_is_linear_in_the_mushy_range() -> None:
    assert liquid_fraction_from_temperature(-8.0, MUSHY) == 0.0
    assert liquid_fraction_from_temperature(-4.5, MUSHY) == pytest.approx(0.5)
    assert liquid_fraction_from_temperature(-1.0, MUSHY) == 1.0


@ALL
def test_kirchhoff_potential_is_the_integral_of_conductivity(props) -> None:
    def k(t: float) -> float:
        return conductivity_from_temperature(t, props)

    for a, b in [(-150.0, -20.0), (-20.0, -3.0), (-6.0, 30.0), (-150.0, 37.0)]:
        integral, _ = quad(k, a, b, points=[-8.0, -1.0, 0.0], limit=200)
        diff = kirchhoff_from_temperature(b, props) - kirchhoff_from_temperature(a, props)
        assert diff == pytest.approx(integral, rel=1e-6)


EQUAL_K = material_table([MaterialRow(0.5, 0.5, 1.8e6, 3.6e6, 2.5e8, -8.0, -1.0, 0, 0, -40)])[0]


@pytest.mark.parametrize(
    "props", [MUSHY, SHARP, EQUAL_K, COLD], ids=["mushy", "sharp", "equal-k", "cold"]
)
def test_temperature_from_kirchhoff_inverts_kirchhoff_from_temperature(props) -> None:
    # the kernels take a neighbour's T from Φ (H is being overwritten during a sweep)
    for t in TEMPS:
        back = temperature_from_kirchhoff(kirchhoff_from_temperature(t, props), props)
        assert back == pytest.approx(t, abs=1e-12 * max(1.0, abs(t)))


@ALL
def test_enthalpy_bound_at_or_below_separates_temperatures(props) -> None:
    # volumes at or below an isotherm are counted on H against this bound
    rng = np.random.default_rng(7)
    enthalpies = np.concatenate([rng.uniform(-3e8, 5e8, 20_000), [0.0, props[H_LIQUIDUS]]])
    for threshold in (-40.0, -8.0, -4.5, -1.0, 0.0, 0.5, 37.0):
        bound = enthalpy_bound_at_or_below(threshold, props)
        for h in enthalpies:
            below = temperature_from_enthalpy(h, props) <= threshold
            assert below == (h <= bound), (threshold, h)


@numba.njit
def _refresh_run_from_python(h, phi, t_min, t, start, stop, props) -> None:
    _refresh_run(h, phi, t_min, t, start, stop, props)  # a helper: no Python wrapper of its own


@pytest.mark.parametrize(
    "props", [MUSHY, SHARP, EQUAL_K, COLD], ids=["mushy", "sharp", "equal-k", "cold"]
)
def test_the_refresh_kernel_computes_the_same_relations(props) -> None:
    # kernels._refresh_run writes T(H) and Φ(T) with selects (to vectorise): it must agree
    # with the scalar relations on every part of the curve, a sharp front's latent heat too
    latent = np.linspace(0.0, props[H_LIQUIDUS], 101)
    enthalpy = np.concatenate([[enthalpy_from_temperature(t, props) for t in TEMPS], latent])
    n = enthalpy.size
    kirchhoff = np.empty(n)
    t_min = np.full(n, np.inf, np.float32)
    temperature = np.empty(n)
    _refresh_run_from_python(enthalpy, kirchhoff, t_min, temperature, 0, n, props)
    want_t = np.array([temperature_from_enthalpy(h, props) for h in enthalpy])
    want_phi = np.array([kirchhoff_from_temperature(t, props) for t in want_t])
    np.testing.assert_array_equal(temperature, want_t)
    np.testing.assert_allclose(kirchhoff, want_phi, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(t_min, want_t.astype(np.float32))


def test_a_frozen_phase_follows_its_slopes_below_the_solidus() -> None:
    # C(T) = dH/dT = C_s − γ s and k(T) = k_s + κ s, s = T_s − T: at −101 °C (s = 100 K)
    # C = 1.9e6 − 6.525e5 and k = 2.2 + 1.63 (cf. ice: 1.27e6 J/(m³·K), 3.7 W/(m·K))
    t, dt = -101.0, 1e-3
    capacity = enthalpy_from_temperature(t + dt, COLD) - enthalpy_from_temperature(t - dt, COLD)
    assert capacity / (2 * dt) == pytest.approx(1.9e6 - 6.525e5, rel=1e-7)
    assert conductivity_from_temperature(t, COLD) == pytest.approx(2.2 + 1.63)
    assert conductivity_from_enthalpy(enthalpy_from_temperature(t, COLD), COLD) == pytest.approx(
        2.2 + 1.63
    )
    # and with no slope, the constant frozen phase of the verification suite
    assert conductivity_from_temperature(t, MUSHY) == 2.0
    assert temperature_from_enthalpy(-1.8e8, MUSHY) == -108.0
