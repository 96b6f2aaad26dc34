"""Fields and isosurfaces out for ParaView: VTK XML ImageData (.vti) and PolyData (.vtp).

`write_vti` writes fields on the simulation grid as point data of a `vtkImageData`;
`write_isosurface_vtp` writes one level set of a field as triangles of a `vtkPolyData`.
Both files are written by VTK's own XML writers (`vtkXMLImageDataWriter`,
`vtkXMLPolyDataWriter`), the counterparts of the readers ParaView opens them with, so the
file layout is VTK's and stays in step with it. VTK is imported only when a file is
written, and only the modules these writers need (not the `vtk` meta-module, which loads
several times more), so `import cryoplan` does not pay for it.

Encoding: the XML header describes the arrays (file format version 1.0,
`header_type="UInt64"`, `compressor="vtkZLibDataCompressor"`); their values follow in one
`<AppendedData encoding="raw">` section as little-endian binary (not base64), compressed
with zlib in VTK's blocks of 32 KiB. Binary is exact (NaN and infinities included), and a
planning grid's smooth fields compress to a small fraction of their raw size.

Geometry is LPS millimetres throughout, as cryoplan's `Grid`. The ImageData carries the
grid's `Origin`, `Spacing` and direction cosines (`Direction`, row-major, as
vtkImageData's direction matrix): VTK places point (i, j, k) at
origin + direction · diag(spacing) · (i, j, k), exactly the grid's affine. A reader older
than VTK 9 ignores `Direction` and shows an oblique volume axis-aligned. The isosurface's
vertices are written already mapped through the full affine.

Values are point data, one per voxel centre. VTK orders points with i fastest, so an
[i, j, k] array goes out as its Fortran-order ravel, with a vector field's components
(a trailing axis) kept together per point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cryoplan.anatomy.grid import Grid

# numpy dtypes written as they are; booleans go out as UInt8, anything else as Float64
VTK_DTYPES = frozenset(
    np.dtype(t)
    for t in (
        np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
        np.float32, np.float64,
    )
)  # fmt: skip


def _vtk_array(values: np.ndarray, name: str, vtk_type: int | None = None) -> Any:
    """A VTK data array of (n,) or (n, components) `values` (of VTK type `vtk_type` if given,
    else the one numpy_to_vtk picks for their dtype)."""
    from vtkmodules.util.numpy_support import numpy_to_vtk  # noqa: PLC0415

    if values.dtype == np.bool_:
        values = values.astype(np.uint8)
    elif values.dtype.newbyteorder("=") not in VTK_DTYPES:
        values = values.astype(np.float64)
    # numpy_to_vtk shares the buffer (and keeps it alive): it must be native and C-ordered
    values = np.ascontiguousarray(values, values.dtype.newbyteorder("="))
    array = numpy_to_vtk(values, deep=False, array_type=vtk_type)
    array.SetName(name)
    return array


def _write(writer: Any, data: Any, path: str | Path) -> None:
    """`data` through `writer` to `path`: binary, appended raw, zlib, UInt64 headers."""
    writer.SetInputData(data)
    writer.SetFileName(str(path))
    writer.SetDataModeToAppended()
    writer.EncodeAppendedDataOff()  # raw bytes, not base64
    writer.SetCompressorTypeToZLib()
    writer.SetHeaderTypeToUInt64()
    writer.SetByteOrderToLittleEndian()
    # VTK reports a failure through error events (printed unless observed) and the return
    # value, never as an exception: the writer's and its executive's errors become one
    from vtkmodules.util.misc import calldata_type  # noqa: PLC0415
    from vtkmodules.vtkCommonCore import VTK_STRING, vtkCommand  # noqa: PLC0415

    errors: list[str] = []

    @calldata_type(VTK_STRING)
    def collect(_caller: Any, _event: str, message: str) -> None:
        errors.append(" ".join(message.split()))

    for source in (writer, writer.GetExecutive()):
        source.AddObserver(vtkCommand.ErrorEvent, collect)
    if writer.Write() != 1 or writer.GetErrorCode() != 0 or errors:
        raise OSError(f"VTK could not write {path}: {'; '.join(errors[:2])}")


def write_vti(path: str | Path, fields: dict[str, np.ndarray], grid: Grid) -> None:
    """Point-data fields on `grid` as VTK XML ImageData, positioned in LPS mm.

    Each field is indexed [i, j, k] with the grid's shape (a trailing axis makes a vector
    field, e.g. shape + (3,)); booleans are written as UInt8. The first field is marked as
    the active scalars, so ParaView colours by it on opening.
    """
    from vtkmodules.vtkCommonDataModel import vtkImageData  # noqa: PLC0415  (heavy)
    from vtkmodules.vtkIOXML import vtkXMLImageDataWriter  # noqa: PLC0415

    shape = tuple(int(n) for n in grid.shape)
    arrays = []
    for name, values in fields.items():
        array = np.asarray(values)
        if array.shape[:3] != shape or array.ndim not in (3, 4):
            raise ValueError(f"field {name!r} has shape {array.shape}, the grid {shape}")
        components = 1 if array.ndim == 3 else array.shape[3]
        # Fortran order: i fastest, then j, then k; a point's components stay together
        flat = array.reshape(-1, components, order="F")
        arrays.append(_vtk_array(flat if components > 1 else flat[:, 0], name))

    image = vtkImageData()
    image.SetDimensions(*shape)
    image.SetOrigin(*(float(v) for v in grid.origin_mm))
    image.SetSpacing(*(float(v) for v in grid.spacing_mm))
    image.SetDirectionMatrix(*(float(v) for v in np.asarray(grid.direction, float).ravel()))
    point_data = image.GetPointData()
    for array in arrays:
        point_data.AddArray(array)
    scalars = [a.GetName() for a in arrays if a.GetNumberOfComponents() == 1]
    if scalars:
        point_data.SetActiveScalars(scalars[0])
    _write(vtkXMLImageDataWriter(), image, path)


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
    from vtkmodules.vtkCommonCore import VTK_ID_TYPE, vtkPoints  # noqa: PLC0415
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData  # noqa: PLC0415
    from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter  # noqa: PLC0415

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

    surface = vtkPolyData()
    vertices = vtkPoints()
    vertices.SetData(_vtk_array(points.astype(np.float64), "Points"))
    surface.SetPoints(vertices)
    triangles = vtkCellArray()
    # VTK's cell offsets start at 0 and end at the connectivity's length
    offsets = 3 * np.arange(len(faces) + 1, dtype=np.int64)
    if not triangles.SetData(
        _vtk_array(offsets, "offsets", VTK_ID_TYPE),
        _vtk_array(faces.ravel(), "connectivity", VTK_ID_TYPE),
    ):
        raise RuntimeError("VTK refused the triangles' offsets and connectivity")
    surface.SetPolys(triangles)
    surface.GetPointData().SetNormals(_vtk_array(normals, "Normals"))
    _write(vtkXMLPolyDataWriter(), surface, path)
