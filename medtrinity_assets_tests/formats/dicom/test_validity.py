"""Headers that cannot describe a real image are refused at scan, naming the element and its tag."""

from __future__ import annotations

import pytest

from medtrinity_assets.formats.dicom.validity import header_problem

GOOD = {"Rows": 128, "Columns": 128, "BitsAllocated": 16, "BitsStored": 16, "HighBit": 15, "PixelRepresentation": 1,
        "SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2", "RescaleSlope": 1.0,
        "RescaleIntercept": -1024.0, "PixelSpacing": [0.66, 0.66], "ImageOrientationPatient": [1, 0, 0, 0, 1, 0],
        "ImagePositionPatient": [0.0, 0.0, 10.0]}


def test_a_plain_ct_header_passes():
    assert header_problem(GOOD) is None


@pytest.mark.parametrize("changes,error_class,named", [
    ({"BitsStored": 20}, "bad_pixel_header", "BitsStored (0028,0101) is 20 but BitsAllocated (0028,0100) is 16"),
    ({"Rows": 0}, "bad_pixel_header", "Rows (0028,0010) is 0"),
    ({"PhotometricInterpretation": "FANCY"}, "bad_pixel_header", "PhotometricInterpretation (0028,0004) 'FANCY'"),
    ({"PhotometricInterpretation": "CMYK"}, "unsupported_photometric", "CMYK"),
    ({"SamplesPerPixel": 3}, "bad_pixel_header", "SamplesPerPixel (0028,0002) is 3 but"),
    ({"BitsAllocated": 12}, "bad_pixel_header", "BitsAllocated (0028,0100) is 12"),
    ({"RescaleSlope": 0.0}, "impossible_rescale", "RescaleSlope (0028,1053) is 0"),
    ({"PixelSpacing": [0.0, 0.0]}, "impossible_geometry", "PixelSpacing (0028,0030) is [0, 0]"),
    ({"ImagePositionPatient": [float("nan"), 0.0, 0.0]}, "impossible_geometry", "ImagePositionPatient (0020,0032)"),
    ({"ImageOrientationPatient": [1, 0, 0, 1, 0, 0]}, "impossible_geometry", "not perpendicular"),
    ({"ImageOrientationPatient": [0, 0, 0, 0, 1, 0]}, "impossible_geometry", "not unit vectors"),
])
def test_each_impossible_value_is_named(changes, error_class, named):
    problem = header_problem({**GOOD, **changes})
    assert problem is not None
    assert problem[0] == error_class and named in problem[1], problem


def test_an_uncalibrated_radiograph_keeps_its_zero_spacing():
    # a radiograph without plane geometry often writes 0 for "not calibrated" (pydicom-data's RG1 CR)
    cr = {k: v for k, v in GOOD.items() if k not in ("ImageOrientationPatient", "ImagePositionPatient")}
    assert header_problem({**cr, "PixelSpacing": [0.0, 0.0]}) is None
