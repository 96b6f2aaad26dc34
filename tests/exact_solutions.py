"""Exact solutions of ../shared/reference/verification.md, with their transcendental roots.

Notation as there: s frozen, l unfrozen, C = ρc, α = k/C, ν = √(α_s/α_l), T_f freezing
temperature (sharp front), T_0 wall, T_i initial. Lengths in metres, times in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import erf, erfc, exp1, k0, k1


@dataclass(frozen=True)
class Medium:
    """Two-phase medium with a sharp front (the generic set of physics.md §3b)."""

    k_s: float = 2.0
    k_l: float = 0.5
    c_s: float = 1.8e6
    c_l: float = 3.6e6
    latent: float = 2.5e8
    t_f: float = 0.0

    @property
    def alpha_s(self) -> float:
        return self.k_s / self.c_s

    @property
    def alpha_l(self) -> float:
        return self.k_l / self.c_l

    @property
    def nu(self) -> float:
        return math.sqrt(self.alpha_s / self.alpha_l)


# (a) planar one phase ----------------------------------------------------------------
def neumann_one_phase_lambda(m: Medium, t_0: float) -> float:
    """λ e^{λ²} erf λ = Ste/√π, Ste = C_s (T_f − T_0)/L."""
    ste = m.c_s * (m.t_f - t_0) / m.latent
    return brentq(lambda x: x * math.exp(x * x) * math.erf(x) - ste / math.sqrt(math.pi), 1e-9, 5)


def neumann_one_phase_t(m: Medium, t_0: float, x: np.ndarray, t: float) -> np.ndarray:
    lam = neumann_one_phase_lambda(m, t_0)
    front = 2 * lam * math.sqrt(m.alpha_s * t)
    solid = t_0 + (m.t_f - t_0) * erf(x / (2 * math.sqrt(m.alpha_s * t))) / math.erf(lam)
    return np.where(x < front, solid, m.t_f)


# (b) planar two phases ---------------------------------------------------------------
def neumann_two_phase_lambda(m: Medium, t_0: float, t_i: float) -> float:
    ste = m.c_s * (m.t_f - t_0) / m.latent
    nu = m.nu

    def f(x: float) -> float:
        return (
            ste * math.exp(-x * x) / math.erf(x)
            - (m.k_l / m.k_s)
            * nu
            * ste
            * ((t_i - m.t_f) / (m.t_f - t_0))
            * math.exp(-x * x * nu * nu)
            / math.erfc(x * nu)
            - x * math.sqrt(math.pi)
        )

    return brentq(f, 1e-9, 5)


def neumann_two_phase_t(m: Medium, t_0: float, t_i: float, x: np.ndarray, t: float) -> np.ndarray:
    lam = neumann_two_phase_lambda(m, t_0, t_i)
    front = 2 * lam * math.sqrt(m.alpha_s * t)
    solid = t_0 + (m.t_f - t_0) * erf(x / (2 * math.sqrt(m.alpha_s * t))) / math.erf(lam)
    liquid = t_i - (t_i - m.t_f) * erfc(x / (2 * math.sqrt(m.alpha_l * t))) / math.erfc(lam * m.nu)
    return np.where(x < front, solid, liquid)


# (c) cylindrical line sink -----------------------------------------------------------
def line_sink_lambda(m: Medium, q_w_m: float, t_i: float) -> float:
    """(Q/4π) e^{−λ²} − k_l (T_i − T_f) e^{−λ²ν²}/E1(λ²ν²) = λ² α_s L."""
    nu = m.nu

    def f(x: float) -> float:
        return (
            q_w_m / (4 * math.pi) * math.exp(-x * x)
            - m.k_l * (t_i - m.t_f) * math.exp(-x * x * nu * nu) / exp1(x * x * nu * nu)
            - x * x * m.alpha_s * m.latent
        )

    return brentq(f, 1e-6, 3)


# (d) spherical similarity ------------------------------------------------------------
def _f_sphere(eta: np.ndarray | float) -> np.ndarray | float:
    """F(η) = e^{−η²}/η − √π erfc η."""
    return np.exp(-np.square(eta)) / eta - math.sqrt(math.pi) * erfc(eta)


def sphere_lambda(m: Medium, a_k: float, t_i: float) -> float:
    nu = m.nu

    def f(x: float) -> float:
        lhs = m.k_s * a_k * math.exp(-x * x) / (2 * x * x * math.sqrt(m.alpha_s))
        lhs -= (
            m.k_l
            * (t_i - m.t_f)
            * math.exp(-x * x * nu * nu)
            / (2 * x * x * nu * nu * float(_f_sphere(x * nu)) * math.sqrt(m.alpha_l))
        )
        return lhs - m.latent * x * math.sqrt(m.alpha_s)

    return brentq(f, 1e-3, 3)


def sphere_t(m: Medium, a_k: float, t_i: float, r: np.ndarray, t: float) -> np.ndarray:
    lam = sphere_lambda(m, a_k, t_i)
    r = np.maximum(r, 1e-12)
    front = 2 * lam * math.sqrt(m.alpha_s * t)
    solid = m.t_f - a_k * (_f_sphere(r / (2 * math.sqrt(m.alpha_s * t))) - _f_sphere(lam))
    liquid = t_i - (t_i - m.t_f) * _f_sphere(r / (2 * math.sqrt(m.alpha_l * t))) / _f_sphere(
        lam * m.nu
    )
    return np.where(r < front, solid, liquid)


# (e) steady ice ball with Pennes perfusion -----------------------------------------------
@dataclass(frozen=True)
class Perfused:
    w_b: float  # 1/s
    rho_c_b: float  # J/(m³K)
    q_m: float  # W/m³
    t_a: float  # °C

    def delta(self, m: Medium) -> float:
        return math.sqrt(m.k_l / (self.w_b * self.rho_c_b))

    def t_far(self) -> float:
        return self.t_a + self.q_m / (self.w_b * self.rho_c_b)


def steady_radius_sphere(m: Medium, p: Perfused, r0: float, t_p: float) -> float:
    d, t_inf = p.delta(m), p.t_far()
    return brentq(
        lambda r: (
            m.k_s * (m.t_f - t_p) * r0 / (r * (r - r0)) - m.k_l * (t_inf - m.t_f) * (1 / r + 1 / d)
        ),
        r0 * (1 + 1e-9),
        1.0,
    )


def steady_radius_cylinder(m: Medium, p: Perfused, r0: float, t_p: float) -> float:
    d, t_inf = p.delta(m), p.t_far()
    return brentq(
        lambda r: (
            m.k_s * (m.t_f - t_p) / (r * math.log(r / r0))
            - m.k_l * (t_inf - m.t_f) * k1(r / d) / (d * k0(r / d))
        ),
        r0 * (1 + 1e-6),
        1.0,
    )


def observed_order(h: list[float], err: list[float]) -> float:
    """Least-squares slope of log(error) against log(h)."""
    return float(np.polyfit(np.log(h), np.log(np.abs(err)), 1)[0])
