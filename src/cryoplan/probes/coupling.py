"""Probes thinner than a voxel: sampled line sinks spread by a smooth kernel (well index).

A probe's active length is cut into samples of length ds. Each sample is spread onto the
grid with a truncated Gaussian kernel of width σ = max(h, r_w), separable along the axes,
and exchanges heat with the probe through the well-index conductance

    G = 2π k ds / ln(r_e / r_w)        [W/K]

(Peaceman's well model). r_e is the *equivalent radius* of the discrete kernel: the radius at
which the exact line-sink solution equals the kernel-weighted grid temperature. For a
Gaussian kernel in the continuum r_e = 2σ·e^(−γ/2) ≈ 1.499σ; on the grid it is a little
smaller, so it is measured here by solving the discrete 2-D problem (`equivalent_radius_ratio`).

Why this way: a smooth kernel of width ≥ h makes the kernel's self-influence (and so r_e)
almost independent of where the probe crosses a voxel (Σ w² nearly translation invariant),
so an oblique probe and an axis-aligned one give the same ice ball. A "voxels whose centre
lies inside the probe" rule gives a staircase that depends on alignment instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from cryoplan.thermal.problem import ProbeCoupling

KERNEL_TRUNCATION_SIGMAS = 3.0  # weights beyond 3σ (< 1.2 % of the peak) are dropped
SAMPLES_PER_SIGMA = 2.0  # sample spacing ds ≤ σ/2: the line of blobs is smooth along the probe


@dataclass(frozen=True)
class ActiveSegment:
    """The freezing part of one probe in grid index coordinates (voxel centres at integers)."""

    start_index: tuple[float, float, float]  # the tip
    end_index: tuple[float, float, float]  # tip + active length towards the entry
    radius_m: float


def kernel_width_m(spacing_m: tuple[float, float, float], radius_m: float) -> float:
    """σ = max(largest spacing, probe radius): resolved by the grid and wider than the probe."""
    return max(*spacing_m, radius_m)


@lru_cache(maxsize=64)
def equivalent_radius_ratio(sigma_over_h: float) -> float:
    """r_e/σ of the Gaussian-spread line sink on the 5-point grid, averaged over offsets.

    Solves −∇²u = δ_σ on a square of half-width 30σ (u = 0 outside) for a line sink spread by
    the kernel, reads the kernel-weighted value u_I at the line, fits the far field
    u = −ln(r)/2π + c on the ring 6σ < r < 12σ, and returns exp(−2π (u_I − c))/σ.
    """
    h = 1.0 / sigma_over_h  # in units of σ
    half = math.ceil(30.0 / h)
    n = 2 * half + 1
    xs = (np.arange(n) - half) * h
    lap_1d = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]) / h**2
    eye = sp.identity(n)
    laplacian = (sp.kron(lap_1d, eye) + sp.kron(eye, lap_1d)).tocsc()
    solve = spla.factorized(laplacian)
    ratios = []
    for ox, oy in ((0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.25, 0.1)):
        wx = _kernel_weights_1d(xs, ox * h, 1.0)
        wy = _kernel_weights_1d(xs, oy * h, 1.0)
        w = np.outer(wx, wy)
        u = solve(w.ravel() / h**2).reshape(n, n)
        u_line = float((w * u).sum())
        x, y = np.meshgrid(xs - ox * h, xs - oy * h, indexing="ij")
        r = np.hypot(x, y)
        ring = (r > 6.0) & (r < 12.0)
        c = float(np.mean(u[ring] + np.log(r[ring]) / (2 * np.pi)))
        ratios.append(math.exp(-2 * np.pi * (u_line - c)))
    return float(np.mean(ratios))


def _kernel_weights_1d(coords: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    """Normalised truncated Gaussian weights at `coords` around `centre`."""
    d = coords - centre
    w = np.exp(-0.5 * (d / sigma) ** 2)
    w[np.abs(d) > KERNEL_TRUNCATION_SIGMAS * sigma] = 0.0
    total = w.sum()
    return w / total if total > 0 else w


def couple_probes(
    segments: list[ActiveSegment],
    shape: tuple[int, int, int],
    spacing_m: tuple[float, float, float],
    fixed: np.ndarray,
) -> ProbeCoupling:
    """Build the sampled, kernel-spread representation of the probes on the grid.

    Voxels with a prescribed temperature (vessels) are left out of every kernel, which is
    then renormalised, so that probe heat is never dumped into a voxel that cannot hold it.
    """
    if not segments:
        return ProbeCoupling.empty()
    spacing = np.asarray(spacing_m, float)
    starts: list[int] = [0]
    voxels: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    shape_factor: list[float] = []
    wall_area: list[float] = []
    owner: list[int] = []
    fixed_flat = np.asarray(fixed, bool).reshape(-1)
    for p, seg in enumerate(segments):
        sigma = kernel_width_m(spacing_m, seg.radius_m)
        r_e = equivalent_radius_ratio(round(sigma / float(spacing.max()), 3)) * sigma
        a = np.asarray(seg.start_index, float)
        b = np.asarray(seg.end_index, float)
        length_m = float(np.linalg.norm((b - a) * spacing))
        n_samples = max(1, math.ceil(length_m / (sigma / SAMPLES_PER_SIGMA)))
        ds = length_m / n_samples
        factor = 2 * math.pi * ds / math.log(r_e / seg.radius_m)
        for s in range(n_samples):
            centre = a + (s + 0.5) / n_samples * (b - a)
            idx, w = _sample_kernel(centre, sigma, shape, spacing)
            keep = ~fixed_flat[idx]
            idx, w = idx[keep], w[keep]
            if w.sum() <= 0:
                continue
            voxels.append(idx)
            weights.append(w / w.sum())
            starts.append(starts[-1] + idx.size)
            shape_factor.append(factor)
            wall_area.append(2 * math.pi * seg.radius_m * ds)
            owner.append(p)
    return ProbeCoupling(
        sample_start=np.asarray(starts, np.int64),
        voxel_index=np.concatenate(voxels).astype(np.int64) if voxels else np.zeros(0, np.int64),
        weight=np.concatenate(weights) if weights else np.zeros(0),
        shape_factor_m=np.asarray(shape_factor),
        wall_area_m2=np.asarray(wall_area),
        probe_of_sample=np.asarray(owner, np.int64),
        n_probes=len(segments),
    )


def _sample_kernel(
    centre_index: np.ndarray, sigma_m: float, shape: tuple[int, int, int], spacing: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Flat voxel indices and weights of one sample's separable Gaussian kernel."""
    axes_idx = []
    axes_w = []
    for ax in range(3):
        reach = math.ceil(KERNEL_TRUNCATION_SIGMAS * sigma_m / spacing[ax])
        c = centre_index[ax]
        lo = max(0, math.floor(c) - reach)
        hi = min(shape[ax] - 1, math.ceil(c) + reach)
        ii = np.arange(lo, hi + 1)
        w = _kernel_weights_1d(ii * spacing[ax], c * spacing[ax], sigma_m)
        nz = w > 0
        axes_idx.append(ii[nz])
        axes_w.append(w[nz])
    gi, gj, gk = np.meshgrid(*axes_idx, indexing="ij")
    w3 = axes_w[0][:, None, None] * axes_w[1][None, :, None] * axes_w[2][None, None, :]
    flat = np.ravel_multi_index((gi.ravel(), gj.ravel(), gk.ravel()), shape)
    return flat.astype(np.int64), w3.ravel()
