"""Fields and isosurfaces out for ParaView: VTK XML ImageData (.vti) and PolyData (.vtp).

The files are written here with numpy and the standard library's XML writer, in VTK's ASCII
encoding, rather than through a library:

- `vtk` (the wheel is ~100 MB) and `pyvista` (which needs it) are far heavier than two small
  XML formats;
- `meshio` writes unstructured meshes only, no ImageData;
- `pyevtk` writes ImageData without the `Direction` attribute, so an oblique patient image
  would come out axis-aligned.

ASCII is exact (floats are written with enough digits to round-trip) and readable by every
VTK XML reader; its cost is size, about 10 bytes per value: fine for a planning grid, large
for a 512³ image.

Geometry is LPS millimetres throughout, as cryoplan's `Grid`. ImageData carries `Origin`,
`Spacing` and, for an oblique grid, `Direction` (row-major, as vtkImageData's direction
matrix): VTK ≥ 9 places point (i, j, k) at origin + direction · diag(spacing) · (i, j, k),
exactly the grid's affine; an older reader ignores `Direction` and shows the volume
axis-aligned. The isosurface needs no such care: its vertices are written already mapped
through the full affine.

Values are point data, one per voxel centre; VTK orders points with i fastest, which is a
Fortran-order ravel of an [i, j, k] array.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from skimage import measure

from cryoplan.anatomy.grid import Grid

VTK_TYPES = {
    np.dtype(np.int8): "Int8",
    np.dtype(np.uint8): "UInt8",
    np.dtype(np.int16): "Int16",
    np.dtype(np.uint16): "UInt16",
    np.dtype(np.int32): "Int32",
    np.dtype(np.uint32): "UInt32",
    np.dtype(np.int64): "Int64",
    np.dtype(np.uint64): "UInt64",
    np.dtype(np.float32): "Float32",
    np.dtype(np.float64): "Float64",
}


def _numbers(values: np.ndarray) -> str:
    """Values as VTK ASCII text: integers as such, floats with round-trip precision."""
    flat = values.ravel()
    if flat.dtype == np.float32:
        return " ".join(f"{v:.9g}" for v in flat.tolist())
    return " ".join(map(repr if flat.dtype.kind == "f" else str, flat.tolist()))


def _data_array(parent: ET.Element, values: np.ndarray, name: str, components: int) -> None:
    """A `<DataArray format="ascii">` of (n, components) values under `parent`."""
    if values.dtype == np.bool_:
        values = values.astype(np.uint8)
    if values.dtype not in VTK_TYPES:
        values = values.astype(np.float64)
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: VTK's ASCII readers cannot parse NaN or infinity")
    element = ET.SubElement(
        parent,
        "DataArray",
        type=VTK_TYPES[values.dtype],
        Name=name,
        NumberOfComponents=str(components),
        format="ascii",
    )
    element.text = _numbers(values)


def _vector(values: np.ndarray) -> str:
    return " ".join(repr(float(v)) for v in np.asarray(values, float).ravel())


def _write(path: Path, root: ET.Element) -> None:
    tree = ET.ElementTree(root)
    ET.indent(tree, space="  ")
    tree.write(path, encoding="utf-8", xml_declaration=True)


def write_vti(path: str | Path, fields: dict[str, np.ndarray], grid: Grid) -> None:
    """Point-data fields on `grid` as VTK XML ImageData, positioned in LPS mm.

    Each field is indexed [i, j, k] with the grid's shape (a trailing axis makes a vector
    field, e.g. shape + (3,)); booleans are written as UInt8. The first field is marked as
    the active scalars, so ParaView colours by it on opening.
    """
    shape = tuple(grid.shape)
    direction = np.asarray(grid.direction, float)
    extent = " ".join(f"0 {n - 1}" for n in shape)
    root = ET.Element("VTKFile", type="ImageData", version="1.0", byte_order="LittleEndian")
    image = ET.SubElement(
        root,
        "ImageData",
        WholeExtent=extent,
        Origin=_vector(grid.origin_mm),
        Spacing=_vector(grid.spacing_mm),
    )
    if not np.allclose(direction, np.eye(3), rtol=0.0, atol=1e-12):
        image.set("Direction", _vector(direction))  # row-major, read by VTK ≥ 9
    piece = ET.SubElement(image, "Piece", Extent=extent)
    point_data = ET.SubElement(piece, "PointData")
    for name, values in fields.items():
        array = np.asarray(values)
        if array.shape[:3] != shape or array.ndim not in (3, 4):
            raise ValueError(f"field {name!r} has shape {array.shape}, the grid {shape}")
        components = 1 if array.ndim == 3 else array.shape[3]
        # Fortran order: i fastest, then j, then k; components stay together per point.
        _data_array(point_data, array.reshape(-1, components, order="F"), name, components)
        if "Scalars" not in point_data.attrib and components == 1:
            point_data.set("Scalars", name)
    ET.SubElement(piece, "CellData")
    _write(Path(path), root)


def write_isosurface_vtp(path: str | Path, field: np.ndarray, level: float, grid: Grid) -> None:
    """The surface `field == level` (marching cubes) as VTK XML PolyData in LPS mm.

    Vertices are mapped from index space through the grid's full affine (spacing and
    direction), normals through its inverse transpose. Normals and triangle winding (counter-
    clockwise seen from the side the normal points to) both point toward higher field values
    — out of a cold zone `T < level` — even if the direction matrix is a reflection, so
    ParaView shades the surface consistently. The surface is not closed where it meets
    the edge of the grid (as ParaView's own Contour filter). A level outside the field's
    range gives an empty surface, which ParaView opens as such.
    """
    values = np.asarray(field, np.float64)
    if values.shape != tuple(grid.shape):
        raise ValueError(f"field has shape {values.shape}, the grid {tuple(grid.shape)}")
    if np.nanmin(values) < level < np.nanmax(values):
        verts, faces, normals, _ = measure.marching_cubes(
            values, level=level, allow_degenerate=False
        )
    else:
        verts, faces, normals = np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3))
    linear = np.asarray(grid.direction, float) @ np.diag(grid.spacing_mm)
    points = grid.lps_from_index(verts)
    # scikit-image's normals point toward lower values, its winding toward higher ones; the
    # normals are turned to agree. Row vectors: n_lps = linear⁻ᵀ · n_index.
    normals = -normals @ np.linalg.inv(linear)
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = normals / np.where(lengths > 0.0, lengths, 1.0)
    faces = np.asarray(faces, np.int64)
    if np.linalg.det(linear) < 0.0:  # a reflection turns the winding over: turn it back
        faces = faces[:, ::-1]

    root = ET.Element("VTKFile", type="PolyData", version="1.0", byte_order="LittleEndian")
    poly = ET.SubElement(root, "PolyData")
    piece = ET.SubElement(
        poly,
        "Piece",
        NumberOfPoints=str(len(points)),
        NumberOfVerts="0",
        NumberOfLines="0",
        NumberOfStrips="0",
        NumberOfPolys=str(len(faces)),
    )
    point_data = ET.SubElement(piece, "PointData", Normals="Normals")
    _data_array(point_data, normals, "Normals", 3)
    _data_array(ET.SubElement(piece, "Points"), points, "Points", 3)
    polys = ET.SubElement(piece, "Polys")
    _data_array(polys, faces, "connectivity", 1)
    _data_array(polys, 3 * np.arange(1, len(faces) + 1, dtype=np.int64), "offsets", 1)
    _write(Path(path), root)
