"""The tissue library: complete, physically sane, and every value sourced."""

from __future__ import annotations

import pytest

from cryoplan.case import case_from_dict
from cryoplan.errors import CaseError
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
    # the temperature-dependent frozen capacity stays positive down to absolute zero
    assert t.coldest_capacity_j_m3k(load_library().ice) > 0.0


def test_blood_properties_are_sourced() -> None:
    blood = load_library().blood
    assert blood.temperature_c == 37.0
    assert set(blood.sources) == {"volumetric_heat_capacity_j_m3k", "temperature_c"}


def test_ice_fraction_follows_the_latent_heat_and_sets_the_frozen_slopes() -> None:
    library = load_library()
    ice = library.ice
    agar = complete_tissue("agar", library.tissues["agar"])
    liver = complete_tissue("liver", library.tissues["liver"])
    assert agar.ice_fraction == 1.0  # water: all of it freezes (3.3e8 ≥ ice's 3.06e8 J/m³)
    assert liver.ice_fraction == pytest.approx(1.62e8 / 3.059e8)
    assert "[D]" in liver.sources["ice_fraction"]
    assert liver.frozen_slopes(ice) == pytest.approx(
        (liver.ice_fraction * 0.0163, liver.ice_fraction * 6525.0)
    )


def test_a_frozen_capacity_too_small_for_its_ice_is_a_one_line_case_error() -> None:
    data = {
        "domain": {"box": {"size_mm": [20, 20, 20], "tissue": "gel"}},
        "tissues": {"gel": {"heat_capacity_j_m3k": {"unfrozen": 4.18e6, "frozen": 1.0e6}}},
    }
    assert case_from_dict(data, "weak.yaml")  # constant frozen properties: no slope, no limit
    data["frozen_properties"] = "temperature_dependent"
    with pytest.raises(CaseError) as error:
        case_from_dict(data, "weak.yaml")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("weak.yaml: tissues.gel.heat_capacity_j_m3k.frozen: ")
    assert "ice_fraction" in message
    # the same tissue with less ice is accepted
    data["tissues"]["gel"]["ice_fraction"] = 0.5
    assert case_from_dict(data, "weak.yaml").resolved_tissues["gel"].ice_fraction == 0.5
