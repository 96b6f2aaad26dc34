"""Tissue library: thermal and biological properties per tissue, each with its source."""

from cryoplan.tissues.library import (
    VALUE_FIELDS,
    Ice,
    Tissue,
    TissueSpec,
    complete_tissue,
    load_library,
    merge_tissue,
)

__all__ = [
    "VALUE_FIELDS",
    "Ice",
    "Tissue",
    "TissueSpec",
    "complete_tissue",
    "load_library",
    "merge_tissue",
]
