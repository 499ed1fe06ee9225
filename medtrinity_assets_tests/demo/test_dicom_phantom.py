"""The phantom written as DICOM: real objects, reproducible bytes, identifiers where a scanner puts them."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest

from medtrinity_assets.demo.dicom_phantom import write_phantom_dicom
from medtrinity_assets_tests.support.dicom import small_phantom


def test_ct_series_headers_and_stored_hu(tmp_path):
    ph = small_phantom()
    out = write_phantom_dicom(ph, tmp_path, patient_name="DOE^JANE", patient_id="PID-1")
    assert "DOE_JANE" in out.study_dir.name and "PID-1" in out.study_dir.name
    assert len(out.ct_files) == ph.shape[0]
    ds = pydicom.dcmread(out.ct_files[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.Modality == "CT"
    assert str(ds.PatientName) == "DOE^JANE" and ds.PatientID == "PID-1"
    assert ds.PixelRepresentation == 1 and ds.BitsStored == 16 and float(ds.RescaleIntercept) == -1024.0
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.abs(hu - ph.volume_hu[0]).max() <= 0.5
    uids = {pydicom.dcmread(p).SOPInstanceUID for p in out.ct_files}
    assert len(uids) == len(out.ct_files)


def test_seg_and_rtstruct_reference_the_series(tmp_path):
    ph = small_phantom()
    out = write_phantom_dicom(ph, tmp_path)
    series_uid = pydicom.dcmread(out.ct_files[0]).SeriesInstanceUID
    seg = hd.seg.segread(out.seg_file)
    present = sorted(int(v) for v in np.unique(ph.label_map) if v)
    assert [seg.get_segment_description(i).SegmentLabel for i in seg.segment_numbers] == \
        [ph.label_names[v] for v in present]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid
    rt = pydicom.dcmread(out.rtstruct_file)
    expected = [ph.label_names[v] for v in present if v >= 10] or [ph.label_names[v] for v in present]
    assert [r.ROIName for r in rt.StructureSetROISequence] == expected == out.roi_names
    ref = rt.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == series_uid
    for roi in rt.ROIContourSequence:
        assert len(roi.ContourSequence) > 0
        for c in roi.ContourSequence:
            assert c.ContourGeometricType == "CLOSED_PLANAR" and len(c.ContourData) == 3 * c.NumberOfContourPoints


def test_rewrite_gives_identical_bytes(tmp_path):
    ph = small_phantom(shape=(6, 40, 40))
    a = write_phantom_dicom(ph, tmp_path / "a")
    b = write_phantom_dicom(ph, tmp_path / "b")
    for x, y in [(a.seg_file, b.seg_file), (a.rtstruct_file, b.rtstruct_file), *zip(a.ct_files, b.ct_files)]:
        assert x.read_bytes() == y.read_bytes(), x.name


def test_bad_orientation_is_refused(tmp_path):
    with pytest.raises(ValueError, match="orientation"):
        write_phantom_dicom(small_phantom(shape=(4, 40, 40)), tmp_path, orientation="SPL")
