"""VTK out: .vti fields and .vtp isosurfaces, read back with VTK's own XML readers (the ones
ParaView uses), and their XML headers read as text for the encoding they declare.

The isosurface of a distance field |p − c| at level r is a sphere; marching cubes
interpolates linearly along voxel edges, so its vertices must lie at radius r within half
a voxel (the largest spacing), in LPS millimetres whatever the grid's direction.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from skimage import measure
from vtkmodules.util.misc import calldata_type
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonCore import VTK_STRING, vtkCommand
from vtkmodules.vtkIOXML import vtkXMLImageDataReader, vtkXMLPolyDataReader

from cryoplan.anatomy.grid import Grid
from cryoplan.export.vtk import write_isosurface_vtp, write_vti


def rotation_z(degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


GRIDS = {
    "axis-aligned, anisotropic": np.eye(3),
    "rotated 30° about z": rotation_z(30.0),
    "rotated and reflected": rotation_z(-50.0) @ np.diag([1.0, -1.0, 1.0]),
}


def read(reader: Any, path: Path) -> Any:
    """The output of a VTK XML `reader` of `path`; any error or warning VTK raises fails."""
    messages: list[str] = []

    @calldata_type(VTK_STRING)
    def collect(_caller: Any, _event: str, message: str) -> None:
        messages.append(message)

    for source in (reader, reader.GetExecutive()):
        for event in (vtkCommand.ErrorEvent, vtkCommand.WarningEvent):
            source.AddObserver(event, collect)
    reader.SetFileName(str(path))
    reader.Update()
    assert not messages, f"VTK reading {path.name}: {messages}"
    return reader.GetOutput()


def header(path: Path) -> ET.Element:
    """The file's XML up to its appended data (the `VTKFile` element), as text-parsed XML."""
    raw = path.read_bytes()
    start = raw.index(b'<AppendedData encoding="raw">')  # raw binary, not base64
    return ET.fromstring(raw[:start] + b"</VTKFile>")


def assert_encoding(path: Path, kind: str) -> None:
    """The header declares VTK XML 1.0, little-endian, UInt64 headers, zlib, and every
    array as appended (binary) data."""
    root = header(path)
    assert root.attrib == {
        "type": kind,
        "version": "1.0",
        "byte_order": "LittleEndian",
        "header_type": "UInt64",
        "compressor": "vtkZLibDataCompressor",
    }
    arrays = list(root.iter("DataArray"))
    assert arrays
    assert {a.get("format") for a in arrays} == {"appended"}


def read_vti(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The image's geometry as VTK reads it and its point-data arrays, reshaped back to
    [i, j, k(, c)]. The geometry holds `Dimensions`, `Origin`, `Spacing`, `Direction`
    (3×3), `Scalars` (the active scalars' name) and `image` (the vtkImageData)."""
    image = read(vtkXMLImageDataReader(), path)
    shape = tuple(image.GetDimensions())
    direction = image.GetDirectionMatrix()
    geometry = {
        "Dimensions": shape,
        "Origin": np.array(image.GetOrigin()),
        "Spacing": np.array(image.GetSpacing()),
        "Direction": np.array([[direction.GetElement(r, c) for c in range(3)] for r in range(3)]),
        "Scalars": image.GetPointData().GetScalars().GetName(),
        "image": image,
    }
    point_data = image.GetPointData()
    fields = {}
    for n in range(point_data.GetNumberOfArrays()):
        array = point_data.GetArray(n)
        values = vtk_to_numpy(array)
        assert len(values) == math.prod(shape)
        components = array.GetNumberOfComponents()
        full = shape + ((components,) if components > 1 else ())
        fields[array.GetName()] = values.reshape(full, order="F")
    return geometry, fields


def read_vtp(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points (n, 3), triangles (m, 3) and point normals (n, 3) of a .vtp file, as VTK
    reads them; the file holds triangles and nothing else."""
    surface = read(vtkXMLPolyDataReader(), path)
    assert surface.GetNumberOfVerts() == surface.GetNumberOfLines() == 0
    assert surface.GetNumberOfStrips() == 0
    points = (
        vtk_to_numpy(surface.GetPoints().GetData())
        if surface.GetPoints() is not None
        else np.zeros((0, 3))
    )
    polys = surface.GetPolys()
    offsets = vtk_to_numpy(polys.GetOffsetsArray())
    connectivity = vtk_to_numpy(polys.GetConnectivityArray())
    np.testing.assert_array_equal(offsets, 3 * np.arange(surface.GetNumberOfPolys() + 1))
    normals = vtk_to_numpy(surface.GetPointData().GetNormals())
    assert points.shape == normals.shape == (surface.GetNumberOfPoints(), 3)
    return points, connectivity.reshape(-1, 3), normals


def test_vti_fields_and_geometry_round_trip(tmp_path: Path) -> None:
    grid = Grid((5, 4, 3), (0.5, 0.75, 2.0), (-10.0, 20.5, 3.25))
    rng = np.random.default_rng(7)
    fields = {
        "gradient": rng.normal(size=(*grid.shape, 3)),  # a vector field is never the Scalars
        "temperature_C": rng.normal(-20.0, 30.0, grid.shape),
        "labels": rng.integers(0, 4, grid.shape).astype(np.int32),
        "lethal": rng.random(grid.shape) > 0.5,
        "fraction": rng.random(grid.shape).astype(np.float32),
        "count": rng.integers(-(2**40), 2**40, grid.shape),  # int64
        "big_endian": rng.normal(size=grid.shape).astype(">f8"),
    }
    path = tmp_path / "fields.vti"
    write_vti(path, fields, grid)
    geometry, back = read_vti(path)

    assert_encoding(path, "ImageData")
    assert geometry["Dimensions"] == grid.shape
    np.testing.assert_array_equal(geometry["Origin"], grid.origin_mm)
    np.testing.assert_array_equal(geometry["Spacing"], grid.spacing_mm)
    np.testing.assert_array_equal(geometry["Direction"], np.eye(3))
    assert geometry["Scalars"] == "temperature_C"  # the first scalar field
    assert list(back) == list(fields)
    for name, values in fields.items():
        expected = values.astype(np.uint8) if values.dtype == np.bool_ else values
        assert back[name].dtype == expected.dtype.newbyteorder("="), name
        np.testing.assert_array_equal(back[name], expected, err_msg=name)  # exact in binary
    # Point p is voxel (i, j, k) with p = i + ni·(j + nj·k), i fastest, values and positions
    # alike: point 1 is voxel (1, 0, 0), point 5 voxel (0, 1, 0).
    image = geometry["image"]
    flat = vtk_to_numpy(image.GetPointData().GetArray("temperature_C"))
    temperature = fields["temperature_C"]
    assert flat[:2].tolist() == [temperature[0, 0, 0], temperature[1, 0, 0]]
    assert flat[5] == temperature[0, 1, 0]
    np.testing.assert_array_equal(image.GetPoint(5), grid.lps_from_index(np.array([0, 1, 0])))


def test_a_smooth_field_compresses_far_below_its_raw_size(tmp_path: Path) -> None:
    grid = Grid((50, 40, 30), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    x, y, z = grid.centres_lps()
    smooth = np.minimum(37.0, np.hypot(x - 25.0, y - 20.0) * 3.0 - 40.0)  # an ice ball's T_min
    labels = (z > 15.0).astype(np.uint8)
    path = tmp_path / "fields.vti"
    write_vti(path, {"tmin": smooth, "labels": labels}, grid)
    _, back = read_vti(path)
    np.testing.assert_array_equal(back["tmin"], smooth)
    np.testing.assert_array_equal(back["labels"], labels)
    assert_encoding(path, "ImageData")
    assert path.stat().st_size < (smooth.nbytes + labels.nbytes) / 5


@pytest.mark.parametrize("direction", GRIDS.values(), ids=GRIDS.keys())
def test_vti_points_lie_where_the_grid_puts_them(tmp_path: Path, direction: np.ndarray) -> None:
    """VTK's position of every point (origin + D·diag(s)·ijk) is the grid's own LPS one."""
    grid = Grid((4, 3, 2), (1.0, 2.0, 3.0), (5.0, -7.0, 11.0), direction)
    path = tmp_path / "oblique.vti"
    write_vti(path, {"x": np.zeros(grid.shape)}, grid)
    geometry, _ = read_vti(path)
    np.testing.assert_array_equal(geometry["Direction"], grid.direction)
    image = geometry["image"]
    vtk_positions = np.array([image.GetPoint(p) for p in range(image.GetNumberOfPoints())])
    ijk = np.indices(grid.shape).reshape(3, -1, order="F").T  # i fastest, as VTK's ids
    np.testing.assert_allclose(vtk_positions, grid.lps_from_index(ijk), rtol=0.0, atol=1e-12)


def test_vti_refuses_a_field_of_the_wrong_shape_and_keeps_nan(tmp_path: Path) -> None:
    grid = Grid((3, 3, 3), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="'bad' has shape"):
        write_vti(tmp_path / "bad.vti", {"bad": np.zeros((3, 3, 2))}, grid)
    assert not (tmp_path / "bad.vti").exists()
    field = np.zeros(grid.shape)
    field[1, 1, 1] = np.nan  # binary carries NaN and infinity exactly (ASCII readers did not)
    field[0, 1, 2] = -np.inf
    write_vti(tmp_path / "nan.vti", {"t": field}, grid)
    np.testing.assert_array_equal(read_vti(tmp_path / "nan.vti")[1]["t"], field)


def test_a_file_vtk_cannot_write_raises(tmp_path: Path) -> None:
    """VTK only logs a failed write; the writers turn it into an exception."""
    grid = Grid((3, 3, 3), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    missing = tmp_path / "no such folder"
    with pytest.raises(OSError, match=r"could not write .*No such file or directory"):
        write_vti(missing / "f.vti", {"t": np.zeros(grid.shape)}, grid)
    x, _, _ = grid.centres_lps()
    with pytest.raises(OSError, match="could not write"):
        write_isosurface_vtp(missing / "s.vtp", x, 1.0, grid)


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

    assert_encoding(path, "PolyData")
    assert points.dtype == normals.dtype == np.float64
    # The points are marching cubes' vertices through the grid's affine, to the last bit
    # the affine's arithmetic allows; the triangles are its faces (turned over to keep the
    # winding if the direction reflects).
    verts, faces, _, _ = measure.marching_cubes(distance, level=r, allow_degenerate=False)
    np.testing.assert_allclose(points, grid.lps_from_index(verts), rtol=0.0, atol=1e-12)
    reflects = np.linalg.det(direction) < 0.0
    np.testing.assert_array_equal(triangles, faces[:, ::-1] if reflects else faces)

    assert len(triangles) > 500
    radius = np.linalg.norm(points - centre, axis=1)
    assert np.max(np.abs(radius - r)) < 0.5 * max(grid.spacing_mm)
    # Every triangle and normal faces out (toward larger distance), whatever the direction.
    outward = points - centre
    corner = points[triangles]
    face_normal = np.cross(corner[:, 1] - corner[:, 0], corner[:, 2] - corner[:, 0])
    assert np.all(np.einsum("ij,ij->i", face_normal, corner.mean(axis=1) - centre) > 0.0)
    assert np.all(np.einsum("ij,ij->i", normals, outward / radius[:, None]) > 0.9)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, rtol=0.0, atol=1e-12)
    # Closed surface: the enclosed volume (divergence theorem) is the sphere's.
    volume = np.einsum("ij,ij->i", corner[:, 0] - centre, face_normal).sum() / 6.0
    assert volume == pytest.approx(4.0 / 3.0 * math.pi * r**3, rel=0.03)


def test_a_level_outside_the_field_gives_an_empty_surface(tmp_path: Path) -> None:
    grid = Grid((4, 4, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    path = tmp_path / "empty.vtp"
    write_isosurface_vtp(path, np.zeros(grid.shape), 1.0, grid)
    points, triangles, normals = read_vtp(path)
    assert points.shape == normals.shape == (0, 3)
    assert triangles.shape == (0, 3)
    assert_encoding(path, "PolyData")


def test_writing_loads_only_the_vtk_modules_it_uses() -> None:
    """Importing the module loads no VTK; writing loads VTK's data model and XML writers,
    not the `vtk` meta-module (which loads the whole toolkit)."""
    code = (
        "import sys, json, tempfile, pathlib\n"
        "import numpy as np\n"
        "from cryoplan.anatomy.grid import Grid\n"
        "import cryoplan.export.vtk as out\n"
        "before = sorted(m for m in sys.modules if m.split('.')[0] in ('vtk', 'vtkmodules'))\n"
        "grid = Grid((3, 3, 3), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))\n"
        "folder = pathlib.Path(tempfile.mkdtemp())\n"
        "out.write_vti(folder / 'f.vti', {'t': np.zeros(grid.shape)}, grid)\n"
        "after = sorted(m for m in sys.modules if m.split('.')[0] in ('vtk', 'vtkmodules'))\n"
        "print(json.dumps([before, after]))"
    )
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    before, after = json.loads(run.stdout)
    assert before == []
    assert "vtkmodules.vtkIOXML" in after
    assert "vtk" not in after
    assert "vtkmodules.all" not in after
