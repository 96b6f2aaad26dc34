"""Probes: catalogue, kernel coupling, and independence from how a probe lines up with voxels."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy import ndimage

from cryoplan.case import case_from_dict
from cryoplan.errors import CaseError
from cryoplan.probes.catalogue import load_catalogue
from cryoplan.probes.coupling import ActiveSegment, couple_probes, equivalent_radius_ratio
from cryoplan.simulation import simulate
from cryoplan.thermal import kernels
from cryoplan.thermal.backend import probe_voxel_index
from cryoplan.thermal.enthalpy import temperature_from_enthalpy
from cryoplan.thermal.materials import (
    H_LIQUIDUS,
    K_FROZEN,
    K_UNFROZEN,
    MaterialRow,
    material_table,
)

EULER_GAMMA = 0.5772156649015329


def test_equivalent_radius_tends_to_the_continuum_value() -> None:
    # Continuum Gaussian-spread line sink: r_e = 2σ e^(−γ/2) ≈ 1.4986σ. The discrete value
    # approaches it as the kernel is resolved by more voxels (truncation at 3σ costs ~1 %).
    continuum = 2 * math.exp(-EULER_GAMMA / 2)
    assert equivalent_radius_ratio(5.0) == pytest.approx(continuum, rel=0.015)
    coarse, fine = equivalent_radius_ratio(1.0), equivalent_radius_ratio(3.0)
    assert coarse < fine < continuum


def test_kernel_weights_are_normalised_and_avoid_fixed_voxels() -> None:
    shape = (20, 20, 20)
    fixed = np.zeros(shape, bool)
    fixed[12:, :, :] = True  # a "vessel" beside the probe
    seg = ActiveSegment((9.3, 10.1, 4.0), (9.3, 10.1, 15.0), 0.75e-3)
    c = couple_probes([seg], shape, (1e-3,) * 3, fixed)
    sums = np.add.reduceat(c.weight, c.sample_start[:-1])
    np.testing.assert_allclose(sums, 1.0, rtol=1e-12)
    assert not fixed.reshape(-1)[c.voxel_index].any()
    # the samples' wall areas add up to the whole active wall, 2π r_w · 11 mm
    total_length = float(np.sum(c.wall_area_m2) / (2 * math.pi * 0.75e-3))
    assert total_length == pytest.approx(11e-3, rel=1e-9)


def test_catalogue_values_carry_sources() -> None:
    for name, model in load_catalogue().probes.items():
        for field in ("diameter_mm", "active_length_mm", "cooling", "active_thaw_temperature_c"):
            assert model.sources.get(field), f"{name}: {field} has no source"


# --- the same probe along an axis and along an oblique direction -----------------------------
ISOTHERMS = (0.0, -20.0, -40.0)


def single_probe_case(direction: tuple[float, float, float]) -> dict:
    """An inline probe whose 30 mm active length is centred on the origin of a gel box."""
    u = np.asarray(direction, float) / np.linalg.norm(direction)
    tip = -15.0 * u + np.array([0.37, -0.21, 0.13])  # off the voxel centres on purpose
    entry = tip + 100.0 * u
    return {
        "name": "orientation",
        "domain": {"box": {"size_mm": [56, 56, 56], "tissue": "gel"}},
        "grid": {"spacing_mm": 1.0},
        "probes": [
            {
                "diameter_mm": 1.5,
                "active_length_mm": 30,
                "wall_temperature_c": -150,
                "tip_mm": tip.tolist(),
                "entry_mm": entry.tolist(),
            }
        ],
        "protocol": [{"phase": "freeze", "duration_min": 5}],
        "output": {"sensor_interval_s": 60},
    }


def isotherm_radii_mm(direction: tuple[float, float, float]) -> dict[float, float]:
    """Mean radius of each isotherm of T_min in the plane through the active length's middle.

    T_min is sampled (trilinearly) along 16 rays perpendicular to the probe; each ray's
    crossing of the isotherm is interpolated linearly.
    """
    case = case_from_dict(single_probe_case(direction))
    result = simulate(case)
    grid = result.grid
    probe = result.probes[0]
    u = (probe.active_end_mm - probe.tip_mm) / np.linalg.norm(probe.active_end_mm - probe.tip_mm)
    mid = 0.5 * (probe.tip_mm + probe.active_end_mm)
    a = np.cross(u, [0.0, 0.0, 1.0] if abs(u[2]) < 0.9 else [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(u, a)
    radii = np.linspace(0.0, 25.0, 2501)
    out: dict[float, list[float]] = {t: [] for t in ISOTHERMS}
    for phi in np.linspace(0, 2 * np.pi, 16, endpoint=False):
        ray = mid + radii[:, None] * (np.cos(phi) * a + np.sin(phi) * b)
        tmin = ndimage.map_coordinates(
            result.history.minimum_temperature_c, grid.index_from_lps(ray).T, order=1
        )
        for t in ISOTHERMS:
            k = int(np.argmax(tmin > t))  # first sample above the isotherm
            r0, r1, t0, t1 = radii[k - 1], radii[k], tmin[k - 1], tmin[k]
            out[t].append(float(r0 + (t - t0) * (r1 - r0) / (t1 - t0)))
    return {t: float(np.mean(v)) for t, v in out.items()}


@pytest.mark.slow
def test_oblique_probe_gives_the_same_ice_ball_as_an_axis_aligned_one() -> None:
    aligned = isotherm_radii_mm((0.0, 0.0, 1.0))
    oblique = isotherm_radii_mm((0.62, -0.41, 0.67))
    for t in ISOTHERMS:
        assert aligned[t] > 2.0  # the isotherm exists and is resolved
        assert abs(aligned[t] - oblique[t]) < 0.5, (t, aligned, oblique)


def test_probe_outside_the_domain_is_a_case_error() -> None:
    data = single_probe_case((0.0, 0.0, 1.0))
    data["probes"][0]["tip_mm"] = [0.0, 0.0, -40.0]  # 12 mm below the box
    data["probes"][0]["entry_mm"] = [0.0, 0.0, 60.0]
    case = case_from_dict(data, "case.yaml")
    with pytest.raises(CaseError, match=r"case\.yaml: probes\[0\]\.tip_mm: .*outside the domain"):
        simulate(case)


# the probe kernels are helpers, called only from compiled code: these call them from here
@numba.njit
def _probe_exchange(*args) -> None:
    kernels.probe_exchange(*args)


@numba.njit
def _spread_probe_heat(*args) -> float:
    return kernels.spread_probe_heat(*args)


def test_probe_exchange_and_spread_gathered_per_voxel_match_the_entries() -> None:
    """The probe kernels take T and k once per voxel and spread heat per voxel; against the
    sums over kernel entries, on overlapping random kernels with a film-limited sample."""
    rng = np.random.default_rng(3)
    props = material_table(
        [
            MaterialRow(2.0, 0.5, 1.8e6, 3.6e6, 2.5e8, -8.0, -1.0, 2000.0, 0.0, -40.0),
            MaterialRow(2.2, 0.6, 1.9e6, 3.7e6, 2.6e8, -7.0, -1.0, 0.0, 0.0, -40.0),
        ]
    )
    n_voxels, n_samples = 60, 7
    material = rng.integers(0, 2, n_voxels).astype(np.uint8)
    enthalpy = rng.uniform(-1e8, 4e8, n_voxels)
    sizes = rng.integers(3, 20, n_samples)
    sample_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    voxel_index = np.concatenate([rng.choice(n_voxels, k, replace=False) for k in sizes])
    weight = rng.uniform(0.1, 1.0, voxel_index.size)
    shape_factor = rng.uniform(1e-3, 5e-3, n_samples)
    wall_area = rng.uniform(1e-6, 5e-6, n_samples)
    drive = rng.uniform(-180.0, 20.0, n_samples)
    film = np.where(np.arange(n_samples) == 2, 500.0, np.inf)
    active = np.arange(n_samples) != 4
    voxels, entry_voxel, voxel_start, voxel_sample, voxel_weight = probe_voxel_index(
        sample_start, voxel_index.astype(np.int64), weight
    )
    scratch = np.empty((2, voxels.size))
    heat_out = np.empty(n_samples)
    _probe_exchange(
        enthalpy, material, props, sample_start, weight, shape_factor, wall_area, drive, film,
        active, voxels, entry_voxel, scratch, heat_out,
    )  # fmt: skip

    expected = np.zeros(n_samples)
    for s in np.flatnonzero(active):
        entries = range(sample_start[s], sample_start[s + 1])
        t_s = k_s = 0.0
        for e in entries:
            p = props[material[voxel_index[e]]]
            h = enthalpy[voxel_index[e]]
            t_s += weight[e] * temperature_from_enthalpy(h, p)
            fraction = min(max(h / p[H_LIQUIDUS], 0.0), 1.0)
            k_s += weight[e] * (p[K_FROZEN] + fraction * (p[K_UNFROZEN] - p[K_FROZEN]))
        g = k_s * shape_factor[s]
        if np.isfinite(film[s]):
            g = g * film[s] * wall_area[s] / (g + film[s] * wall_area[s])
        expected[s] = g * (t_s - drive[s])
    assert np.allclose(heat_out, expected, rtol=1e-12)
    assert heat_out[4] == 0.0  # the inactive sample
    assert np.count_nonzero(heat_out) == n_samples - 1

    spread = enthalpy.copy()
    total_w = _spread_probe_heat(
        spread, heat_out, voxels, voxel_start, voxel_sample, voxel_weight, 2.0, 1e-9
    )
    by_entry = enthalpy.copy()
    np.subtract.at(by_entry, voxel_index, 2.0 / 1e-9 * weight * np.repeat(heat_out, sizes))
    assert np.allclose(spread, by_entry, rtol=1e-12, atol=1e-3)
    assert not np.allclose(spread, enthalpy)
    assert math.isclose(total_w, -heat_out.sum(), rel_tol=1e-12)
