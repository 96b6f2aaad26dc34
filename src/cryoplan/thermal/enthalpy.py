"""Enthalpy–temperature relations of a material with a mushy freezing range.

Each material is one row of a property table (see `materials.py` for the columns). The
volumetric enthalpy H [J/m³] is measured from the fully frozen state at the solidus T_s:

    H(T) = −(C_s s − γ s²/2),  s = T_s − T             T ≤ T_s      (frozen)
    H(T) = (C_m + L/ΔT) (T − T_s)                     T_s < T < T_l (mushy)
    H(T) = H_l + C_l (T − T_l),   H_l = C_m ΔT + L    T ≥ T_l      (unfrozen)

with ΔT = T_l − T_s, C_m = (C_s + C_l)/2 the sensible capacity in the mushy zone, L the
volumetric latent heat, and the frozen capacity C(T) = C_s − γ s falling linearly below the
solidus (γ ≥ 0; γ = 0 is a constant C_s). The liquid fraction φ = clip(H/H_l, 0, 1) equals
(T − T_s)/ΔT in the mushy zone and stays defined for a sharp front (ΔT = 0, where T = T_s
for 0 ≤ H ≤ L). Conductivity varies linearly with φ between its frozen value at the solidus
k_s and its unfrozen value, and below the solidus rises as k(T) = k_s + κ s (κ ≥ 0).

Temperatures are in °C, capacities in J/(m³·K), conductivities in W/(m·K). All functions are
numba-compiled scalar functions so that kernels can inline them.
"""

from __future__ import annotations

import numpy as np

from cryoplan.thermal import jit, materials
from cryoplan.thermal.jit import inline
from cryoplan.thermal.materials import (
    C_FROZEN,
    C_FROZEN_SLOPE,
    C_UNFROZEN,
    H_LIQUIDUS,
    K_FROZEN,
    K_FROZEN_SLOPE,
    K_UNFROZEN,
    T_LIQUIDUS,
    T_SOLIDUS,
)
from cryoplan.thermal.numba_cache import drop_stale_cache

# the relations use materials' column numbers, and jit's compile options
drop_stale_cache(__file__, materials.__file__, jit.__file__)


@inline
def depth_below_solidus_from_enthalpy(enthalpy_j_m3: float, props: np.ndarray) -> float:
    """s = T_s − T [K] of a frozen voxel (H ≤ 0): the root of C_s s − γ s²/2 = −H on the
    branch where C(T) > 0, written as s = 2E/(C_s + √(C_s² − 2γE)), E = −H, which is E/C_s
    exactly when γ = 0 (√(C_s²) = C_s in floating point)."""
    e = -enthalpy_j_m3
    c_s = props[C_FROZEN]
    return 2.0 * e / (c_s + np.sqrt(max(c_s * c_s - 2.0 * props[C_FROZEN_SLOPE] * e, 0.0)))


@inline
def depth_below_solidus_from_kirchhoff(kirchhoff_w_m: float, props: np.ndarray) -> float:
    """s = T_s − T [K] of a frozen voxel (Φ ≤ 0): the root of k_s s + κ s²/2 = −Φ,
    s = 2P/(k_s + √(k_s² + 2κP)), P = −Φ."""
    p = -kirchhoff_w_m
    k_s = props[K_FROZEN]
    return 2.0 * p / (k_s + np.sqrt(k_s * k_s + 2.0 * props[K_FROZEN_SLOPE] * p))


@inline
def frozen_kirchhoff(depth_k: float, props: np.ndarray) -> float:
    """Φ [W/m] of a frozen voxel s = depth_k below the solidus: −(k_s s + κ s²/2)."""
    return -depth_k * (props[K_FROZEN] + 0.5 * props[K_FROZEN_SLOPE] * depth_k)


@inline
def enthalpy_from_temperature(temperature_c: float, props: np.ndarray) -> float:
    """H(T) [J/m³] of one material row `props`."""
    t_s = props[T_SOLIDUS]
    t_l = props[T_LIQUIDUS]
    if temperature_c <= t_s:
        s = t_s - temperature_c
        return -s * (props[C_FROZEN] - 0.5 * props[C_FROZEN_SLOPE] * s)
    if temperature_c >= t_l:
        return props[H_LIQUIDUS] + props[C_UNFROZEN] * (temperature_c - t_l)
    # strictly inside a finite mushy range
    return props[H_LIQUIDUS] * (temperature_c - t_s) / (t_l - t_s)


@inline
def temperature_from_enthalpy(enthalpy_j_m3: float, props: np.ndarray) -> float:
    """T(H) [°C], the inverse of `enthalpy_from_temperature` (T = T_s on a sharp front)."""
    h_l = props[H_LIQUIDUS]
    if enthalpy_j_m3 <= 0.0:
        return props[T_SOLIDUS] - depth_below_solidus_from_enthalpy(enthalpy_j_m3, props)
    if enthalpy_j_m3 >= h_l:
        return props[T_LIQUIDUS] + (enthalpy_j_m3 - h_l) / props[C_UNFROZEN]
    return props[T_SOLIDUS] + enthalpy_j_m3 / h_l * (props[T_LIQUIDUS] - props[T_SOLIDUS])


@inline
def enthalpy_bound_at_or_below(temperature_c: float, props: np.ndarray) -> float:
    """The largest H [J/m³] with T(H) ≤ temperature_c (T(H) is non-decreasing, so
    T(H) ≤ T ⇔ H ≤ this bound). It is H(T), except on a sharp front (T_s = T_l = T), where
    T(H) = T for all 0 ≤ H ≤ H_l and the bound is H_l."""
    if temperature_c >= props[T_LIQUIDUS]:
        return props[H_LIQUIDUS] + props[C_UNFROZEN] * (temperature_c - props[T_LIQUIDUS])
    return enthalpy_from_temperature(temperature_c, props)


@inline
def liquid_fraction_from_enthalpy(enthalpy_j_m3: float, props: np.ndarray) -> float:
    """φ(H) = clip(H/H_l, 0, 1): 0 frozen, 1 unfrozen."""
    phi = enthalpy_j_m3 / props[H_LIQUIDUS]
    if phi <= 0.0:
        return 0.0
    if phi >= 1.0:
        return 1.0
    return phi


@inline
def liquid_fraction_from_temperature(temperature_c: float, props: np.ndarray) -> float:
    """φ(T) for a voxel whose temperature is prescribed (a step at T_s for a sharp front)."""
    return liquid_fraction_from_enthalpy(enthalpy_from_temperature(temperature_c, props), props)


@inline
def kirchhoff_from_temperature(temperature_c: float, props: np.ndarray) -> float:
    """Φ(T) = ∫_{T_s}^{T} k(T') dT' [W/m] with k linear in T across the mushy range.

    Φ = −(k_s s + κ s²/2), s = T_s − T, below the solidus (k = k_s + κ s);
    k_s (T − T_s) + (k_l − k_s)(T − T_s)²/(2ΔT) in the mushy range; and Φ_l + k_l (T − T_l)
    above, Φ_l = (k_s + k_l) ΔT/2. The flux between two
    voxels of one material is then A/h · (Φ_n − Φ_v): exact for steady 1-D conduction with
    any k(T), and in particular across a freezing front, where averaging k is not.
    """
    t_s = props[T_SOLIDUS]
    t_l = props[T_LIQUIDUS]
    k_s = props[K_FROZEN]
    k_l = props[K_UNFROZEN]
    if temperature_c <= t_s:
        return frozen_kirchhoff(t_s - temperature_c, props)
    if temperature_c >= t_l:
        return 0.5 * (k_s + k_l) * (t_l - t_s) + k_l * (temperature_c - t_l)
    d = temperature_c - t_s
    return k_s * d + (k_l - k_s) * d * d / (2.0 * (t_l - t_s))


@inline
def temperature_from_kirchhoff(kirchhoff_w_m: float, props: np.ndarray) -> float:
    """T(Φ) [°C], the inverse of `kirchhoff_from_temperature` (k > 0, so Φ is increasing).

    In the mushy range a d² + k_s d = Φ with d = T − T_s, a = (k_l − k_s)/(2ΔT), solved as
    d = 2Φ/(k_s + √(k_s² + 4aΦ)), which stays accurate when a is small or 0.
    """
    t_s = props[T_SOLIDUS]
    t_l = props[T_LIQUIDUS]
    k_s = props[K_FROZEN]
    k_l = props[K_UNFROZEN]
    if kirchhoff_w_m <= 0.0:
        return t_s - depth_below_solidus_from_kirchhoff(kirchhoff_w_m, props)
    phi_l = 0.5 * (k_s + k_l) * (t_l - t_s)
    if kirchhoff_w_m >= phi_l:
        return t_l + (kirchhoff_w_m - phi_l) / k_l
    a = (k_l - k_s) / (2.0 * (t_l - t_s))
    return t_s + 2.0 * kirchhoff_w_m / (k_s + np.sqrt(k_s * k_s + 4.0 * a * kirchhoff_w_m))


@inline
def conductivity_from_liquid_fraction(liquid_fraction: float, props: np.ndarray) -> float:
    """k(φ) = k_s + φ (k_l − k_s) [W/(m·K)] at or above the solidus."""
    return props[K_FROZEN] + liquid_fraction * (props[K_UNFROZEN] - props[K_FROZEN])


@inline
def conductivity_from_temperature(temperature_c: float, props: np.ndarray) -> float:
    """k(T) [W/(m·K)]: k_s + κ (T_s − T) below the solidus, k(φ(T)) above."""
    t_s = props[T_SOLIDUS]
    if temperature_c <= t_s:
        return props[K_FROZEN] + props[K_FROZEN_SLOPE] * (t_s - temperature_c)
    return conductivity_from_liquid_fraction(
        liquid_fraction_from_temperature(temperature_c, props), props
    )


@inline
def conductivity_from_enthalpy(enthalpy_j_m3: float, props: np.ndarray) -> float:
    """k [W/(m·K)] of a voxel of enthalpy H: k(T(H)) below the solidus, k(φ(H)) above."""
    if enthalpy_j_m3 <= 0.0:
        depth_k = depth_below_solidus_from_enthalpy(enthalpy_j_m3, props)
        return props[K_FROZEN] + props[K_FROZEN_SLOPE] * depth_k
    return conductivity_from_liquid_fraction(
        liquid_fraction_from_enthalpy(enthalpy_j_m3, props), props
    )
