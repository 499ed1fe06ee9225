"""Headers that cannot describe a real image, caught before any pixel is decoded.

A decoder that meets ``BitsStored`` > ``BitsAllocated`` or ``Rows`` = 0 fails with a message about
buffers; a ``RescaleSlope`` of 0 decodes "fine" into an image of one value that would be captioned
as a CT. Each check here names the element (keyword and tag) and its value -- none of these values
identify anyone -- so the operator knows what to fix.
"""

from __future__ import annotations

import math
from typing import Any

# DICOM PS3.3 C.7.6.3.1.2; the retired ones (ARGB, CMYK, HSV) have no decoder in pydicom
PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422",
               "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "XYB"}
RETIRED_PHOTOMETRIC = {"ARGB", "CMYK", "HSV"}
BITS_ALLOCATED = {1, 8, 16, 32, 64}
_TAGS = {
    "Rows": "(0028,0010)", "Columns": "(0028,0011)", "BitsAllocated": "(0028,0100)",
    "BitsStored": "(0028,0101)", "HighBit": "(0028,0102)", "PixelRepresentation": "(0028,0103)",
    "SamplesPerPixel": "(0028,0002)", "PhotometricInterpretation": "(0028,0004)",
    "PlanarConfiguration": "(0028,0006)", "RescaleSlope": "(0028,1053)", "RescaleIntercept": "(0028,1052)",
    "PixelSpacing": "(0028,0030)", "ImagerPixelSpacing": "(0018,1164)",
    "ImageOrientationPatient": "(0020,0037)", "ImagePositionPatient": "(0020,0032)",
}
REEXPORT = "the header is damaged or was written wrongly -- re-export the image from its source"


def tag(keyword: str) -> str:
    """``Keyword (gggg,eeee)`` for messages."""
    return f"{keyword} {_TAGS.get(keyword, '')}".strip()


def _finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def pixel_module_problem(info: dict[str, Any]) -> tuple[str, str] | None:
    """The Image Pixel module: sizes, bit depths, samples and photometric interpretation agree."""
    for kw in ("Rows", "Columns"):
        value = info.get(kw)
        if value is None:
            return ("bad_pixel_header", f"{tag(kw)} is missing: the image has no size; {REEXPORT}")
        if value < 1:
            return ("bad_pixel_header", f"{tag(kw)} is {value}: an image needs at least one pixel; {REEXPORT}")
    allocated = info.get("BitsAllocated")
    if allocated is None:
        return ("bad_pixel_header", f"{tag('BitsAllocated')} is missing: the pixel size is unknown; {REEXPORT}")
    if allocated not in BITS_ALLOCATED:
        return ("bad_pixel_header", f"{tag('BitsAllocated')} is {allocated}; DICOM allows 1, 8, 16, 32 or 64; "
                f"{REEXPORT}")
    stored = info.get("BitsStored")
    if stored is not None and not 1 <= stored <= allocated:
        return ("bad_pixel_header", f"{tag('BitsStored')} is {stored} but {tag('BitsAllocated')} is {allocated}: "
                f"a pixel cannot store more bits than it holds; {REEXPORT}")
    high = info.get("HighBit")
    if high is not None and not 0 <= high < allocated:
        return ("bad_pixel_header", f"{tag('HighBit')} is {high} but {tag('BitsAllocated')} is {allocated}; "
                f"{REEXPORT}")
    rep = info.get("PixelRepresentation")
    if rep is not None and rep not in (0, 1):
        return ("bad_pixel_header", f"{tag('PixelRepresentation')} is {rep}; it must be 0 (unsigned) or 1 "
                f"(signed); {REEXPORT}")
    spp = info.get("SamplesPerPixel")
    if spp is not None and spp not in (1, 3):
        return ("bad_pixel_header", f"{tag('SamplesPerPixel')} is {spp}; images have 1 (grey) or 3 (colour) "
                f"samples; {REEXPORT}")
    pi = str(info.get("PhotometricInterpretation") or "").strip().upper()
    if not pi:
        return ("bad_pixel_header", f"{tag('PhotometricInterpretation')} is missing: the pixel values cannot be "
                f"interpreted (grey or colour); {REEXPORT}")
    if pi in RETIRED_PHOTOMETRIC:
        return ("unsupported_photometric", f"{tag('PhotometricInterpretation')} is {pi}, retired from DICOM and "
                "not decoded by pydicom; convert the image to RGB or MONOCHROME2")
    if pi not in PHOTOMETRIC:
        return ("bad_pixel_header", f"{tag('PhotometricInterpretation')} {pi[:32]!r} is not a DICOM photometric "
                f"interpretation; {REEXPORT}")
    colour = pi not in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR")
    if spp is not None and colour != (spp == 3):
        return ("bad_pixel_header", f"{tag('SamplesPerPixel')} is {spp} but {tag('PhotometricInterpretation')} "
                f"is {pi}; {REEXPORT}")
    planar = info.get("PlanarConfiguration")
    if spp == 3 and planar is not None and planar not in (0, 1):
        return ("bad_pixel_header", f"{tag('PlanarConfiguration')} is {planar}; it must be 0 or 1; {REEXPORT}")
    return None


def physical_problem(info: dict[str, Any]) -> tuple[str, str] | None:
    """Values no scanner produces: a zero rescale slope, zero or NaN spacing of a positioned plane, NaN or
    collapsed geometry."""
    slope = info.get("RescaleSlope")
    if slope is not None and (not math.isfinite(slope) or slope == 0):
        return ("impossible_rescale", f"{tag('RescaleSlope')} is {slope}: every pixel would map to one value "
                f"({tag('RescaleIntercept')}); {REEXPORT}")
    intercept = info.get("RescaleIntercept")
    if intercept is not None and not math.isfinite(intercept):
        return ("impossible_rescale", f"{tag('RescaleIntercept')} is {intercept}; {REEXPORT}")
    positioned = info.get("ImageOrientationPatient") is not None
    for kw in ("PixelSpacing", "ImagerPixelSpacing"):
        values = info.get(kw)
        if values is None or not positioned:
            # a radiograph without plane geometry often writes 0 for "not calibrated" (pydicom-data's
            # RG1 CR does): its spacing is then unknown, not impossible
            continue
        if len(values) != 2 or not _finite(values) or min(values) <= 0:
            return ("impossible_geometry", f"{tag(kw)} is {_show(values)}: pixels must lie a positive, finite "
                    f"distance apart; {REEXPORT}")
    iop = info.get("ImageOrientationPatient")
    if iop is not None:
        problem = _orientation_problem(iop)
        if problem:
            return ("impossible_geometry", f"{tag('ImageOrientationPatient')} is {_show(iop)}: {problem}; {REEXPORT}")
    ipp = info.get("ImagePositionPatient")
    if ipp is not None and (len(ipp) != 3 or not _finite(ipp)):
        return ("impossible_geometry", f"{tag('ImagePositionPatient')} is {_show(ipp)}: a position is three finite "
                f"numbers; {REEXPORT}")
    return None


def _orientation_problem(iop: list[float]) -> str | None:
    if len(iop) != 6:
        return "an orientation is six numbers (two direction cosines)"
    if not _finite(iop):
        return "it holds NaN or infinite values"
    row, col = iop[:3], iop[3:]
    nr = math.sqrt(sum(v * v for v in row))
    nc = math.sqrt(sum(v * v for v in col))
    if nr < 0.5 or nc < 0.5 or abs(nr - 1) > 0.05 or abs(nc - 1) > 0.05:
        return "its direction cosines are not unit vectors"
    if abs(sum(a * b for a, b in zip(row, col))) / (nr * nc) > 0.05:
        return "its row and column directions are not perpendicular"
    return None


def _show(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values[:6]) + ("" if len(values) <= 6 else ", ...") + "]"


def header_problem(info: dict[str, Any]) -> tuple[str, str] | None:
    """(error_class, reason) when an image header cannot describe a real image, else None."""
    return pixel_module_problem(info) or physical_problem(info)
