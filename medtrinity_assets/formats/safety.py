"""Guards every non-DICOM reader shares: paths stay inside the source folder, files have a sane
size, and images are opened with a decompression-bomb limit.

Why one module: a CSV row, a COCO ``file_name`` or a JSONL ``image`` field is text a stranger
wrote. Each reader resolves it through :func:`inside_root` *before* touching the file, so a row
pointing at ``../../etc/shadow`` (or a symlink leading out of the folder) is quarantined without
ever being opened.

Links policy: a symlink inside the source folder whose target lies in one of the folders the
configuration allows (``allow_links_into``, e.g. a shared data store) is followed; any other link
that leads out is refused. Text that climbs out by itself (``..``, absolute paths) is refused
whatever the list says.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from medtrinity_assets.formats.base import ReadError

if TYPE_CHECKING:
    from medtrinity_assets.config import SourceOptions

# Pillow's own default (about 89.5 megapixels); a source may raise or lower it with `max_pixels`.
DEFAULT_MAX_PIXELS = 89_478_485
# A volume of this many voxels is 2 GiB as float32; larger needs an explicit `max_voxels` option.
DEFAULT_MAX_VOXELS = 2**29
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")  # Pillow reads them all

_PIL_LOCK = threading.Lock()


def source_root(path: Path) -> Path:
    """The folder a source's relative paths are resolved against (a file source uses its folder)."""
    p = Path(path)
    return p.parent if p.is_file() else p


def _within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _link_allowed(lexical: Path, base: Path, resolved: Path, allowed: Iterable[Path]) -> bool:
    """A path inside the folder (by its name) whose link target lies in an allowed folder."""
    return _within(lexical, base) and any(_within(resolved, Path(a).resolve()) for a in allowed)


LINK_HINT = "; or list the folder it points into under allow_links_into in the sources YAML"


def inside_root(root: Path, relative: str, allowed: Iterable[Path] = ()) -> Path:
    """Resolve ``relative`` (text from a CSV/JSON) under ``root`` or raise ``ReadError``.

    Symlinks are followed before the check, so a link inside the folder that points out is refused
    too, unless its target is in one of the ``allowed`` folders (then the path is returned as named,
    inside ``root``). Nothing is opened here; the file may or may not exist afterwards.
    """
    text = str(relative or "").strip()
    if not text:
        raise ReadError("bad_row", "the row has an empty file name; fill in the path relative to the source folder")
    if "\x00" in text:
        raise ReadError("path_outside_source", f"file name {text!r} holds a NUL byte; refused without opening it")
    base = Path(root).resolve()
    candidate = Path(text)
    if candidate.is_absolute() or PurePosixPath(text.replace("\\", "/")).is_absolute():
        raise ReadError(
            "path_outside_source",
            f"{text!r} is an absolute path; entries must be relative to the source folder {base.name}/ "
            "(refused without opening it)",
        )
    lexical = Path(os.path.normpath(base / candidate))
    resolved = lexical.resolve()
    if _within(resolved, base):
        return resolved
    if _link_allowed(lexical, base, resolved, allowed):
        return lexical
    raise ReadError(
        "path_outside_source",
        f"{text!r} points outside the source folder {base.name}/ (after following links); "
        "move the file inside the folder or fix the entry (refused without opening it)"
        + (LINK_HINT if _within(lexical, base) else ""),
    )


def check_listed_file(root: Path, path: Path, allowed: Iterable[Path] = ()) -> Path:
    """For files found by listing the folder: refuse symlinks that lead out of it (unless into ``allowed``)."""
    base = Path(root).resolve()
    resolved = Path(path).resolve()
    if _within(resolved, base):
        return resolved
    lexical = base / os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if _link_allowed(Path(os.path.normpath(lexical)), base, resolved, allowed):
        return Path(os.path.normpath(lexical))
    raise ReadError(
        "path_outside_source",
        f"{Path(path).name} is a link to a file outside the source folder; copy the file in instead "
        "(refused without opening it)" + LINK_HINT,
    )


def check_file(path: Path, what: str = "file") -> int:
    """Existence and non-emptiness, from ``stat`` alone. Returns the size in bytes."""
    p = Path(path)
    if not p.exists():
        raise ReadError("missing_file", f"{what} {p.name} does not exist; fix the entry or add the file")
    if not p.is_file():
        raise ReadError("not_a_file", f"{what} {p.name} is not a regular file")
    size = p.stat().st_size
    if size == 0:
        raise ReadError("empty_file", f"{what} {p.name} is empty (0 bytes); re-export or remove it")
    return size


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    mode: str
    format: str
    n_frames: int


def max_pixels_of(options: SourceOptions) -> int:
    """The source's ``max_pixels`` (a positive integer, checked at load), or the decompression-bomb default."""
    return options.max_pixels if options.max_pixels is not None else DEFAULT_MAX_PIXELS


def _open_guarded(path: Path, max_pixels: int):
    """Open with Pillow (header only) with the bomb limit; Pillow's global limit is set under a lock."""
    from PIL import Image, UnidentifiedImageError

    name = Path(path).name
    with _PIL_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ReadError(
                "decompression_bomb",
                f"{name} declares more pixels than the limit of {max_pixels} ({exc}); "
                "raise the source option max_pixels if the image is genuine",
            ) from None
        except UnidentifiedImageError:
            raise ReadError("not_an_image", f"{name} is not an image Pillow can identify; remove or convert it") \
                from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ReadError("unreadable_image", f"{name} could not be opened as an image: {exc}") from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    w, h = im.size
    if w * h > max_pixels:  # belt and braces: formats that skip Pillow's check
        im.close()
        raise ReadError(
            "decompression_bomb",
            f"{name} is {w}x{h} = {w * h} pixels, over the limit of {max_pixels}; "
            "raise the source option max_pixels if the image is genuine",
        )
    return im


def probe_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHeader:
    """Header facts of an image without decoding its pixels (for ``scan``)."""
    check_file(path, "image")
    im = _open_guarded(path, max_pixels)
    try:
        return ImageHeader(im.size[0], im.size[1], im.mode, im.format or "", int(getattr(im, "n_frames", 1) or 1))
    finally:
        im.close()


def _is_grey_palette(im) -> bool:
    pal = im.getpalette() or []
    rgb = np.asarray(pal[: 3 * 256], dtype=np.int32).reshape(-1, 3)
    return bool(len(rgb)) and bool(np.all(rgb[:, 0] == rgb[:, 1]) and np.all(rgb[:, 1] == rgb[:, 2]))


GREY_TOLERANCE = 2.0  # JPEG chroma rounding leaves channels of a grey picture a unit or two apart


def _grey_in_colour(pixels: np.ndarray) -> bool:
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return bool(np.abs(r - g).max() <= GREY_TOLERANCE and np.abs(g - b).max() <= GREY_TOLERANCE)


def _exif_upright(im):
    """Apply the EXIF Orientation tag (phone and camera photographs): the picture as viewers show it."""
    from PIL import ImageOps

    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block is no reason to lose the picture
        return im
    if orientation in (None, 1):
        return im
    return ImageOps.exif_transpose(im)


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode the first frame to float32: ``(H, W)`` for grey (16-bit kept), ``(H, W, 3)`` 0..255 for colour.

    Returns the array and JSON-safe notes (source mode, frames, dropped alpha).
    """
    check_file(path, "image")
    name = Path(path).name
    im = _open_guarded(path, max_pixels)
    notes: dict[str, Any] = {"source_mode": im.mode, "file_format": im.format or ""}
    try:
        n_frames = int(getattr(im, "n_frames", 1) or 1)
        if n_frames > 1:
            notes["n_frames"] = n_frames
            notes["note"] = f"multi-frame file: frame 1 of {n_frames} used"
        try:
            im.load()
        except OSError as exc:
            reason = f"{name} could not be decoded ({exc}); the file is probably cut short"
            raise ReadError("truncated", reason) from None
        except (ValueError, SyntaxError) as exc:
            raise ReadError("unreadable_image", f"{name} could not be decoded: {exc}") from None
        oriented = _exif_upright(im)
        if oriented is not im:
            notes["exif_rotated"] = True
            im.close()
            im = oriented
        mode = im.mode
        if mode == "P":
            im = im.convert("L" if _is_grey_palette(im) else "RGB")
            mode = im.mode
        if mode in ("LA", "PA"):
            notes["alpha_dropped"] = True
            im = im.convert("L")
            mode = "L"
        if mode in ("RGBA", "RGBa"):
            notes["alpha_dropped"] = True
        if mode in ("1", "L", "I", "F") or mode.startswith("I;"):
            arr = np.asarray(im)
            if arr.dtype == bool:
                arr = arr.astype(np.uint8) * 255
            pixels = arr.astype(np.float32)
            notes["rgb"] = False
        else:
            pixels = np.asarray(im.convert("RGB"), dtype=np.float32)
            notes["rgb"] = True
            if _grey_in_colour(pixels):  # a radiograph exported as RGB: treat it as the grey image it is
                pixels = np.ascontiguousarray(pixels[..., 0])
                notes["rgb"] = False
                notes["grey_stored_as_rgb"] = True
    finally:
        im.close()
    if pixels.size == 0:
        raise ReadError("empty_image", f"{name} has no pixels")
    return pixels, notes
