"""The tissue library: complete, physically sane, and every value sourced."""

from __future__ import annotations

import pytest

from cryoplan.tissues import VALUE_FIELDS, complete_tissue, load_library

REQUIRED = (
    "gel", "agar", "liver", "kidney", "prostate", "lung", "breast", "fat", "muscle", "tumour",
    "vessel", "bone", "skin",
)  # fmt: skip


def test_library_has_the_tissues_the_issue_asks_for() -> None:
    assert set(REQUIRED) <= set(load_library().tissues)


@pytest.mark.parametrize("name", sorted(load_library().tissues))
def test_every_value_is_present_and_sourced(name: str) -> None:
    spec = load_library().tissues[name]
    assert spec.missing() == [], f"{name} lacks {spec.missing()}"
    for field in VALUE_FIELDS:
        source = spec.sources.get(field, "")
        assert source.strip(), f"{name}.{field} has no source"
        assert any(tag in source for tag in ("[S]", "[M]", "[D]", "[A]")) or "as fat" in source, (
            f"{name}.{field}: the source does not say how sure it is ([S]/[M]/[D]/[A])"
        )


@pytest.mark.parametrize("name", sorted(load_library().tissues))
def test_values_are_physically_sane(name: str) -> None:
    t = complete_tissue(name, load_library().tissues[name])
    # ice conducts better and stores less heat than water
    assert t.conductivity_w_mk.frozen >= t.conductivity_w_mk.unfrozen
    assert t.heat_capacity_j_m3k.frozen < t.heat_capacity_j_m3k.unfrozen
    solidus, liquidus = t.freezing_range_c
    assert -20.0 <= solidus <= liquidus <= 0.0
    assert t.lethal_temperature_c < solidus or t.lethal_temperature_c < 0.0
    # latent heat at most that of pure water, 334 kJ/kg × 1000 kg/m³
    assert 0.0 < t.latent_heat_j_m3 <= 3.34e8


def test_blood_properties_are_sourced() -> None:
    blood = load_library().blood
    assert blood.temperature_c == 37.0
    assert set(blood.sources) == {"volumetric_heat_capacity_j_m3k", "temperature_c"}
