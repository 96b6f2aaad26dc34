"""Verification of the 3-D solver against the exact solutions of verification.md.

Each case runs the same 3-D explicit enthalpy solver the command line uses, on a sequence of
refined grids, and asserts (1) the error against the exact solution on the finest grid and
(2) the observed order of convergence. The enthalpy method with a sharp freezing front is
first-order accurate in h (the front crosses a voxel in a staircase), so the order asserted
for fronts is ≥ 0.9; the steady problem (e) converges faster, as the Kirchhoff flux makes
the discrete front exact up to its position inside one voxel.

Every run also asserts the energy ledger (verification.md f).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from exact_solutions import (
    Medium,
    Perfused,
    neumann_one_phase_lambda,
    neumann_one_phase_t,
    neumann_two_phase_lambda,
    neumann_two_phase_t,
    observed_order,
    sphere_lambda,
    sphere_t,
    steady_radius_cylinder,
)

from cryoplan.probes.coupling import ActiveSegment, couple_probes
from cryoplan.thermal import (
    FIXED_TEMPERATURE,
    INSULATED,
    DriveKind,
    ProbeDrive,
    RecordingPlan,
    Segment,
    ThermalProblem,
    solve,
)
from cryoplan.thermal.backend import CpuExplicitBackend
from cryoplan.thermal.materials import MaterialRow, material_table
from cryoplan.thermal.multirate import CpuMultirateBackend

LEDGER_TOLERANCE = 0.005  # 0.5 % of the largest term (issue 2); round-off in practice
NO_RECORDING = RecordingPlan(sensor_interval_s=0.0)


def sharp_medium_table(m: Medium, perfusion_w_m3k: float = 0.0, metabolic: float = 0.0):
    """One material with a sharp front at T_f (solidus = liquidus) and no death threshold."""
    row = MaterialRow(
        m.k_s, m.k_l, m.c_s, m.c_l, m.latent, m.t_f, m.t_f, perfusion_w_m3k, metabolic, -1e9
    )
    return material_table([row])


def assert_ledger_closes(history) -> None:
    assert history.ledger.relative_error < LEDGER_TOLERANCE, history.ledger.as_dict()


# (a), (b): planar Neumann problems on a slab ------------------------------------------------
SLAB_LENGTH_M = 0.08
SLAB_TIME_S = 600.0
# The front crosses voxels in a staircase, so its error at one instant depends on where in a
# voxel it happens to be; the RMS over several instants measures the convergence itself.
FRONT_TIMES_S = (150.0, 300.0, 450.0, 600.0)
T_WALL = -150.0


def run_slab(m: Medium, t_initial: float, h: float):
    """A 3-D slab nx × 1 × 1 with its x− face held at T_0 and every other face insulated,
    solved to SLAB_TIME_S: voxel centres [m], the final temperature [°C], and the frozen
    depth [m] at each of FRONT_TIMES_S (from the liquid fraction recorded at those instants,
    which the solve hits exactly)."""
    n = round(SLAB_LENGTH_M / h)
    shape = (n, 1, 1)
    problem = ThermalProblem(
        spacing_m=(h, h, h),
        material=np.zeros(shape, np.uint8),
        properties=sharp_medium_table(m),
        initial_temperature_c=np.full(shape, t_initial),
        fixed=np.zeros(shape, bool),
        boundary_kind=(FIXED_TEMPERATURE,) + (INSULATED,) * 5,
        boundary_temperature_c=(T_WALL, 0, 0, 0, 0, 0),
        blood_temperature_c=37.0,
        schedule=(Segment(0.0, SLAB_TIME_S, ()),),
    )
    plan = RecordingPlan(
        snapshot_times_s=FRONT_TIMES_S, sensor_interval_s=0.0, snapshot_liquid_fraction=True
    )
    history = solve(problem, plan)
    assert_ledger_closes(history)
    x = (np.arange(n) + 0.5) * h
    phi = history.snapshots_liquid_fraction
    fronts = [h * float(np.sum(1.0 - phi[t])) for t in FRONT_TIMES_S]  # frozen depths
    return x, history.final_temperature_c[:, 0, 0], fronts


def front_rms_error(m: Medium, fronts: list[float], lam: float) -> float:
    """RMS over FRONT_TIMES_S of (simulated − exact) frozen depth [m]."""
    exact = [2 * lam * math.sqrt(m.alpha_s * t) for t in FRONT_TIMES_S]
    return float(np.sqrt(np.mean(np.square(np.subtract(fronts, exact)))))


# From 1 mm down: at 2 mm the 33 mm front spans only 16 voxels, before the asymptotic range.
SLAB_SPACINGS = [1e-3, 0.5e-3, 0.25e-3, 0.125e-3]


def test_a_neumann_one_phase_front_converges_first_order() -> None:
    m = Medium()
    lam = neumann_one_phase_lambda(m, T_WALL)
    exact_front = 2 * lam * math.sqrt(m.alpha_s * SLAB_TIME_S)
    front_err, temp_err = [], []
    for h in SLAB_SPACINGS:
        # liquid exactly at the freezing point: a hair above T_f puts H at the liquidus
        x, t, fronts = run_slab(m, m.t_f + 1e-9, h)
        front_err.append(front_rms_error(m, fronts, lam))
        solid = x < exact_front - 2 * h
        temp_err.append(
            float(
                np.sqrt(np.mean((t - neumann_one_phase_t(m, T_WALL, x, SLAB_TIME_S))[solid] ** 2))
            )
        )
    assert abs(front_err[-1]) < 0.005 * exact_front, front_err
    assert observed_order(SLAB_SPACINGS, front_err) >= 0.9, front_err
    assert observed_order(SLAB_SPACINGS, temp_err) >= 0.9, temp_err


def test_b_neumann_two_phase_front_and_field_converge() -> None:
    m = Medium()
    t_i = 37.0
    lam = neumann_two_phase_lambda(m, T_WALL, t_i)
    exact_front = 2 * lam * math.sqrt(m.alpha_s * SLAB_TIME_S)
    assert exact_front * 1e3 == pytest.approx(27.11, abs=0.01)  # verification.md's example
    front_err, temp_err = [], []
    for h in SLAB_SPACINGS:
        x, t, fronts = run_slab(m, t_i, h)
        front_err.append(front_rms_error(m, fronts, lam))
        exact = neumann_two_phase_t(m, T_WALL, t_i, x, SLAB_TIME_S)
        temp_err.append(float(np.sqrt(np.mean((t - exact) ** 2))))
    assert abs(front_err[-1]) < 0.005 * exact_front, front_err
    assert observed_order(SLAB_SPACINGS, front_err) >= 0.9, front_err
    assert observed_order(SLAB_SPACINGS, temp_err) >= 0.9, temp_err


# (d): spherical similarity solution on an octant ---------------------------------------------
SPHERE_A_K = 50.0
SPHERE_T0_S = 150.0
SPHERE_T1_S = 600.0
SPHERE_DOMAIN_M = 0.04
SPHERE_INNER_M = 4e-3  # exact temperatures are imposed on voxels closer to the centre


def run_sphere(m: Medium, h: float, backend=CpuExplicitBackend) -> float:
    """Octant with insulated symmetry planes; exact T imposed inside r_in; returns R(t1)."""
    t_i = 37.0
    n = round(SPHERE_DOMAIN_M / h)
    shape = (n, n, n)
    c = (np.arange(n) + 0.5) * h
    r = np.sqrt(c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2)
    fixed = r < SPHERE_INNER_M
    r_fixed = r[fixed]

    def exact(t_abs: float, radii: np.ndarray) -> np.ndarray:
        return sphere_t(m, SPHERE_A_K, t_i, radii, t_abs)

    problem = ThermalProblem(
        spacing_m=(h, h, h),
        material=np.zeros(shape, np.uint8),
        properties=sharp_medium_table(m),
        initial_temperature_c=exact(SPHERE_T0_S, r),
        fixed=fixed,
        # x−, y−, z− are symmetry planes; the far faces see the undisturbed T_i
        boundary_kind=(INSULATED, FIXED_TEMPERATURE) * 3,
        boundary_temperature_c=(t_i,) * 6,
        blood_temperature_c=37.0,
        schedule=(Segment(0.0, SPHERE_T1_S - SPHERE_T0_S, ()),),
        fixed_temperature_fn=lambda t: exact(SPHERE_T0_S + t, r_fixed),
    )
    history = solve(problem, NO_RECORDING, backend_factory=backend)
    assert_ledger_closes(history)
    frozen_volume = 8 * h**3 * float(np.sum(1.0 - history.final_liquid_fraction))
    return (3 * frozen_volume / (4 * math.pi)) ** (1 / 3)


@pytest.mark.slow
@pytest.mark.parametrize("backend", [CpuExplicitBackend, CpuMultirateBackend], ids=lambda b: b.name)
def test_d_spherical_front_converges(backend) -> None:
    """Both back ends: the multirate one substeps the frozen shell, long steps elsewhere."""
    m = Medium()
    lam = sphere_lambda(m, SPHERE_A_K, 37.0)
    exact_radius = 2 * lam * math.sqrt(m.alpha_s * SPHERE_T1_S)
    assert exact_radius * 1e3 == pytest.approx(21.98, abs=0.01)  # verification.md's example
    spacings = [2e-3, 1.333e-3, 1e-3]
    errors = [run_sphere(m, h, backend) - exact_radius for h in spacings]
    assert abs(errors[-1]) < 0.01 * exact_radius, errors
    assert observed_order(spacings, errors) >= 0.9, errors


# Frozen properties that follow temperature: a steady slab ---------------------------------
# k(T) = k_s + κ s and C(T) = C_s − γ s below the solidus (s = T_s − T), the ice slopes of
# tissues.yaml. In a steady slab held at T_0 and T_1 the flux is uniform and the Kirchhoff
# potential Φ(T) = ∫k dT is exactly linear in x (verification.md e: "use the Kirchhoff
# transform of k(T)"). The Kirchhoff face flux makes the discrete steady state exact at the
# voxel centres, so any error is an error of the k(T), Φ(T) or T(H) relations; the transient
# that leads there exercises C(T) through the energy ledger.
COLD_SLAB = MaterialRow(2.2, 0.6, 1.9e6, 4.18e6, 3.3e8, -1.0, 0.0, 0, 0, -1e9, 0.0163, 6525.0)


@pytest.mark.parametrize("backend", [CpuExplicitBackend, CpuMultirateBackend], ids=lambda b: b.name)
@pytest.mark.parametrize("h", [1e-3, 0.5e-3])
def test_frozen_slab_with_temperature_dependent_properties_reaches_the_kirchhoff_profile(
    backend, h
) -> None:
    length_m, t_0, t_1 = 0.01, -180.0, -20.0
    n = round(length_m / h)
    shape = (n, 1, 1)
    props = material_table([COLD_SLAB])
    problem = ThermalProblem(
        spacing_m=(h, h, h),
        material=np.zeros(shape, np.uint8),
        properties=props,
        initial_temperature_c=np.full(shape, -100.0),
        fixed=np.zeros(shape, bool),
        boundary_kind=(FIXED_TEMPERATURE, FIXED_TEMPERATURE) + (INSULATED,) * 4,
        boundary_temperature_c=(t_0, t_1, 0, 0, 0, 0),
        blood_temperature_c=37.0,
        # ≫ the slowest relaxation time L²/(π² α) ≈ 7 s at α(−20 °C) = 1.4e-6 m²/s
        schedule=(Segment(0.0, 300.0, ()),),
    )
    history = solve(problem, NO_RECORDING, backend)
    assert_ledger_closes(history)
    # Φ relative to the solidus (T_s = −1 °C), s = T_s − T: Φ = −(k_s s + κ s²/2)
    k_s, kappa, t_s = 2.2, 0.0163, -1.0
    phi_0, phi_1 = (-(k_s * (t_s - t) + 0.5 * kappa * (t_s - t) ** 2) for t in (t_0, t_1))
    x = (np.arange(n) + 0.5) * h
    phi = phi_0 + (phi_1 - phi_0) * x / length_m
    exact = t_s - 2 * -phi / (k_s + np.sqrt(k_s**2 + 2 * kappa * -phi))
    # constant properties would put the middle at −100 °C; the better-conducting cold side
    # pulls it to −113.2 °C
    assert exact[n // 2 - 1 : n // 2 + 1].mean() == pytest.approx(-113.2, abs=0.1)
    np.testing.assert_allclose(history.final_temperature_c[:, 0, 0], exact, rtol=0, atol=1e-6)


# (e): steady ice ball around a probe in perfused tissue, through the probe well model ---------
def run_steady_cylinder(m: Medium, p: Perfused, r0: float, t_probe: float, h: float) -> float:
    """A probe spanning a one-voxel-thick layer (insulated above and below): a 2-D cylinder.

    The probe is the real kernel-spread, well-index probe of `cryoplan.probes.coupling`, put
    off the voxel centres on purpose. Returns the frozen radius √(A/π) at steady state.
    """
    half = steady_radius_cylinder(m, p, r0, t_probe) + 6 * p.delta(m)
    n = 2 * math.ceil(half / h)
    shape = (n, n, 1)
    c = (n - 1) / 2
    segment = ActiveSegment((c + 0.3, c + 0.1, -0.5), (c + 0.3, c + 0.1, 0.5), r0)
    coupling = couple_probes([segment], shape, (h, h, h), np.zeros(shape, bool))
    end_s = 4000.0  # ≫ the relaxation times R²/α_s and δ²/α_l (checked: R stays put after)
    problem = ThermalProblem(
        spacing_m=(h, h, h),
        material=np.zeros(shape, np.uint8),
        properties=sharp_medium_table(m, p.w_b * p.rho_c_b, p.q_m),
        initial_temperature_c=np.full(shape, p.t_far()),
        fixed=np.zeros(shape, bool),
        boundary_kind=(FIXED_TEMPERATURE,) * 4 + (INSULATED,) * 2,
        boundary_temperature_c=(p.t_far(),) * 6,
        blood_temperature_c=p.t_a,
        schedule=(Segment(0.0, end_s, (ProbeDrive(DriveKind.WALL, ((0.0, t_probe),)),)),),
        probes=coupling,
    )
    history = solve(problem, NO_RECORDING)
    assert_ledger_closes(history)
    frozen_area = h * h * float(np.sum(1.0 - history.final_liquid_fraction))
    return math.sqrt(frozen_area / math.pi)


@pytest.mark.slow
def test_e_steady_cylindrical_ice_ball_with_perfusion() -> None:
    # The latent heat does not enter the steady state (verification.md e); a small one lets
    # the transient settle within the run. Perfusion 0.005 1/s keeps the domain small.
    m = Medium(latent=1e7)
    p = Perfused(w_b=0.005, rho_c_b=3.6e6, q_m=4200.0, t_a=37.0)
    r0, t_probe = 0.75e-3, -150.0
    exact_radius = steady_radius_cylinder(m, p, r0, t_probe)
    spacings = [2e-3, 1.414e-3, 1e-3]
    errors = [run_steady_cylinder(m, p, r0, t_probe, h) - exact_radius for h in spacings]
    assert abs(errors[-1]) < 0.02 * exact_radius, errors
    assert observed_order(spacings, errors) >= 0.9, errors
