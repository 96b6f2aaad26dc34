"""Protocol → schedule: phases in order, per-probe drives, named probes."""

from __future__ import annotations

import pytest

from cryoplan.case import case_from_dict
from cryoplan.errors import CaseError
from cryoplan.protocol import build_schedule
from cryoplan.thermal.problem import DriveKind

BASE = {
    "domain": {"box": {"size_mm": [40, 40, 40], "tissue": "gel"}},
    "probes": [
        {"name": "a", "model": "generic-17g", "tip_mm": [0, 0, 0], "entry_mm": [0, 0, 50]},
        {"name": "b", "model": "generic-2.4mm", "tip_mm": [5, 0, 0], "entry_mm": [5, 0, 50]},
    ],
}


def test_phases_follow_each_other_and_drive_the_named_probes() -> None:
    case = case_from_dict(
        BASE
        | {
            "protocol": [
                {"phase": "freeze", "duration_min": 10},
                {"phase": "passive_thaw", "duration_s": 120},
                {"phase": "freeze", "duration_min": 5, "probes": ["b"]},
                {"phase": "active_thaw", "duration_min": 1},
            ]
        }
    )
    s = build_schedule(case)
    assert [(x.start_s, x.end_s) for x in s] == [(0, 600), (600, 720), (720, 1020), (1020, 1080)]
    assert [d.kind for d in s[0].drives] == [DriveKind.WALL, DriveKind.GAS]
    assert s[0].drives[0].temperature_at(100.0) == -140.0  # catalogue wall temperature
    assert s[0].drives[1].film_coefficient_w_m2k == 2000.0
    assert [d.kind for d in s[1].drives] == [DriveKind.OFF, DriveKind.OFF]
    assert [d.kind for d in s[2].drives] == [DriveKind.OFF, DriveKind.GAS]
    assert s[2].drives[1].phase_start_s == 720.0  # the cooling curve restarts each freeze
    assert [d.temperature_at(1030.0) for d in s[3].drives] == [15.0, 15.0]  # helium thaw


def test_inline_probe_needs_a_thaw_temperature_for_an_active_thaw() -> None:
    data = BASE | {
        "probes": [
            {
                "diameter_mm": 1.5,
                "active_length_mm": 20,
                "wall_temperature_c": -150,
                "tip_mm": [0, 0, 0],
                "entry_mm": [0, 0, 50],
            }
        ],
        "protocol": [
            {"phase": "freeze", "duration_min": 1},
            {"phase": "active_thaw", "duration_min": 1},
        ],
    }
    with pytest.raises(CaseError, match=r"probes\[0\]\.active_thaw_temperature_c"):
        build_schedule(case_from_dict(data))
