"""DICOM pixel data: can it be decoded, decoding, and the value transforms every image needs.

Decoding is pydicom's (``pydicom.pixels``, with the pylibjpeg/pillow plugins it finds). What this
module adds:

- scan-time checks that need no decoding: is the pixel element as long as the header says
  (:func:`stored_size_problem`), is a decoder for the transfer syntax installed
  (:func:`decoder_problem`, naming the package to install);
- :func:`decode_located`: the pixel bytes of a file read straight from where scan found them and
  decoded, with the scan's header values as options, by the same pydicom decoder -- so that a
  series' headers are parsed once (at scan), not twice;
- the modality LUT (HU for CT, per frame for enhanced objects), MONOCHROME1 inversion and palette
  colour.
"""

from __future__ import annotations

import os

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID

from medtrinity_assets.formats.base import ReadError
from medtrinity_assets.formats.dicom.headers import PIXEL_TAGS, UNDEFINED_LENGTH, Header, functional_group_item, transfer_syntax
from medtrinity_assets.formats.dicom.validity import tag

# Transfer syntax -> the package that decodes it (named in quarantine reasons).
_PLUGIN_FOR = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg (or pillow)",
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pylibjpeg-libjpeg (or pyjpegls)",
    "1.2.840.10008.1.2.4.81": "pylibjpeg-libjpeg (or pyjpegls)",
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg (or pillow)",
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg (or pillow)",
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg>=2.0",
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg>=2.0",
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg>=2.0",
    "1.2.840.10008.1.2.5": "pylibjpeg-rle",
}


def plugin_hint(ts: str) -> str:
    name = UID(ts).name if ts else "unknown"
    pkg = _PLUGIN_FOR.get(str(ts))
    if pkg:
        return f"transfer syntax {name} ({ts}): install {pkg} into the pipeline's environment"
    return (f"transfer syntax {name} ({ts}) has no pixel decoder in pydicom or the pylibjpeg plugins; "
            "convert the file (e.g. dcmdjpeg/gdcmconv to Explicit VR Little Endian) and re-add it")


def is_compressed(ds: Dataset) -> bool:
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return bool(ts) and UID(ts).is_compressed


def ensure_transfer_syntax(ds: Dataset) -> None:
    """pydicom decodes only when the file meta names the transfer syntax; old files lack it."""
    if not getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None):
        if not hasattr(ds, "file_meta") or ds.file_meta is None:
            ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = transfer_syntax(ds)


_DECODER_CACHE: dict[str, tuple[str, str] | None] = {}


def decoder_problem(ts: str) -> tuple[str, str] | None:
    """Why no installed decoder can decode ``ts`` (None when one can)."""
    if ts not in _DECODER_CACHE:
        from pydicom.pixels import get_decoder

        try:
            available = get_decoder(ts).is_available
        except NotImplementedError:
            available = False
        _DECODER_CACHE[ts] = None if available else ("undecodable_transfer_syntax", plugin_hint(ts))
    return _DECODER_CACHE[ts]


def stored_size_problem(ds: Dataset, info: dict, size: int) -> tuple[str, str] | None:
    """Checks the deferred pixel element against what the header announces (no decoding); ``info``
    is the scan's summary of ``ds``."""
    px_tag = next((t for t in PIXEL_TAGS if t in ds._dict), None)  # noqa: SLF001
    if px_tag is None:
        sop = info.get("SOPClassUID")
        sop_name = UID(str(sop)).name if sop else ""
        if "Image" in sop_name:
            return ("no_pixel_data", f"the header says '{sop_name}' but the file holds no PixelData: it was "
                    "truncated or stripped of its pixels; copy it again from the original")
        return ("no_pixel_data", "the object has no PixelData element (not an image); "
                "remove it or provide the image it belongs to")
    if transfer_syntax(ds) == "1.2.840.10008.1.2.1.99":  # deflated: offsets are in the inflated stream
        return None
    raw = ds._dict[px_tag]  # noqa: SLF001 -- the raw element tells length/offset without reading it
    length = getattr(raw, "length", None)
    offset = getattr(raw, "value_tell", None)
    if length is None or offset is None or length == UNDEFINED_LENGTH:  # encapsulated: checked when decoding
        return None
    rows, cols = int(info.get("Rows") or 0), int(info.get("Columns") or 0)
    frames = int(info.get("NumberOfFrames") or 1)
    spp = int(info.get("SamplesPerPixel") or 1)
    bits = int(info.get("BitsAllocated") or 0)
    if px_tag != 0x7FE00010:
        bits = 32 if px_tag == 0x7FE00008 else 64
    expected = (rows * cols * frames * spp * bits + 7) // 8
    if str(info.get("PhotometricInterpretation", "")).startswith("YBR_FULL_422") and not is_compressed(ds):
        expected = expected * 2 // 3
    stored = min(length, max(0, size - offset))
    if offset + length > size:
        return ("truncated_dicom", f"the file ends {offset + length - size} bytes before the end of its "
                f"pixel data ({stored} of {length} bytes present): the copy was cut short; copy it again")
    if expected and stored < expected:
        return ("pixel_data_short", f"header announces {rows}x{cols}x{frames} pixels ({expected} bytes) but "
                f"only {stored} bytes are stored; the file is damaged -- re-export it")
    return None


# Header values a decoder reads, as pydicom's decode options.
_DECODE_OPTIONS = {"Rows": "rows", "Columns": "columns", "BitsAllocated": "bits_allocated",
                   "BitsStored": "bits_stored", "PixelRepresentation": "pixel_representation",
                   "SamplesPerPixel": "samples_per_pixel", "PhotometricInterpretation": "photometric_interpretation",
                   "PlanarConfiguration": "planar_configuration", "NumberOfFrames": "number_of_frames"}


def _located_bytes(header: Header) -> bytes | None:
    """The pixel bytes of a file, read from where scan found them; None when the file must be read
    whole (changed since the scan, deflated, float pixels, a modality LUT or palette to apply)."""
    loc = header.pixels
    if loc is None or header.modality_lut or loc.tag != 0x7FE00010:
        return None
    if str(header.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
        return None
    try:
        stat = os.stat(header.path)
        if (stat.st_size, stat.st_mtime_ns) != (loc.file_size, loc.mtime_ns):
            return None
        with open(header.path, "rb") as fh:
            fh.seek(loc.offset)
            return fh.read() if loc.length == UNDEFINED_LENGTH else fh.read(loc.length)
    except OSError:
        return None


def decode_located(header: Header) -> np.ndarray | None:
    """Decode one file's pixels from the bytes scan located, with the header values scan kept, by
    the same pydicom decoder ``pixel_array`` uses; None when the file must be read whole instead."""
    data = _located_bytes(header)
    if data is None:
        return None
    from pydicom.pixels import get_decoder

    ts = header.transfer_syntax
    problem = decoder_problem(ts)
    if problem:
        raise ReadError(*problem)
    opts = {opt: header.info[kw] for kw, opt in _DECODE_OPTIONS.items() if kw in header.info}
    opts.setdefault("number_of_frames", 1)
    opts.setdefault("samples_per_pixel", 1)
    opts.setdefault("pixel_representation", 0)
    if opts["samples_per_pixel"] > 1:
        opts.setdefault("planar_configuration", 0)
    with _DecodeErrors(ts, header):
        arr, _ = get_decoder(ts).as_array(data, pixel_keyword="PixelData", **opts)
    return np.asarray(arr)


class _DecodeErrors:
    """Every decoder failure becomes a ReadError naming the transfer syntax and the header fields."""

    def __init__(self, ts: str, values: Dataset | Header):
        self.ts, self.values = ts, values

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, ReadError):
            return False
        ts = self.ts
        if isinstance(exc, NotImplementedError):
            raise ReadError("undecodable_transfer_syntax", plugin_hint(ts)) from None
        msg = str(exc).lower()
        if "all available plugins" in msg:
            raise ReadError("decode_failed", f"the installed decoders for {UID(ts).name} ({ts}) all failed on "
                            "this file (damaged or unusual bitstream); python-gdcm may decode it, otherwise "
                            "re-export the image uncompressed") from None
        short = any(w in msg for w in ("length", "bytes", "size", "shape", "truncat", "end of"))
        fields = ", ".join(f"{tag(kw)} = {self.values.get(kw)}" for kw in
                           ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "NumberOfFrames")
                           if self.values.get(kw) is not None)
        raise ReadError("pixel_data_short" if short else "decode_failed",
                        f"pixel data cannot be decoded ({type(exc).__name__}, {UID(ts).name}): the stored pixels do "
                        f"not match the header ({fields}) or the data is damaged -- re-export the file") from None


def decode(ds: Dataset) -> np.ndarray:
    """Pixels as stored (YBR_* converted to RGB by pydicom, PALETTE COLOR through its lookup table)."""
    ts = transfer_syntax(ds)
    if not any(t in ds for t in PIXEL_TAGS):
        raise ReadError("no_pixel_data", "the object has no PixelData element; it is not an image")
    ensure_transfer_syntax(ds)
    problem = decoder_problem(ts)
    if problem:
        raise ReadError(*problem)
    with _DecodeErrors(ts, ds):
        from pydicom.pixels import pixel_array

        arr = pixel_array(ds)  # not ds.pixel_array: no second copy cached on the dataset
        if str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
            arr = palette_to_rgb(arr, ds)
    return np.asarray(arr)


def monochrome1(arr: np.ndarray, values: Dataset | Header) -> np.ndarray:
    """MONOCHROME1 (white = low values) inverted into MONOCHROME2 within the stored bit range.
    ``values`` is the dataset, or the scan's header values of a slice read by :func:`decode_located`."""
    if str(values.get("PhotometricInterpretation", "")).upper() != "MONOCHROME1":
        return arr
    bits = int(values.get("BitsStored") or 16)
    if int(values.get("PixelRepresentation") or 0) == 1:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2**bits - 1
    return (hi + lo) - arr.astype(np.int64)


def modality_lut(arr: np.ndarray, values: Dataset | Header, ds: Dataset | None = None,
                 frame_group: Dataset | None = None) -> np.ndarray:
    """Stored values to physical ones (HU for CT), as float32.

    Enhanced objects: the per-frame, else shared, PixelValueTransformation of ``ds``. Otherwise a
    ModalityLUTSequence through pydicom, else RescaleSlope/RescaleIntercept from ``values`` with
    pydicom's arithmetic (float64, both present or nothing applied)."""
    if ds is not None:
        item = functional_group_item(ds, frame_group, "PixelValueTransformationSequence")
        if item is not None and "RescaleSlope" in item:
            slope = float(item.RescaleSlope) if item.RescaleSlope not in (None, "") else 1.0
            inter = float(item.get("RescaleIntercept", 0) or 0)
            if not np.isfinite(slope) or slope == 0 or not np.isfinite(inter):
                raise ReadError("impossible_rescale", f"a frame's {tag('RescaleSlope')} is {slope} and its "
                                f"{tag('RescaleIntercept')} {inter}: every pixel would map to one value; "
                                "re-export the image")
            return arr.astype(np.float32) * np.float32(slope) + np.float32(inter)
        if "ModalityLUTSequence" in ds:
            from pydicom.pixels import apply_modality_lut

            return np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
    slope, intercept = values.get("RescaleSlope"), values.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        out = arr.astype(np.float64) * float(slope)
        out += float(intercept)
        return out.astype(np.float32)
    return arr.astype(np.float32)


def palette_to_rgb(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """PALETTE COLOR indices through the colour lookup table, as 8-bit RGB."""
    from pydicom.pixels import apply_color_lut

    rgb = np.asarray(apply_color_lut(arr, ds), dtype=np.float32)
    bits = int(ds.RedPaletteColorLookupTableDescriptor[2]) if "RedPaletteColorLookupTableDescriptor" in ds else 8
    if bits > 8 or rgb.max() > 255:  # 16-bit entries: either value<<8 or value*257
        rgb = rgb / 256.0 if not np.any(np.mod(rgb, 256)) else rgb / 257.0
    return np.clip(rgb, 0, 255)


def free_pixels(ds: Dataset) -> None:
    """Drop the stored bytes once decoded (a series is decoded slice by slice)."""
    for t in PIXEL_TAGS:
        if t in ds:
            del ds[t]
