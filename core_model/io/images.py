"""Read PNG / JPEG / TIFF mammograms whose file names carry side, view and energy.

Serves both the CDD-CESM collection (``P12_L_DM_CC.jpg``) and plain folders
(``left_cc_le.png``); :mod:`core_model.io.detect` decides which names apply.
Pixels keep their bit depth: 8-bit files load as uint8, 16-bit PNG/TIFF as
uint16. No pixel spacing is known for these formats. Float images (32-bit
TIFF) must hold numbers only: a NaN or infinite pixel would turn every score
computed from the image into NaN, so such a file is refused.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from core_model.domain.errors import StudyLoadError, os_error_words
from core_model.domain.notice import SYNTHETIC_MARK_RE
from core_model.domain.study import StudyImage, UnassignedImage
from core_model.io.limits import size_problem
from core_model.io.naming import NameInfo, slot_hints

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})


def nonfinite_problem(pixels: np.ndarray) -> str | None:
    """Why an image holding NaN or infinite values cannot be used, or None (integer images never do)."""
    if not np.issubdtype(pixels.dtype, np.floating):
        return None
    bad = int(pixels.size - np.count_nonzero(np.isfinite(pixels)))
    if bad == 0:
        return None
    return (f"{bad:,} pixel value(s) are not a number (NaN or infinite); the image cannot be shown or "
            "analysed (a damaged or wrongly converted file)")


def read_raster(path: Path) -> tuple[np.ndarray, int]:
    """(2-D pixels, bits stored) of one image file; StudyLoadError naming the reason otherwise."""
    try:
        with Image.open(path) as im:
            # Image.open reads only the header: check the size before decoding.
            cols, rows = im.size
            problem = size_problem(rows, cols, getattr(im, "n_frames", 1))
            if problem:
                raise StudyLoadError(f"skipped, {problem}", path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.load()
            mode = im.mode
            if mode in ("L", "I;16", "I;16B", "I;16L", "I", "F"):
                px = np.array(im)
            elif mode in ("1", "P", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "PA"):
                px = np.array(im.convert("L"))
            else:
                raise StudyLoadError(f"skipped, unsupported image mode {mode}", path)
    except StudyLoadError:
        raise
    except Image.DecompressionBombError as err:
        # Pillow refuses some sizes before it reports them; still a size problem, not damage.
        raise StudyLoadError(f"skipped, the image is too large to hold ({err})", path) from err
    except OSError as err:
        if err.errno is not None:  # refused by the system (permissions, a lost drive): the file may be fine
            raise StudyLoadError(f"skipped, the file cannot be read ({os_error_words(err)})", path) from err
        raise StudyLoadError(f"skipped, the image cannot be read (damaged or truncated file: {err})", path) from err
    except (SyntaxError, ValueError) as err:
        raise StudyLoadError(f"skipped, the image cannot be read (damaged or truncated file: {err})", path) from err
    if px.ndim != 2:
        raise StudyLoadError(f"skipped, expected a greyscale image, got shape {px.shape}", path)
    if px.dtype == np.uint8:
        return px, 8
    if px.dtype.byteorder not in ("=", "|"):
        px = px.astype(px.dtype.newbyteorder("="))
    if np.issubdtype(px.dtype, np.integer):
        lo, hi = int(px.min()), int(px.max())
        if 0 <= lo and hi <= 65535:
            px = px.astype(np.uint16)
        return px, 16
    px = px.astype(np.float32)
    problem = nonfinite_problem(px)
    if problem:
        raise StudyLoadError(f"skipped, {problem}", path)
    return px, 32


def is_marked_synthetic(path: Path) -> bool:
    """True when an image file or the README beside its folder says SYNTHETIC (phantom
    studies write both), so synthetic images are never shown as a patient's."""
    try:
        with Image.open(path) as im:  # text chunks come with the header, no decoding
            if any(SYNTHETIC_MARK_RE.search(str(v)) for v in im.info.values() if isinstance(v, str)):
                return True
    except (OSError, SyntaxError, ValueError):
        pass
    for folder in (path.parent, path.parent.parent):
        readme = folder / "README.txt"
        try:
            if readme.is_file() and SYNTHETIC_MARK_RE.search(readme.read_text(encoding="utf-8", errors="replace")[:200]):
                return True
        except OSError:
            pass
    return False


def load_named_image(path: Path, info: NameInfo) -> StudyImage:
    pixels, bits = read_raster(path)
    return StudyImage(
        side=info.side,
        view=info.view,
        energy=info.energy,
        pixels=pixels,
        source=path,
        pixel_spacing_mm=None,
        bits_stored=bits,
    )


# An image without a view in its name is offered to the reader only when it could be a mammogram:
# the smallest image this viewer is given in practice is a 512 px reduction, so half that is generous.
MIN_UNNAMED_SIDE_PX = 256


def load_unnamed_image(path: Path) -> UnassignedImage:
    """An image whose file name gives no view: it waits for the reader to place it.

    Its key in the review is a hash of the file's bytes, so the reader's choice
    survives a renamed or moved folder. Side and energy are kept as hints when
    the name gives them (``left.png``, ``..._RC.png``); low energy otherwise.
    """
    pixels, bits = read_raster(path)
    if min(pixels.shape) < MIN_UNNAMED_SIDE_PX:  # an icon or a photo's thumbnail, not a mammogram
        raise StudyLoadError(f"skipped, the file name does not say side (L/R), view (CC/MLO) and energy (low energy / "
                             f"recombined), and {pixels.shape[1]}x{pixels.shape[0]} pixels is too small for a mammogram",
                             path)
    digest = hashlib.sha1(path.read_bytes()).hexdigest()
    sides, views, energies = slot_hints(path.stem)
    unclear = [w for w, got in (("side", sides), ("view", views), ("energy", energies)) if len(got) > 1]
    missing = [w for w, got in (("side", sides), ("view", views)) if not got]
    reason = (f"the file name does not say the {' or '.join(missing)}" if missing
              else f"the file name names more than one {' and '.join(unclear)}")
    return UnassignedImage(uid=f"sha1:{digest}", energy=energies.pop() if len(energies) == 1 else "le",
                           pixels=pixels, source=path, reason=reason,
                           side=sides.pop() if len(sides) == 1 else None, bits_stored=bits)
