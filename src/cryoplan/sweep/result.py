"""A sample's result, and its file in the results folder (`.npz`: metrics as JSON, T_min as
float32, the lethal zone as packed bits, the error)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)  # arrays: compared by identity
class SampleResult:
    """A sample's metrics and fields, or its error (then `tmin_c` and `lethal` are None)."""

    key: str
    metrics: dict[str, Any]
    tmin_c: np.ndarray | None  # float32, the simulation grid
    lethal: np.ndarray | None  # bool, the simulation grid
    error: str | None = None
    # the error may not be the sample's own (a failure of the code, a worker lost): a rerun
    # of the sweep runs the sample again
    retry: bool = False


@dataclass(frozen=True)
class EncodedSample:
    """A sample's file content, made where the sample ran."""

    key: str
    error: str | None
    data: bytes
    retry: bool = False


def encode(result: SampleResult) -> bytes:
    """The sample's file content (compressed npz)."""
    arrays: dict[str, Any] = {
        "metrics": np.array(json.dumps(result.metrics)),
        "error": np.array(result.error or ""),
    }
    if result.tmin_c is not None and result.lethal is not None:
        arrays["tmin_c"] = result.tmin_c
        arrays["lethal"] = np.packbits(result.lethal, axis=None)
        arrays["shape"] = np.asarray(result.lethal.shape)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def decode(key: str, file, fields: bool = True) -> SampleResult:
    """A sample from its file (its fields only if `fields`)."""
    with np.load(file) as data:
        metrics = json.loads(str(data["metrics"]))
        error = str(data["error"]) or None
        tmin = lethal = None
        if fields and "tmin_c" in data:
            shape = tuple(int(n) for n in data["shape"])
            tmin = data["tmin_c"]
            bits = np.unpackbits(data["lethal"], count=int(np.prod(shape)))
            lethal = bits.reshape(shape).astype(bool)
    return SampleResult(key, metrics, tmin, lethal, error)
