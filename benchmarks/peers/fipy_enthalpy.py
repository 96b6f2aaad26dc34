"""Peer (1): the same model as a researcher would write it with FiPy (4.0.3, SciPy solvers).

Temperature T is the `CellVariable` of a `Grid3D` with the problem's spacing and shape. Each
implicit (backward Euler) step is swept a few times; at sweep iterate T* the equation is

    C*·(T − T_old)/Δt + [H(T*) − H(T_old) − C*·(T* − T_old)]/Δt            (enthalpy, below)
        = ∇·(k* ∇T) + a*(T_a − T) + φ*(1 − d)·q − Wᵀ[G*(T_s* − T_drive)]/V + D(T* − T)

- C* = dH/dT at T* with the same H(T) curve as cryoplan (apparent heat capacity); the bracket
  is the enthalpy correction of Voller & Swaminathan (1991): once the sweeps converge the step
  satisfies H(T) − H(T_old) = Δt·(…) exactly, so latent heat is neither lost nor double counted
  when a voxel jumps across the freezing range in one step;
- face conductivity: by default the secant of the Kirchhoff potential between the two cells,
  k_f = (Φ(T_b*) − Φ(T_a*))/(T_b* − T_a*), so that at convergence the flux is cryoplan's
  A/h·(Φ_b − Φ_a) (same for a held outer face, with T_b the boundary temperature), and the
  harmonic mean of k(φ(T*)) between different materials. `face_conductivity="harmonic"` is the
  textbook FiPy choice (`k.harmonicFaceValue` everywhere); it under-estimates the conductance
  across the freezing range (a −28 °C/−3 °C liver face: 1.28 against 1.89 W/(m·K)) and puts
  the ice-ball front ~1 mm behind on a small case;
- perfusion a* = φ*(1 − d)·P as an `ImplicitSourceTerm`, metabolism as a constant source,
  both off for good once a voxel has reached its lethal temperature (d = 1);
- probes: the same `ProbeCoupling` weights W and conductances G_s = k_s·shape_factor (in series
  with the wall film for gas); the sample exchange is lagged to the sweep iterate, its diagonal
  part D_v = Σ_s w_sv² G_s / V taken implicitly so the sweeps converge to the fully coupled
  implicit exchange;
- held outer faces: `T.constrain(T_b, faces)`; fixed voxels: a large `ImplicitSourceTerm`
  (FiPy FAQ "internal fixed value").

The drives are taken at the start of each step as in cryoplan; steps are equal within each
schedule segment and at most `dt_s`.

    from benchmarks.peers.fipy_enthalpy import solve_fipy
    result = solve_fipy(problem, dt_s=1.0, sweeps=3)   # PeerResult (see common.py)

`extra["last_sweep_residual_max"]` is FiPy's residual norm before the last sweep of a step
(the assembled system's units, W), the largest over the run: it shows whether `sweeps` was
enough; the ledger error says the same in energy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import numpy as np
from fipy import (
    CellVariable,
    DiffusionTerm,
    FaceVariable,
    Grid3D,
    ImplicitSourceTerm,
    TransientTerm,
)
from fipy.solvers.scipy import LinearCGSolver
from fipy.solvers.scipy.preconditioners.scipyPreconditioner import ScipyPreconditioner
from scipy import sparse
from scipy.sparse.linalg import LinearOperator

from cryoplan.thermal.backend import StepFlows
from cryoplan.thermal.problem import FIXED_TEMPERATURE, ThermalProblem
from cryoplan.thermal.stepping import EnergyLedger

from .common import PeerResult, drive_arrays, schedule_steps
from .numpy_enthalpy import Material

FIXED_WEIGHT = 1e8  # × the largest diagonal: fixed voxels follow their value to 1e-8


class DiagonalPreconditioner(ScipyPreconditioner):
    """Jacobi preconditioning by element-wise division.

    FiPy 4.0.3's `JacobiPreconditioner` applies `spsolve` to the diagonal matrix at every CG
    iteration: 42 ms per application on the 110,592-cell example, more than the CG iteration
    itself; dividing by the diagonal gives the same preconditioner for free.
    """

    def _applyToMatrix(self, matrix):  # noqa: N802 (FiPy's name)
        inverse = 1.0 / matrix.diagonal()
        return LinearOperator(matrix.shape, lambda x: inverse * x), matrix


def default_solver() -> LinearCGSolver:
    """Conjugate gradients with Jacobi preconditioning: the matrix is symmetric positive
    definite (diffusion + diagonal sources). FiPy's default with SciPy, `LinearLUSolver`,
    refactorises the 3-D matrix at every sweep; ILU (`spilu`) costs ~9 s per sweep on the
    example. The tolerance is relative to the initial residual ("initial"): the default
    criterion scales by the right-hand side, which the fixed voxels' large source dominates,
    so CG would stop before its first iteration."""
    return LinearCGSolver(
        tolerance=1e-8, criterion="initial", iterations=2000, precon=DiagonalPreconditioner()
    )


def apparent_capacity(m: Material, t: np.ndarray) -> np.ndarray:
    """dH/dT of cryoplan's H(T): C_s frozen, H_l/ΔT inside the freezing range, C_l unfrozen."""
    mushy = m.h_l / m.safe_range
    c = np.where(t >= m.t_l, m.c_l, mushy)
    return np.where(t <= m.t_s, m.c_s, c)


def solve_fipy(
    problem: ThermalProblem,
    dt_s: float,
    sweeps: int = 3,
    solver: object | None = None,
    face_conductivity: Literal["kirchhoff", "harmonic"] = "kirchhoff",
    progress: Callable[[float, float], None] | None = None,
) -> PeerResult:
    """Run the schedule of `problem` with FiPy: implicit steps of at most dt_s, `sweeps` each."""
    started = time.perf_counter()
    shape = problem.shape
    nx, ny, nz = shape
    dx, dy, dz = problem.spacing_m
    volume = dx * dy * dz
    solver = solver or default_solver()

    # FiPy numbers cells with x fastest: a (nx, ny, nz) array maps to cells by Fortran order
    def to_cells(a: np.ndarray) -> np.ndarray:
        return np.asarray(a, dtype=np.float64).ravel(order="F")

    def to_grid(v: np.ndarray) -> np.ndarray:
        return np.asarray(v).reshape(shape, order="F")

    mesh = Grid3D(dx=dx, dy=dy, dz=dz, nx=nx, ny=ny, nz=nz)
    T = CellVariable(
        mesh=mesh, name="T", value=to_cells(problem.initial_temperature_c), hasOld=True
    )
    # held outer faces, found from the face centres (x−, x+, y−, y+, z−, z+)
    centres = mesh.faceCenters.value
    extent = (nx * dx, ny * dy, nz * dz)
    exterior = mesh.exteriorFaces.value
    for face, kind in enumerate(problem.boundary_kind):
        if kind == FIXED_TEMPERATURE:
            axis, upper = divmod(face, 2)
            at = extent[axis] if upper else 0.0
            where = exterior & np.isclose(centres[axis], at)
            T.constrain(problem.boundary_temperature_c[face], where=where)

    capacity = CellVariable(mesh=mesh, value=1.0)  # C* [J/(m³·K)]
    k_cell = CellVariable(mesh=mesh, value=1.0)  # k(φ(T*)) [W/(m·K)]
    k_face = FaceVariable(mesh=mesh, value=1.0)  # face conductivity [W/(m·K)]
    sink = CellVariable(mesh=mesh, value=0.0)  # implicit coefficients [W/(m³·K)]
    source = CellVariable(mesh=mesh, value=0.0)  # explicit sources [W/m³]
    equation = TransientTerm(coeff=capacity) == (
        DiffusionTerm(coeff=k_cell.harmonicFaceValue if face_conductivity == "harmonic" else k_face)
        - ImplicitSourceTerm(coeff=sink)
        + source
    )

    fixed = to_cells(problem.fixed).astype(bool)
    free = ~fixed
    fixed_index = np.flatnonzero(problem.fixed)
    t_fixed = to_cells(problem.initial_temperature_c)
    if problem.fixed_temperature_fn is not None:
        grid = problem.initial_temperature_c.copy()
        grid.reshape(-1)[fixed_index] = problem.fixed_temperature_fn(0.0)
        t_fixed = to_cells(grid)
        T.setValue(np.where(fixed, t_fixed, T.value))

    # property arrays in cell order
    mc = Material(problem.properties, problem.material.ravel(order="F"))  # in cell order
    c_perf, c_met, lethal = mc.perfusion, mc.metabolic, mc.lethal
    kirchhoff_faces = _KirchhoffFaces(mesh, problem, mc)
    c_max = float(max(mc.c_s.max(), mc.c_l.max(), (mc.h_l / mc.safe_range).max()))
    k_max = float(max(mc.k_s.max(), mc.k_l.max()))

    # probe coupling in cell order: W (samples × cells)
    p = problem.probes
    cell_of_voxel = np.ravel_multi_index(np.unravel_index(p.voxel_index, shape), shape, order="F")
    weights = sparse.csr_matrix(
        (p.weight, cell_of_voxel, p.sample_start), shape=(p.n_samples, mesh.numberOfCells)
    )
    spread = weights.T.tocsr()
    spread_sq = weights.multiply(weights).T.tocsr()

    def probe_heat(t: np.ndarray, k: np.ndarray, segment, t_s: float):
        """(G_s, heat out of the tissue per sample [W]) at cell temperatures t."""
        drive_t, films, active = drive_arrays(segment, t_s)
        sp = p.probe_of_sample
        g = (weights @ k) * p.shape_factor_m
        h = films[sp]
        gas = np.isfinite(h)
        g_film = h[gas] * p.wall_area_m2[gas]
        g[gas] = g[gas] * g_film / (g[gas] + g_film)
        g = np.where(active[sp], g, 0.0)
        return g, g * (weights @ t - drive_t[sp])

    t_min = T.value.copy()
    destroyed = T.value <= lethal
    ledger = EnergyLedger(initial_enthalpy_j=float(mc.enthalpy(T.value)[free].sum() * volume))
    n_steps = n_sweeps = 0
    max_dt = 0.0
    last_residual = []
    for step in schedule_steps(problem, dt_s):
        dt = step.dt_s
        max_dt = max(max_dt, dt)
        if problem.fixed_temperature_fn is not None:
            grid = problem.initial_temperature_c.copy()
            grid.reshape(-1)[fixed_index] = problem.fixed_temperature_fn(step.t_s)
            t_fixed = to_cells(grid)
        big = np.where(fixed, FIXED_WEIGHT * (c_max / dt + 6.0 * k_max / min(dx, dy, dz) ** 2), 0.0)
        T.updateOld()
        t_old = T.old.value.copy()
        h_old = mc.enthalpy(t_old)
        residual = np.nan
        for _ in range(sweeps):
            t_star = T.value.copy()
            c_star = apparent_capacity(mc, t_star)
            h_star = mc.enthalpy(t_star)
            phi = mc.liquid_fraction(h_star)
            k_star = mc.conductivity(phi)
            alive_phi = np.where(destroyed, 0.0, phi)
            a_perf = alive_phi * c_perf
            src = alive_phi * c_met + a_perf * problem.blood_temperature_c
            src -= (h_star - h_old - c_star * (t_star - t_old)) / dt
            diag = np.zeros_like(t_star)
            if p.n_samples:
                g, heat_out = probe_heat(t_star, k_star, step.segment, step.t_s)
                diag = (spread_sq @ g) / volume
                src += -(spread @ heat_out) / volume + diag * t_star
            capacity.setValue(c_star)
            k_cell.setValue(k_star)
            if face_conductivity == "kirchhoff":
                k_face.setValue(kirchhoff_faces(t_star, k_star))
            sink.setValue(a_perf + diag + big)
            source.setValue(src + big * t_fixed)
            residual = equation.sweep(var=T, dt=dt, solver=solver)
            n_sweeps += 1
        last_residual.append(float(residual))

        # ledger on the new temperatures: what the discrete equations say moved in
        t_new = T.value
        h_new = mc.enthalpy(t_new)
        phi = mc.liquid_fraction(h_new)
        k_new = mc.conductivity(phi)
        alive_phi = np.where(destroyed, 0.0, phi)
        perf_w = float((alive_phi * c_perf * (problem.blood_temperature_c - t_new))[free].sum())
        met_w = float((alive_phi * c_met)[free].sum())
        probes_w = 0.0
        if p.n_samples:
            _, heat_out = probe_heat(t_new, k_new, step.segment, step.t_s)
            probes_w = -float(heat_out.sum())
        if face_conductivity == "kirchhoff":
            bnd_w, fix_w = kirchhoff_faces.flows(t_new, k_new, free)
        else:
            bnd_w, fix_w = _face_flows(problem, to_grid(t_new), to_grid(k_new))
        ledger.add(StepFlows(probes_w, perf_w * volume, met_w * volume, bnd_w, fix_w), dt)

        np.minimum(t_min, t_new, out=t_min)
        destroyed |= t_new <= lethal
        n_steps += 1
        if progress is not None:
            progress(step.t_s + dt, problem.duration_s)

    ledger.final_enthalpy_j = float(mc.enthalpy(T.value)[free].sum() * volume)
    return PeerResult(
        solver=f"fipy-implicit ({type(solver).__name__}, {sweeps} sweeps, {face_conductivity})",
        minimum_temperature_c=to_grid(t_min).copy(),
        final_temperature_c=to_grid(T.value).copy(),
        n_steps=n_steps,
        time_step_s=max_dt,
        wall_time_s=time.perf_counter() - started,
        ledger_relative_error=ledger.relative_error,
        ledger=ledger.as_dict(),
        extra={"sweeps": n_sweeps, "last_sweep_residual_max": max(last_residual, default=0.0)},
    )


def _face_flows(problem: ThermalProblem, t: np.ndarray, k: np.ndarray) -> tuple[float, float]:
    """Heat rates [W] into the free voxels through held outer faces and from fixed voxels,
    with FiPy's face conductivities (harmonic mean inside, the cell's own k on the boundary)."""
    dx, dy, dz = problem.spacing_m
    factors = (dy * dz / dx, dx * dz / dy, dx * dy / dz)
    fixed = problem.fixed
    boundary_w = fixed_w = 0.0
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        k_face = 2.0 * k[lo] * k[hi] / (k[lo] + k[hi])
        flux = factors[axis] * k_face * (t[hi] - t[lo])  # into the lower voxel
        fixed_w += float(flux[~fixed[lo] & fixed[hi]].sum())
        fixed_w -= float(flux[fixed[lo] & ~fixed[hi]].sum())
        for upper in (0, 1):
            face = 2 * axis + upper
            if problem.boundary_kind[face] != FIXED_TEMPERATURE:
                continue
            sl = [slice(None)] * 3
            sl[axis] = -1 if upper else 0
            sl = tuple(sl)
            q = 2.0 * factors[axis] * k[sl] * (problem.boundary_temperature_c[face] - t[sl])
            boundary_w += float(q[~fixed[sl]].sum())
    return boundary_w, fixed_w


class _KirchhoffFaces:
    """Face conductivities that reproduce cryoplan's fluxes: Kirchhoff secant within a
    material, harmonic mean of k(φ(T)) across materials, secant to T_b on held outer faces."""

    def __init__(self, mesh: Grid3D, problem: ThermalProblem, mc: Material) -> None:
        ids = mesh.faceCellIDs
        self.a = np.asarray(ids[0].filled(0))
        b = ids[1]
        self.interior = ~np.ma.getmaskarray(b)
        self.b = np.where(self.interior, b.filled(0), self.a)
        material = problem.material.ravel(order="F")
        self.same = material[self.a] == material[self.b]
        self.mc = mc
        self.area_over_h = np.asarray(mesh._faceAreas / mesh._cellDistances)  # A/h (h/2 outside)
        # boundary temperature on held outer faces (NaN elsewhere)
        self.t_boundary = np.full(mesh.numberOfFaces, np.nan)
        centres = mesh.faceCenters.value
        dx, dy, dz = problem.spacing_m
        nx, ny, nz = problem.shape
        extent = (nx * dx, ny * dy, nz * dz)
        for face, kind in enumerate(problem.boundary_kind):
            if kind == FIXED_TEMPERATURE:
                axis, upper = divmod(face, 2)
                where = ~self.interior & np.isclose(centres[axis], extent[axis] if upper else 0.0)
                self.t_boundary[where] = problem.boundary_temperature_c[face]
        self.held = ~np.isnan(self.t_boundary)
        # Φ(T_b) with the material of the boundary cell
        cells = self.a[self.held]
        t_b = self.t_boundary[self.held]
        d = t_b - mc.t_s[cells]
        k_s, k_l = mc.k_s[cells], mc.k_l[cells]
        mushy = k_s * d + (k_l - k_s) * d * d / (2.0 * mc.safe_range[cells])
        phi = np.where(t_b >= mc.t_l[cells], mc.phi_l[cells] + k_l * (t_b - mc.t_l[cells]), mushy)
        self.phi_boundary = np.where(t_b <= mc.t_s[cells], k_s * d, phi)

    def __call__(self, t: np.ndarray, k: np.ndarray) -> np.ndarray:
        phi = self.mc.kirchhoff(t)
        t_a, t_b = t[self.a], t[self.b]
        phi_a, phi_b = phi[self.a], phi[self.b]
        t_b = np.where(self.held, self.t_boundary, t_b)
        phi_b = np.where(self.held, 0.0, phi_b)
        phi_b[self.held] = self.phi_boundary
        dt = t_b - t_a
        small = np.abs(dt) < 1e-6
        secant = (phi_b - phi_a) / np.where(small, 1.0, dt)
        k_a, k_b = k[self.a], k[self.b]
        harmonic = 2.0 * k_a * k_b / (k_a + k_b)
        k_f = np.where(small, 0.5 * (k_a + k_b), secant)
        k_f = np.where(self.same | ~self.interior, k_f, harmonic)
        return np.where(self.interior | self.held, k_f, k_a)

    def flows(self, t: np.ndarray, k: np.ndarray, free: np.ndarray) -> tuple[float, float]:
        """Heat rates [W] into free cells through held outer faces and from fixed cells."""
        flux = self(t, k) * self.area_over_h  # conductance [W/K]
        held = self.held & free[self.a]
        boundary_w = float((flux[held] * (self.t_boundary[held] - t[self.a[held]])).sum())
        inner = self.interior
        a, b = self.a[inner], self.b[inner]
        q = flux[inner] * (t[b] - t[a])  # into a
        fixed_w = float(q[free[a] & ~free[b]].sum() - q[~free[a] & free[b]].sum())
        return boundary_w, fixed_w
