"""DICOM: series, multi-frame and single images, with SEG/RTSTRUCT ground truth attached.

One concept per module:

- :mod:`.headers`      what scan keeps of one file's header (summary values, pixel location, kind)
- :mod:`.triage`       one file read once at scan time: a usable header, or a quarantine row
- :mod:`.validity`     headers that cannot describe a real image (pixel module, impossible values)
- :mod:`.identifiers`  identifying values of a header; scrubbing paths with them
- :mod:`.meta`         the allow-list of header values that may reach metadata
- :mod:`.series`       files -> items: series grouping, left-out slices, gaps, ground-truth attachment
- :mod:`.pixels`       decodability, decoding, modality LUT, MONOCHROME1, palette colour
- :mod:`.geometry`     plane positions, the stack grid and its affine (highdicom)
- :mod:`.volume`       decoded pixels + geometry -> canonical ReadItem (shared affine path, 2D display)
- :mod:`.ground_truth` SEG segments and RTSTRUCT contours rasterised on an image grid
- :mod:`.reader`       :class:`DicomReader`, the ``scan``/``load`` entry points
"""

from medtrinity_assets.formats.dicom.reader import DicomReader

__all__ = ["DicomReader"]
