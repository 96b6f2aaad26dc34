"""The material property table: the only way physics reaches the kernels.

A table is a float64 array of shape (n_materials, N_PROPS); a voxel's material index picks
its row. Column names below; temperatures in °C, everything else SI.

Below the solidus the frozen phase's conductivity and capacity follow the temperature,
linearly in the depth below the solidus s = T_s − T ≥ 0 [K]:

    k(T) = k_s + κ s        (ice conducts better as it cools)
    C(T) = C_s − γ s        (and stores less heat per kelvin)

with κ = K_FROZEN_SLOPE [W/(m·K²)] and γ = C_FROZEN_SLOPE [J/(m³·K²)]; κ = γ = 0 is a
frozen phase of constant properties (every exact solution of the verification suite).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

K_FROZEN = 0  # conductivity of the frozen phase, W/(m·K)
K_UNFROZEN = 1  # conductivity of the unfrozen phase, W/(m·K)
C_FROZEN = 2  # volumetric heat capacity, frozen, J/(m³·K)
C_UNFROZEN = 3  # volumetric heat capacity, unfrozen, J/(m³·K)
C_MUSHY = 4  # sensible volumetric heat capacity inside the freezing range, J/(m³·K)
LATENT = 5  # volumetric latent heat, J/m³
T_SOLIDUS = 6  # °C
T_LIQUIDUS = 7  # °C
H_LIQUIDUS = 8  # enthalpy at the liquidus, J/m³ (derived: C_MUSHY·(T_l − T_s) + LATENT)
PERFUSION = 9  # Pennes coefficient w_b·ρ_b·c_b, W/(m³·K)
METABOLIC = 10  # metabolic heat, W/m³
T_LETHAL = 11  # °C: perfusion and metabolism stop for good once the voxel has reached it
K_FROZEN_SLOPE = 12  # κ: rise of the frozen conductivity per kelvin below T_s, W/(m·K²)
C_FROZEN_SLOPE = 13  # γ: fall of the frozen capacity per kelvin below T_s, J/(m³·K²)
N_PROPS = 14


@dataclass(frozen=True)
class MaterialRow:
    """One material in SI units (°C for temperatures), as the solver sees it."""

    conductivity_frozen_w_mk: float
    conductivity_unfrozen_w_mk: float
    capacity_frozen_j_m3k: float
    capacity_unfrozen_j_m3k: float
    latent_heat_j_m3: float
    solidus_c: float
    liquidus_c: float
    perfusion_coefficient_w_m3k: float
    metabolic_w_m3: float
    lethal_c: float
    # below the solidus s = T_s − T: k = k_s + κ s, C = C_s − γ s (0: constant frozen phase)
    conductivity_slope_w_mk2: float = 0.0  # κ
    capacity_slope_j_m3k2: float = 0.0  # γ


def material_table(rows: list[MaterialRow]) -> np.ndarray:
    """Pack material rows into the (n, N_PROPS) table the kernels read."""
    table = np.zeros((len(rows), N_PROPS))
    for i, r in enumerate(rows):
        c_m = 0.5 * (r.capacity_frozen_j_m3k + r.capacity_unfrozen_j_m3k)
        table[i, K_FROZEN] = r.conductivity_frozen_w_mk
        table[i, K_UNFROZEN] = r.conductivity_unfrozen_w_mk
        table[i, C_FROZEN] = r.capacity_frozen_j_m3k
        table[i, C_UNFROZEN] = r.capacity_unfrozen_j_m3k
        table[i, C_MUSHY] = c_m
        table[i, LATENT] = r.latent_heat_j_m3
        table[i, T_SOLIDUS] = r.solidus_c
        table[i, T_LIQUIDUS] = r.liquidus_c
        table[i, H_LIQUIDUS] = c_m * (r.liquidus_c - r.solidus_c) + r.latent_heat_j_m3
        table[i, PERFUSION] = r.perfusion_coefficient_w_m3k
        table[i, METABOLIC] = r.metabolic_w_m3
        table[i, T_LETHAL] = r.lethal_c
        table[i, K_FROZEN_SLOPE] = r.conductivity_slope_w_mk2
        table[i, C_FROZEN_SLOPE] = r.capacity_slope_j_m3k2
    return table
