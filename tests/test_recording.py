"""Recording: sensors are sampled from the back end's voxels as map_coordinates would."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cryoplan.thermal.stepping import _SensorSampler


class _FieldBackend:
    """A stand-in back end that only answers temperatures of voxels."""

    def __init__(self, field: np.ndarray) -> None:
        self.field = field

    def temperature_at_voxels_c(self, flat_index: np.ndarray) -> np.ndarray:
        return self.field.reshape(-1)[flat_index]


def test_sensor_sampler_matches_linear_map_coordinates() -> None:
    rng = np.random.default_rng(3)
    shape = (5, 1, 7)  # an axis of one voxel, and positions inside, on and beyond the edges
    field = rng.normal(size=shape)
    sensors = np.array(
        [[0.0, 0.0, 0.0], [4.0, 0.0, 6.0], [2.3, 0.4, 5.9], [-1.5, 2.0, 3.25], [4.7, -0.2, 7.5]]
    )
    sensors = np.vstack([sensors, rng.uniform(-1, 8, size=(20, 3))])
    expected = ndimage.map_coordinates(field, sensors.T, order=1, mode="nearest")
    got = _SensorSampler(sensors, shape)(_FieldBackend(field))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_sensor_sampler_without_sensors_returns_nothing() -> None:
    sampler = _SensorSampler(np.zeros((0, 3)), (4, 4, 4))
    assert sampler(_FieldBackend(np.zeros((4, 4, 4)))).shape == (0,)
