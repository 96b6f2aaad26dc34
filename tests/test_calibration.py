"""Calibrated catalogue probes reproduce the published ice balls they were fitted or checked on.

One simulation per set-up, on the fit's 1 mm grid (docs/validation.md). Tolerances are the
measurements' own (stated in `cryoplan.calibration`), fixed before the fit.
"""

from __future__ import annotations

import re
from functools import cache

import pytest

from cryoplan import calibration as cal
from cryoplan.probes.catalogue import load_catalogue
from cryoplan.simulation import SimulationResult

# Measurements a physically plausible parameter cannot meet (docs/validation.md explains);
# kept as strict expected failures so that a model change that meets them is noticed.
NOT_MET = {
    "shah-17g-core": "−40 °C at 1 cm needs more than a −186 °C wall gives in 10 min "
    "(the fit sits at the argon Joule–Thomson bound)",
}


@cache
def result_for(model: str, probe_x_mm: tuple[float, ...]) -> SimulationResult:
    m = next(m for m in cal.MEASUREMENTS if (m.probe_model, m.probe_x_mm) == (model, probe_x_mm))
    return cal.run(m)


@pytest.mark.slow
@pytest.mark.parametrize(
    "m",
    [
        pytest.param(
            m,
            id=m.name,
            marks=[pytest.mark.xfail(strict=True, reason=NOT_MET[m.name])]
            if m.name in NOT_MET
            else [],
        )
        for m in cal.MEASUREMENTS
    ],
)
def test_catalogue_probe_reproduces_measurement(m: cal.Measurement) -> None:
    result = result_for(m.probe_model, m.probe_x_mm)
    simulated = cal.measure(result, m)
    assert abs(simulated - m.measured_mm) <= m.tolerance_mm, (m.name, simulated, m.measured_mm)


MARKER = re.compile(r"\[[SMDA]\]")


def test_calibrated_means_the_fit_meets_its_measurements() -> None:
    """A model whose fit misses a measurement it was fitted on is not labelled calibrated,
    and says why; every model fitted on a measurement carries that fit's provenance."""
    catalogue = load_catalogue().probes
    fitted = {m.probe_model for m in cal.MEASUREMENTS if m.role == "fit"}
    missing = {m.probe_model for m in cal.MEASUREMENTS if m.role == "fit" and m.name in NOT_MET}
    calibrated = {name for name, p in catalogue.items() if p.calibrated}
    assert calibrated == fitted - missing
    for name in missing:
        assert catalogue[name].calibration_note, f"{name}: fitted but missing, with no note why"
    for name in calibrated:
        assert catalogue[name].calibration_note is None


def test_fitted_entries_carry_their_provenance() -> None:
    catalogue = load_catalogue().probes
    fitted = {m.probe_model for m in cal.MEASUREMENTS}
    for name in fitted:
        p = catalogue[name]
        for key in ("diameter_mm", "active_length_mm", "cooling", "active_thaw_temperature_c"):
            assert MARKER.search(p.sources.get(key, "")), f"{name}: {key} has no marked source"
        fit = p.sources.get("fit", "")
        for what in ("data:", "protocol:", "assumptions:", "fitted:", "residuals:", "date:"):
            assert what in fit, f"{name}: the fit provenance lacks {what!r}"
        fitted_on = [m for m in cal.MEASUREMENTS if m.probe_model == name and m.role == "fit"]
        assert fitted_on, f"{name} is measured but no measurement in cryoplan.calibration fits it"
        for m in fitted_on:
            assert m.name in fit, f"{name}: the fit provenance does not name {m.name}"
