"""Results out in other tools' formats: DICOM-SEG for PACS, VTK XML for ParaView.

Submodules are imported by name (`cryoplan.export.vtk`, `cryoplan.export.dicom_seg`) so
that using one does not load the other's dependencies.
"""
