"""Fields and isosurfaces out for ParaView: VTK XML ImageData (.vti) and PolyData (.vtp).

The files are written here with numpy, zlib and the standard library's XML writer rather
than through a library:

- `vtk` (the wheel is ~100 MB) and `pyvista` (which needs it) are far heavier than two small
  XML formats;
- `meshio` writes unstructured meshes only, no ImageData;
- `pyevtk` writes ImageData without the `Direction` attribute, so an oblique patient image
  would come out axis-aligned.

Encoding: the XML header describes the arrays, whose values follow in one `AppendedData`
section as raw little-endian binary, each array compressed with zlib, as VTK's own writers
do by default (file format version 1.0, `header_type="UInt64"`,
`compressor="vtkZLibDataCompressor"`). Binary is exact and about a tenth of the ASCII
encoding's size before compression (10 bytes per value in ASCII); a planning grid's fields
shrink from megabytes to the size of what actually varies.

Each array's data is its compression header followed by its compressed blocks:

    [#blocks][#u-size][#p-size][#c-size-1]…[#c-size-#blocks] block-1 … block-#blocks

all UInt64: the number of blocks, the uncompressed size of a block (`BLOCK_BYTES`), the
uncompressed size of the last block if it is partial (0 when it is full), and each block's
compressed size. A DataArray's `offset` counts bytes from the first byte after the `_` that
opens the appended section.

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
import zlib
from pathlib import Path

import numpy as np

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
BLOCK_BYTES = 1 << 15  # VTK's default compression block (32 KiB)
ZLIB_LEVEL = 6  # zlib's default: most of level 9's gain on smooth fields, at a third the time
HEADER_TYPE = np.dtype("<u8")  # header_type="UInt64"


def compressed(data: bytes) -> bytes:
    """One array's appended data: compression header, then its zlib-compressed blocks."""
    blocks = [
        zlib.compress(data[start : start + BLOCK_BYTES], ZLIB_LEVEL)
        for start in range(0, len(data), BLOCK_BYTES)
    ]
    header = [len(blocks), BLOCK_BYTES, len(data) % BLOCK_BYTES, *map(len, blocks)]
    return np.asarray(header, HEADER_TYPE).tobytes() + b"".join(blocks)


class _Appended:
    """The appended section being assembled: arrays' data in order, and their offsets."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, parent: ET.Element, values: np.ndarray, name: str, components: int) -> None:
        """A `<DataArray format="appended">` of (n, components) values under `parent`."""
        if values.dtype == np.bool_:
            values = values.astype(np.uint8)
        if values.dtype not in VTK_TYPES:
            values = values.astype(np.float64)
        ET.SubElement(
            parent,
            "DataArray",
            type=VTK_TYPES[values.dtype],
            Name=name,
            NumberOfComponents=str(components),
            format="appended",
            offset=str(self.size),
        )
        little = values.astype(values.dtype.newbyteorder("<"), copy=False)
        chunk = compressed(np.ascontiguousarray(little).tobytes())
        self.chunks.append(chunk)
        self.size += len(chunk)

    def write(self, path: Path, root: ET.Element) -> None:
        """The XML description, then the appended raw data, into one file."""
        ET.indent(root, space="  ")
        text = ET.tostring(root, encoding="unicode")
        closing = "</VTKFile>"
        assert text.endswith(closing)
        with path.open("wb") as f:
            f.write(b'<?xml version="1.0" encoding="utf-8"?>\n')
            f.write(text[: -len(closing)].encode("utf-8"))
            f.write(b'  <AppendedData encoding="raw">\n    _')
            for chunk in self.chunks:
                f.write(chunk)
            f.write(b"\n  </AppendedData>\n</VTKFile>\n")


def _root(kind: str) -> ET.Element:
    return ET.Element(
        "VTKFile",
        type=kind,
        version="1.0",
        byte_order="LittleEndian",
        header_type="UInt64",
        compressor="vtkZLibDataCompressor",
    )


def _vector(values: np.ndarray) -> str:
    return " ".join(repr(float(v)) for v in np.asarray(values, float).ravel())


def write_vti(path: str | Path, fields: dict[str, np.ndarray], grid: Grid) -> None:
    """Point-data fields on `grid` as VTK XML ImageData, positioned in LPS mm.

    Each field is indexed [i, j, k] with the grid's shape (a trailing axis makes a vector
    field, e.g. shape + (3,)); booleans are written as UInt8. The first field is marked as
    the active scalars, so ParaView colours by it on opening.
    """
    shape = tuple(grid.shape)
    direction = np.asarray(grid.direction, float)
    extent = " ".join(f"0 {n - 1}" for n in shape)
    root = _root("ImageData")
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
    appended = _Appended()
    for name, values in fields.items():
        array = np.asarray(values)
        if array.shape[:3] != shape or array.ndim not in (3, 4):
            raise ValueError(f"field {name!r} has shape {array.shape}, the grid {shape}")
        components = 1 if array.ndim == 3 else array.shape[3]
        # Fortran order: i fastest, then j, then k; components stay together per point.
        appended.add(point_data, array.reshape(-1, components, order="F"), name, components)
        if "Scalars" not in point_data.attrib and components == 1:
            point_data.set("Scalars", name)
    ET.SubElement(piece, "CellData")
    appended.write(Path(path), root)


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
    from skimage import measure  # noqa: PLC0415  (heavy; only isosurfaces need it)

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

    root = _root("PolyData")
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
    appended = _Appended()
    point_data = ET.SubElement(piece, "PointData", Normals="Normals")
    appended.add(point_data, normals, "Normals", 3)
    appended.add(ET.SubElement(piece, "Points"), points, "Points", 3)
    polys = ET.SubElement(piece, "Polys")
    appended.add(polys, faces, "connectivity", 1)
    appended.add(polys, 3 * np.arange(1, len(faces) + 1, dtype=np.int64), "offsets", 1)
    appended.write(Path(path), root)
