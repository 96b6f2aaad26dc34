"""VTK out: .vti fields and .vtp isosurfaces, read back by parsing their XML and decoding
their appended, zlib-compressed binary data as the VTK XML format lays it out.

The isosurface of a distance field |p − c| at level r is a sphere; marching cubes
interpolates linearly along voxel edges, so its vertices must lie at radius r within half
a voxel (the largest spacing), in LPS millimetres whatever the grid's direction.

Where the `vtk` package is installed (it is not a dependency), the files are also read with
VTK's own XML readers, the ones ParaView uses.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cryoplan.anatomy.grid import Grid
from cryoplan.export.vtk import BLOCK_BYTES, write_isosurface_vtp, write_vti

NUMPY_OF = {
    "Int8": np.int8,
    "UInt8": np.uint8,
    "Int16": np.int16,
    "UInt16": np.uint16,
    "Int32": np.int32,
    "UInt32": np.uint32,
    "Int64": np.int64,
    "UInt64": np.uint64,
    "Float32": np.float32,
    "Float64": np.float64,
}


def rotation_z(degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


ArrayReader = Callable[[ET.Element], np.ndarray]


def parse(path: Path) -> tuple[ET.Element, ArrayReader]:
    """The file's XML (up to its appended data) and a reader of its `DataArray`s.

    The reader decodes an array from the appended section: at `offset` bytes past the `_`, a
    UInt64 header [#blocks, block size, last partial block's size (0: full), compressed size
    of each block], then the zlib-compressed blocks; it checks every block's size.
    """
    raw = path.read_bytes()
    start = raw.index(b'<AppendedData encoding="raw">')
    root = ET.fromstring(raw[:start] + b"</VTKFile>")
    assert root.get("version") == "1.0"
    assert root.get("byte_order") == "LittleEndian"
    assert root.get("header_type") == "UInt64"
    assert root.get("compressor") == "vtkZLibDataCompressor"
    data = raw[raw.index(b"_", start) + 1 :]
    assert data.endswith(b"\n  </AppendedData>\n</VTKFile>\n")

    def array_of(element: ET.Element) -> np.ndarray:
        assert element.get("format") == "appended"
        offset = int(element.attrib["offset"])
        blocks, block_bytes, partial = (int(v) for v in np.frombuffer(data, "<u8", 3, offset))
        sizes = np.frombuffer(data, "<u8", blocks, offset + 24).astype(int)
        position = offset + 24 + 8 * blocks
        values = bytearray()
        for k, size in enumerate(sizes):
            block = zlib.decompress(data[position : position + size])
            assert len(block) == (partial if k == blocks - 1 and partial else block_bytes)
            values += block
            position += size
        dtype = np.dtype(NUMPY_OF[element.attrib["type"]]).newbyteorder("<")
        components = int(element.get("NumberOfComponents", "1"))
        return np.frombuffer(bytes(values), dtype).reshape(-1, components)

    return root, array_of


def floats(text: str) -> np.ndarray:
    return np.array(text.split(), float)


def read_vti(path: Path) -> tuple[ET.Element, dict[str, np.ndarray]]:
    """The ImageData element and its point-data arrays, reshaped back to [i, j, k(, c)]."""
    root, array_of = parse(path)
    assert root.get("type") == "ImageData"
    image = root.find("ImageData")
    assert image is not None
    extent = [int(v) for v in image.attrib["WholeExtent"].split()]
    shape = tuple(extent[1::2][n] - extent[0::2][n] + 1 for n in range(3))
    fields = {}
    for element in image.iterfind("Piece/PointData/DataArray"):
        values = array_of(element)
        full = shape + ((values.shape[1],) if values.shape[1] > 1 else ())
        fields[element.attrib["Name"]] = values.reshape(full, order="F")
    return image, fields


def read_vtp(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points (n, 3), triangles (m, 3) and point normals (n, 3) of a .vtp file."""
    root, array_of = parse(path)
    assert root.get("type") == "PolyData"
    piece = root.find("PolyData/Piece")
    assert piece is not None
    arrays = {e.attrib["Name"]: array_of(e) for e in piece.iter("DataArray")}
    points, normals = arrays["Points"], arrays["Normals"]
    connectivity, offsets = arrays["connectivity"].ravel(), arrays["offsets"].ravel()
    assert len(points) == int(piece.attrib["NumberOfPoints"])
    assert len(offsets) == int(piece.attrib["NumberOfPolys"])
    np.testing.assert_array_equal(offsets, 3 * np.arange(1, len(offsets) + 1))
    assert connectivity.size == 3 * len(offsets)
    return points, connectivity.reshape(-1, 3), normals


def test_vti_fields_and_geometry_round_trip(tmp_path: Path) -> None:
    grid = Grid((5, 4, 3), (0.5, 0.75, 2.0), (-10.0, 20.5, 3.25))
    rng = np.random.default_rng(7)
    fields = {
        "temperature_C": rng.normal(-20.0, 30.0, grid.shape),
        "labels": rng.integers(0, 4, grid.shape).astype(np.int32),
        "lethal": rng.random(grid.shape) > 0.5,
        "fraction": rng.random(grid.shape).astype(np.float32),
        "gradient": rng.normal(size=(*grid.shape, 3)),
    }
    path = tmp_path / "fields.vti"
    write_vti(path, fields, grid)
    image, back = read_vti(path)

    assert image.attrib["WholeExtent"] == "0 4 0 3 0 2"
    np.testing.assert_array_equal(floats(image.attrib["Origin"]), grid.origin_mm)
    np.testing.assert_array_equal(floats(image.attrib["Spacing"]), grid.spacing_mm)
    assert "Direction" not in image.attrib  # axis-aligned: older readers see the same thing
    assert image.find("Piece/PointData").get("Scalars") == "temperature_C"
    assert list(back) == list(fields)
    for name, values in fields.items():
        expected = values.astype(np.uint8) if values.dtype == np.bool_ else values
        assert back[name].dtype == expected.dtype, name
        np.testing.assert_array_equal(back[name], expected, err_msg=name)  # exact in binary
    # The first point is voxel (0, 0, 0), the second voxel (1, 0, 0): i runs fastest.
    _, array_of = parse(path)
    first = array_of(image.find("Piece/PointData/DataArray")).ravel()[:2]  # type: ignore[arg-type]
    temperature = fields["temperature_C"]
    assert first.tolist() == [temperature[0, 0, 0], temperature[1, 0, 0]]


def test_appended_arrays_are_compressed_blocks_laid_end_to_end(tmp_path: Path) -> None:
    """Several blocks with a partial last one; the arrays follow each other with no gap; a
    smooth field compresses far below its raw size (the point of the binary encoding)."""
    grid = Grid((50, 40, 30), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    x, y, z = grid.centres_lps()
    smooth = np.minimum(37.0, np.hypot(x - 25.0, y - 20.0) * 3.0 - 40.0)  # an ice ball's T_min
    labels = (z > 15.0).astype(np.uint8)
    path = tmp_path / "fields.vti"
    write_vti(path, {"tmin": smooth, "labels": labels}, grid)
    image, back = read_vti(path)
    np.testing.assert_array_equal(back["tmin"], smooth)
    np.testing.assert_array_equal(back["labels"], labels)
    assert smooth.nbytes > 10 * BLOCK_BYTES  # many blocks …
    assert smooth.nbytes % BLOCK_BYTES != 0  # … the last one partial
    # the second array starts where the first one's header and blocks end
    raw = path.read_bytes()
    data = raw[raw.index(b"_", raw.index(b"<AppendedData")) + 1 :]
    blocks = int(np.frombuffer(data, "<u8", 1)[0])
    first_bytes = 8 * (3 + blocks) + int(np.frombuffer(data, "<u8", blocks, 24).sum())
    assert [int(a.attrib["offset"]) for a in image.iter("DataArray")] == [0, first_bytes]
    assert path.stat().st_size < (smooth.nbytes + labels.nbytes) / 5


def test_vti_of_an_oblique_grid_carries_its_direction(tmp_path: Path) -> None:
    """Direction row-major, so VTK's origin + D·diag(s)·ijk is the grid's own LPS position."""
    grid = Grid((4, 3, 2), (1.0, 2.0, 3.0), (5.0, -7.0, 11.0), rotation_z(30.0))
    path = tmp_path / "oblique.vti"
    write_vti(path, {"x": np.zeros(grid.shape)}, grid)
    image, _ = read_vti(path)
    direction = floats(image.attrib["Direction"]).reshape(3, 3)  # row-major
    np.testing.assert_allclose(direction, grid.direction, atol=1e-15)
    origin, spacing = floats(image.attrib["Origin"]), floats(image.attrib["Spacing"])
    ijk = np.array([[3.0, 2.0, 1.0], [1.0, 0.0, 1.0]])
    vtk_positions = origin + ijk @ (direction @ np.diag(spacing)).T
    np.testing.assert_allclose(vtk_positions, grid.lps_from_index(ijk), atol=1e-12)


def test_vti_refuses_a_field_of_the_wrong_shape_and_keeps_nan(tmp_path: Path) -> None:
    grid = Grid((3, 3, 3), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="'bad' has shape"):
        write_vti(tmp_path / "bad.vti", {"bad": np.zeros((3, 3, 2))}, grid)
    field = np.zeros(grid.shape)
    field[1, 1, 1] = np.nan  # binary carries NaN and infinity exactly (ASCII readers did not)
    field[0, 1, 2] = -np.inf
    write_vti(tmp_path / "nan.vti", {"t": field}, grid)
    np.testing.assert_array_equal(read_vti(tmp_path / "nan.vti")[1]["t"], field)


GRIDS = {
    "axis-aligned, anisotropic": np.eye(3),
    "rotated 30° about z": rotation_z(30.0),
    "rotated and reflected": rotation_z(-50.0) @ np.diag([1.0, -1.0, 1.0]),
}


@pytest.mark.parametrize("direction", GRIDS.values(), ids=GRIDS.keys())
def test_isosurface_of_a_sphere_lies_at_its_radius_in_lps(
    tmp_path: Path, direction: np.ndarray
) -> None:
    grid = Grid((24, 20, 28), (1.0, 1.25, 0.8), (-30.0, 12.0, -50.0), direction)
    centre = grid.lps_from_index(np.array([11.3, 9.6, 13.9]))
    r = 8.0
    x, y, z = grid.centres_lps()
    distance = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)
    path = tmp_path / "sphere.vtp"
    write_isosurface_vtp(path, distance, r, grid)
    points, triangles, normals = read_vtp(path)

    assert len(triangles) > 500
    radius = np.linalg.norm(points - centre, axis=1)
    assert np.max(np.abs(radius - r)) < 0.5 * max(grid.spacing_mm)
    # Every triangle and normal faces out (toward larger distance), whatever the direction.
    outward = points - centre
    corner = points[triangles]
    face_normal = np.cross(corner[:, 1] - corner[:, 0], corner[:, 2] - corner[:, 0])
    assert np.all(np.einsum("ij,ij->i", face_normal, corner.mean(axis=1) - centre) > 0.0)
    assert np.all(np.einsum("ij,ij->i", normals, outward / radius[:, None]) > 0.9)
    # Closed surface: the enclosed volume (divergence theorem) is the sphere's.
    volume = np.einsum("ij,ij->i", corner[:, 0] - centre, face_normal).sum() / 6.0
    assert volume == pytest.approx(4.0 / 3.0 * math.pi * r**3, rel=0.03)


def test_a_level_outside_the_field_gives_an_empty_surface(tmp_path: Path) -> None:
    grid = Grid((4, 4, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    path = tmp_path / "empty.vtp"
    write_isosurface_vtp(path, np.zeros(grid.shape), 1.0, grid)
    points, triangles, _ = read_vtp(path)
    assert points.shape == (0, 3)
    assert triangles.shape == (0, 3)


def test_vtk_itself_reads_the_files(tmp_path: Path) -> None:
    """ParaView's readers (VTK's XML readers) give back the same grid, values and surface."""
    vtk = pytest.importorskip("vtk")
    from vtk.util.numpy_support import vtk_to_numpy  # noqa: PLC0415

    grid = Grid((7, 5, 4), (1.0, 1.5, 2.0), (-3.0, 4.0, 5.0), rotation_z(20.0))
    rng = np.random.default_rng(3)
    fields = {
        "t": rng.normal(size=grid.shape).astype(np.float32),
        "on": rng.random(grid.shape) > 0.5,
    }
    write_vti(tmp_path / "f.vti", fields, grid)
    reader = vtk.vtkXMLImageDataReader()
    reader.SetFileName(str(tmp_path / "f.vti"))
    reader.Update()
    image = reader.GetOutput()
    assert image.GetDimensions() == grid.shape
    np.testing.assert_allclose(image.GetOrigin(), grid.origin_mm)
    np.testing.assert_allclose(image.GetSpacing(), grid.spacing_mm)
    direction = np.array([image.GetDirectionMatrix().GetElement(r, c) for r in range(3)
                          for c in range(3)]).reshape(3, 3)  # fmt: skip
    np.testing.assert_allclose(direction, grid.direction, atol=1e-12)
    for name, values in fields.items():
        got = vtk_to_numpy(image.GetPointData().GetArray(name))
        np.testing.assert_array_equal(got, values.astype(got.dtype).ravel(order="F"))

    sphere = Grid((20, 20, 20), (1.0, 1.0, 1.0), (-10.0, -10.0, -10.0))
    x, y, z = sphere.centres_lps()
    write_isosurface_vtp(tmp_path / "s.vtp", np.sqrt(x**2 + y**2 + z**2), 6.0, sphere)
    points, triangles, normals = read_vtp(tmp_path / "s.vtp")
    reader = vtk.vtkXMLPolyDataReader()
    reader.SetFileName(str(tmp_path / "s.vtp"))
    reader.Update()
    surface = reader.GetOutput()
    np.testing.assert_array_equal(vtk_to_numpy(surface.GetPoints().GetData()), points)
    assert surface.GetNumberOfPolys() == len(triangles)
    np.testing.assert_array_equal(vtk_to_numpy(surface.GetPointData().GetNormals()), normals)
