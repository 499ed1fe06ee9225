"""The CT phantom written as a real DICOM study: a CT series, a SEG and an RTSTRUCT.

Why: the pydicom SEG and RTSTRUCT samples come without their images, so the only way to exercise
the whole DICOM ground-truth path (link to series -> place on the grid -> canonical orientation ->
ROI facts) against a known truth is to write a study whose truth we own. The headers and the
folder name carry synthetic patient identifiers on purpose, so that every demo run also proves that
de-identification removes them.

The series can be stored in any axis orientation (``orientation``: the patient directions of
increasing column, row and instance number, e.g. ``"LPS"`` or ``"RAI"``); the reader must give the
same canonical array back either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
RESCALE_INTERCEPT = -1024.0
_OPP = {"L": "R", "R": "L", "P": "A", "A": "P", "S": "I", "I": "S"}


@dataclass
class PhantomDicom:
    """What was written (paths are absolute)."""

    study_dir: Path
    ct_files: list[Path]
    seg_file: Path | None
    rtstruct_file: Path | None
    segment_names: dict[int, str] = field(default_factory=dict)  # SEG segment number -> name
    roi_names: list[str] = field(default_factory=list)  # RTSTRUCT ROI names
    identifiers: dict[str, str] = field(default_factory=dict)  # the synthetic PHI put in the headers


def _uid(*parts: Any) -> str:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _safe_dirname(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def _patient_block(ds: Dataset, ids: dict[str, str]) -> None:
    ds.PatientName = ids["patient_name"]
    ds.PatientID = ids["patient_id"]
    ds.PatientBirthDate = ids["birth_date"]
    ds.PatientSex = "O"
    ds.PatientAddress = ids["address"]
    ds.OtherPatientIDs = ids["other_id"]
    ds.AccessionNumber = ids["accession"]
    ds.InstitutionName = ids["institution"]
    ds.ReferringPhysicianName = ids["physician"]
    ds.StudyID = ids["study_id"]
    ds.StudyDate = ids["study_date"]
    ds.StudyTime = "101500"


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def write_phantom_dicom(
    phantom: Any,
    dest_dir: str | Path,
    *,
    patient_name: str = "DOE^JANE",
    patient_id: str = "PID-0042-7731",
    birth_date: str = "19610704",
    accession: str = "ACC99887766",
    institution: str = "SAINT EXAMPLE GENERAL HOSPITAL",
    physician: str = "HOUSE^GREGORY",
    address: str = "221B BAKER STREET LONDON",
    orientation: str = "LPS",
    with_seg: bool = True,
    with_rtstruct: bool = True,
    seg_labels: list[int] | None = None,
    rtstruct_labels: list[int] | None = None,
) -> PhantomDicom:
    """Write ``phantom`` (``.volume_hu``/``.label_map`` (Z,H,W) canonical LPS, ``.spacing``,
    ``.label_names``) under ``dest_dir/<patient name>_<patient id>/``.

    SEG holds ``seg_labels`` (default: every label present) and the RTSTRUCT one ROI per label in
    ``rtstruct_labels`` (default: the lesions, labels >= 10, else every label).
    """
    orientation = orientation.upper()
    if len(orientation) != 3 or sorted(set(orientation) | {_OPP[c] for c in orientation if c in _OPP}) != sorted("LRAPSI"):
        raise ValueError(f"orientation {orientation!r}: three letters, one of L/R, P/A, S/I each (e.g. 'LPS', 'RAI')")
    if orientation[0] not in "LR" or orientation[1] not in "PA" or orientation[2] not in "SI":
        raise ValueError(f"orientation {orientation!r}: columns L/R, rows P/A, slices S/I in that order")
    vol = np.asarray(phantom.volume_hu, dtype=np.float32)
    lab = np.asarray(phantom.label_map)
    names = {int(k): str(v) for k, v in dict(phantom.label_names).items()}
    dz, dy, dx = (float(s) for s in phantom.spacing)
    Z, H, W = vol.shape
    seed = (getattr(phantom, "seed", 0), getattr(phantom, "index", 0))

    ids = {
        "patient_name": patient_name, "patient_id": patient_id, "birth_date": birth_date,
        "accession": accession, "institution": institution, "physician": physician, "address": address,
        "other_id": f"MRN{patient_id[::-1]}", "study_date": "20240312",
        "study_id": "S" + str(sum(ord(c) * (i + 1) for i, c in enumerate(patient_id)) % 10**6).zfill(6),
    }
    study_uid = _uid("study", patient_id, *seed)
    series_uid = _uid("series", patient_id, *seed, orientation)
    for_uid = _uid("for", patient_id, *seed)
    study_dir = Path(dest_dir) / _safe_dirname(f"{patient_name}_{patient_id}")
    ct_dir = study_dir / "CT"
    ct_dir.mkdir(parents=True, exist_ok=True)

    # canonical LPS patient coordinates of voxel (z, y, x): origin + (x*dx, y*dy, z*dz)
    origin = np.array([-(W - 1) * dx / 2.0, -(H - 1) * dy / 2.0, -(Z - 1) * dz / 2.0])
    sx = 1.0 if orientation[0] == "L" else -1.0
    sy = 1.0 if orientation[1] == "P" else -1.0
    row_dir = np.array([sx, 0.0, 0.0])
    col_dir = np.array([0.0, sy, 0.0])
    z_order = list(range(Z)) if orientation[2] == "S" else list(range(Z - 1, -1, -1))

    ct_files: list[Path] = []
    datasets: list[Dataset] = []
    sop_of_z: dict[int, str] = {}
    for number, z in enumerate(z_order, start=1):
        img = vol[z]
        if sx < 0:
            img = img[:, ::-1]
        if sy < 0:
            img = img[::-1, :]
        x0 = 0 if sx > 0 else W - 1
        y0 = 0 if sy > 0 else H - 1
        ipp = origin + np.array([x0 * dx, y0 * dy, z * dz])
        stored = np.clip(np.rint(img - RESCALE_INTERCEPT), -32768, 32767).astype(np.int16)
        sop_uid = _uid("ct", series_uid, z)
        sop_of_z[z] = sop_uid
        ds = Dataset()
        ds.file_meta = _file_meta(CT_IMAGE_STORAGE, sop_uid)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_uid
        ds.Modality = "CT"
        ds.Manufacturer = "MedTrinity phantom"
        _patient_block(ds, ids)
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = for_uid
        ds.SeriesNumber = 1
        ds.InstanceNumber = number
        ds.BodyPartExamined = "ABDOMEN"
        ds.KVP = 120
        ds.SliceThickness = dz
        ds.SpacingBetweenSlices = dz
        ds.ImagePositionPatient = [round(float(v), 4) for v in ipp]
        ds.ImageOrientationPatient = [*(float(v) for v in row_dir), *(float(v) for v in col_dir)]
        ds.PixelSpacing = [dy, dx]
        ds.PatientPosition = "HFS"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = H, W
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = RESCALE_INTERCEPT
        ds.RescaleSlope = 1.0
        ds.RescaleType = "HU"
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        ds.BurnedInAnnotation = "NO"
        ds.PixelData = np.ascontiguousarray(stored).tobytes()
        # a private tag with an identifier in it, as real scanners write
        block = ds.private_block(0x0011, "MEDTRINITY DEMO", create=True)
        block.add_new(0x01, "LO", f"{patient_name} {patient_id}")
        path = ct_dir / f"{_safe_dirname(patient_name)}_{number:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        ct_files.append(path)
        datasets.append(ds)

    present = [int(v) for v in np.unique(lab) if v != 0]
    seg_file = rt_file = None
    seg_names: dict[int, str] = {}
    if with_seg and present:
        seg_file, seg_names = _write_seg(datasets, vol.shape, lab, names, seg_labels or present, orientation,
                                         study_dir, series_uid)
    roi_names: list[str] = []
    if with_rtstruct and present:
        default = [v for v in present if v >= 10] or present
        rt_file, roi_names = _write_rtstruct(datasets, sop_of_z, lab, names, rtstruct_labels or default, origin,
                                             (dz, dy, dx), ids, study_uid, series_uid, for_uid, study_dir)
    return PhantomDicom(study_dir, ct_files, seg_file, rt_file, seg_names, roi_names, ids)


def _seg_code(name: str):
    from pydicom.sr.codedict import codes

    organ = {"liver": codes.SCT.Liver, "spleen": codes.SCT.Spleen, "kidney": codes.SCT.Kidney,
             "lung": codes.SCT.Lung, "bone": codes.SCT.Bone}
    if name in organ:
        return codes.SCT.Organ if name != "bone" else codes.SCT.Tissue, organ[name]
    if "cyst" in name:
        return codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Cyst
    if "nodule" in name:
        return codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Nodule
    if "tumour" in name or "tumor" in name:
        return codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Neoplasm
    return codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Lesion


def _write_seg(datasets, shape, lab, names, labels, orientation, study_dir, series_uid):
    """A BINARY DICOM SEG (highdicom) with one segment per label, frames in the stored slice order."""
    import highdicom as hd

    labels = sorted(set(labels))
    # highdicom wants the mask in the order and pixel layout of ``datasets`` (the stored slices)
    Z = shape[0]
    z_order = list(range(Z)) if orientation[2] == "S" else list(range(Z - 1, -1, -1))
    stored = lab[z_order]
    if orientation[0] == "R":
        stored = stored[:, :, ::-1]
    if orientation[1] == "A":
        stored = stored[:, ::-1, :]
    mask = np.zeros((*stored.shape, len(labels)), dtype=bool)
    descriptions = []
    seg_names: dict[int, str] = {}
    for i, value in enumerate(labels, start=1):
        mask[..., i - 1] = stored == value
        name = names.get(value, f"label_{value}")
        category, ptype = _seg_code(name)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=i, segment_label=name, segmented_property_category=category,
            segmented_property_type=ptype, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL))
        seg_names[i] = name
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=mask, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=_uid("seg-series", series_uid),
        series_number=2, sop_instance_uid=_uid("seg", series_uid), instance_number=1,
        manufacturer="MedTrinity", manufacturer_model_name="phantom", software_versions="1",
        device_serial_number="0", content_label="PHANTOM_GT")
    _make_reproducible(seg, series_uid)
    path = study_dir / "SEG" / "seg.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)
    return path, seg_names


def _make_reproducible(seg: Dataset, series_uid: str) -> None:
    """highdicom stamps the wall clock and a random dimension-organisation UID: pin both, so that
    rebuilding the demo gives the same bytes."""
    seg.InstanceCreationDate = seg.ContentDate = seg.SeriesDate = "20240312"
    seg.InstanceCreationTime = seg.ContentTime = seg.SeriesTime = "101500"
    fixed_uid = _uid("seg-dimension-organisation", series_uid)
    for elem in seg.iterall():
        if elem.keyword == "DimensionOrganizationUID":
            elem.value = fixed_uid
        elif elem.keyword == "ContributionDateTime":
            elem.value = "20240312101500"


def _write_rtstruct(datasets, sop_of_z, lab, names, labels, origin, spacing, ids, study_uid, series_uid,
                    for_uid, study_dir):
    """An RT structure set: every slice contour of each label (skimage find_contours), in patient mm."""
    from skimage import measure

    dz, dy, dx = spacing
    sop_uid = _uid("rt", series_uid)
    ds = Dataset()
    ds.file_meta = _file_meta(RTSTRUCT_STORAGE, sop_uid)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = RTSTRUCT_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "RTSTRUCT"
    ds.Manufacturer = "MedTrinity phantom"
    _patient_block(ds, ids)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = _uid("rt-series", series_uid)
    ds.SeriesNumber = 3
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "PHANTOM_GT"
    ds.StructureSetDate = ids["study_date"]
    ds.StructureSetTime = "101500"
    contour_images = Sequence()
    for z in sorted(sop_of_z):
        item = Dataset()
        item.ReferencedSOPClassUID = CT_IMAGE_STORAGE
        item.ReferencedSOPInstanceUID = sop_of_z[z]
        contour_images.append(item)
    ser = Dataset()
    ser.SeriesInstanceUID = series_uid
    ser.ContourImageSequence = contour_images
    st = Dataset()
    st.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    st.ReferencedSOPInstanceUID = study_uid
    st.RTReferencedSeriesSequence = Sequence([ser])
    fr = Dataset()
    fr.FrameOfReferenceUID = for_uid
    fr.RTReferencedStudySequence = Sequence([st])
    ds.ReferencedFrameOfReferenceSequence = Sequence([fr])

    rois, contours_seq, observations = Sequence(), Sequence(), Sequence()
    roi_names: list[str] = []
    for number, value in enumerate(sorted(set(labels)), start=1):
        name = names.get(value, f"label_{value}")
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = for_uid
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "MANUAL"
        rois.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = [255, 0, 0]
        items = Sequence()
        for z in range(lab.shape[0]):
            m = lab[z] == value
            if not m.any():
                continue
            padded = np.pad(m.astype(np.float32), 1)
            for contour in measure.find_contours(padded, 0.5):
                rows = contour[:, 0] - 1.0
                cols = contour[:, 1] - 1.0
                if len(contour) > 1 and np.allclose(contour[0], contour[-1]):
                    rows, cols = rows[:-1], cols[:-1]
                if len(rows) < 3:
                    continue
                pts = np.stack([origin[0] + cols * dx, origin[1] + rows * dy,
                                np.full_like(rows, origin[2] + z * dz)], axis=1)
                c = Dataset()
                img = Dataset()
                img.ReferencedSOPClassUID = CT_IMAGE_STORAGE
                img.ReferencedSOPInstanceUID = sop_of_z[z]
                c.ContourImageSequence = Sequence([img])
                c.ContourGeometricType = "CLOSED_PLANAR"
                c.NumberOfContourPoints = len(pts)
                c.ContourData = [f"{v:.3f}" for v in pts.reshape(-1)]
                items.append(c)
        rc.ContourSequence = items
        contours_seq.append(rc)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = "GTV" if value >= 10 else "ORGAN"
        obs.ROIInterpreter = ""
        observations.append(obs)
        roi_names.append(name)
    ds.StructureSetROISequence = rois
    ds.ROIContourSequence = contours_seq
    ds.RTROIObservationsSequence = observations
    path = study_dir / "RTSTRUCT" / "rtstruct.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path, roi_names
