"""Resolution levels of one image, each decoded only when something asks for it.

A full-size mammogram is 3328 x 4096 pixels; the models read 256 px and a
screen panel shows about 1000. Decoding the whole frame for either wastes
seconds per image (JPEG 2000: 2.3 s at full size, 0.024 s at 1/8). So an image
is held as an :class:`ImagePyramid`: level ``k`` is the image at ``1 / 2**k``
of its size (``ceil(side / 2**k)`` pixels), level 0 the full resolution.

- A JPEG 2000 frame (transfer syntaxes 1.2.840.10008.1.2.4.90 / .91) decodes
  any of its resolution levels directly (Pillow's ``reduce``): the wavelet
  low-pass of the lossless code stream, no full decode first.
- Any other image is decoded once at full size; the smaller levels are 2x2
  block means of the level above, made when asked for.

Levels are cached (a lock makes each decode happen once across threads); the
pixels of every level go through the same value mapping as the full image
(``present``), so windowing and grey values agree between levels. Memory:
the levels of a pyramid add at most a third to the largest level decoded.

:class:`LevelledStudyImage` is a :class:`~core_model.domain.study.StudyImage` whose
``pixels`` (full resolution) are decoded on first access; code that needs
less reads :func:`pixels_for` instead.
"""

from __future__ import annotations

import threading
from io import BytesIO
from typing import Callable

import numpy as np

from core_model.domain.study import StudyImage

J2K_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"})
# Halve down to about this long side; smaller levels help nobody.
COARSEST_LONG_SIDE = 128


def level_shape(shape: tuple[int, int], k: int) -> tuple[int, int]:
    """The size of level ``k`` of an image of ``shape`` (JPEG 2000's rule: ceil(side / 2**k))."""
    f = 1 << k
    return (-(-int(shape[0]) // f), -(-int(shape[1]) // f))


def half(a: np.ndarray) -> np.ndarray:
    """The next level: 2x2 block means (an odd last row/column is averaged with itself)."""
    h, w = a.shape
    if h % 2 or w % 2:
        a = np.pad(a, ((0, h % 2), (0, w % 2)), mode="edge")
    s = a[0::2, 0::2].astype(np.float32)
    s += a[1::2, 0::2]
    s += a[0::2, 1::2]
    s += a[1::2, 1::2]
    s *= 0.25
    if np.issubdtype(a.dtype, np.integer):
        return np.rint(s).astype(a.dtype)
    return s.astype(a.dtype)


def j2k_info(frame: bytes) -> tuple[int, bool, int]:
    """(bits per sample, signed, decomposition levels) of a JPEG 2000 code stream, from its SIZ and COD markers."""
    siz, cod = frame.find(b"\xff\x51"), frame.find(b"\xff\x52")
    if siz < 0 or siz + 41 > len(frame) or cod < 0 or cod + 10 > len(frame):
        raise ValueError("not a JPEG 2000 code stream (no SIZ / COD marker)")
    ssiz = frame[siz + 40]  # after Lsiz Rsiz, eight 4-byte sizes and offsets, Csiz
    return (ssiz & 0x7F) + 1, bool(ssiz & 0x80), int(frame[cod + 9])


def j2k_native_levels(frame: bytes, shape: tuple[int, int]) -> int:
    """How many levels Pillow decodes directly from this code stream.

    JPEG 2000 levels are ceil(side / 2**k) pixels; Pillow sizes its output by
    rounding instead, and refuses a level where the two differ, so the levels
    stop before the first such size (the rest are halved from the last one).
    """
    _, _, levels = j2k_info(frame)
    k = 0
    while k < levels:
        power = 1 << (k + 1)
        pillow = tuple((int(n) + (power >> 1)) // power for n in shape)  # Pillow's size for reduce = k + 1
        if pillow != level_shape(shape, k + 1):
            break
        k += 1
    return k


def decode_j2k(frame: bytes, reduce: int = 0) -> np.ndarray:
    """One JPEG 2000 code stream decoded at resolution level ``reduce``: the stored values (uint8/uint16).

    Pillow spreads 9-15 bit samples over 16 bits; they are shifted back, so
    level 0 equals what pydicom's decoders give.
    """
    from PIL import Image

    bits, signed, _ = j2k_info(frame)
    if signed:
        raise ValueError("signed JPEG 2000 samples are not read level by level")
    im = Image.open(BytesIO(frame))
    im.reduce = int(reduce)
    im.load()
    arr = np.asarray(im)
    if arr.dtype == np.uint16 and 8 < bits < 16:
        arr = arr >> (16 - bits)
    elif arr.dtype != np.uint8 and arr.dtype != np.uint16:
        raise ValueError(f"unexpected JPEG 2000 pixel type {arr.dtype}")
    return arr


class ImagePyramid:
    """Levels 0 (full) .. ``n_levels - 1`` of one image, decoded on demand and cached.

    ``decode(k)`` returns level ``k`` for the levels ``0 .. native`` a decoder
    makes directly; further levels are halved from the nearest one above.
    """

    def __init__(self, full_shape: tuple[int, int], decode: Callable[[int], np.ndarray], native: int = 0,
                 content_digest: str | None = None):
        self.full_shape = (int(full_shape[0]), int(full_shape[1]))
        # sha256 of what the levels are decoded from (with the value mapping), when that identifies the pixels
        self.content_digest = content_digest
        self._decode = decode
        self.native = int(native)
        n = 1
        while max(level_shape(self.full_shape, n)) >= COARSEST_LONG_SIDE and n < 12:
            n += 1
        self.n_levels = max(n, self.native + 1)
        self._levels: dict[int, np.ndarray] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_array(cls, pixels: np.ndarray) -> "ImagePyramid":
        """A pyramid over pixels already decoded (level 0 is ``pixels`` itself, no copy)."""
        p = cls(pixels.shape, lambda k: pixels, native=0)
        p._levels[0] = pixels
        return p

    def shape(self, k: int) -> tuple[int, int]:
        return level_shape(self.full_shape, k)

    def decoded(self, k: int) -> bool:
        return k in self._levels

    def decoded_levels(self) -> list[int]:
        return sorted(self._levels)

    def level(self, k: int) -> np.ndarray:
        """Level ``k`` (decoded now if needed; safe to call from several threads)."""
        k = max(0, min(int(k), self.n_levels - 1))
        hit = self._levels.get(k)
        if hit is not None:
            return hit
        with self._lock:
            hit = self._levels.get(k)
            if hit is not None:
                return hit
            if k <= self.native:
                arr = self._decode(k)
                if tuple(arr.shape) != self.shape(k):
                    raise ValueError(f"level {k} decoded as {arr.shape}, expected {self.shape(k)}")
            else:
                # halve from the nearest level already there (a decoder's own levels count from ``native``)
                above = max((j for j in self._levels if self.native <= j < k), default=self.native)
                arr = self.level(above)
                for _ in range(k - above):
                    arr = half(arr)
            self._levels[k] = arr
            return arr

    def level_for(self, long_side: int) -> int:
        """The smallest level whose long side is still at least ``long_side`` (0 when none is)."""
        k = 0
        while k + 1 < self.n_levels and max(self.shape(k + 1)) >= long_side:
            k += 1
        return k

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._levels.values())


class LevelledStudyImage(StudyImage):
    """A study image whose full-resolution ``pixels`` are decoded on first access.

    Made with ``pixels=`` an :class:`ImagePyramid`; assigning an array replaces
    the pyramid by one over that array.
    """

    pyramid: ImagePyramid

    @property  # type: ignore[override]
    def pixels(self) -> np.ndarray:
        return self.pyramid.level(0)

    @pixels.setter
    def pixels(self, value) -> None:
        self.pyramid = value if isinstance(value, ImagePyramid) else ImagePyramid.from_array(np.asarray(value))

    def __post_init__(self) -> None:  # StudyImage's checks, without decoding the pixels
        self._check_slot()

    @property
    def shape(self) -> tuple[int, int]:
        return self.pyramid.full_shape

    @property
    def content_digest(self) -> str | None:
        """Identifies the full-resolution pixels without decoding them (see ImagePyramid.content_digest)."""
        return self.pyramid.content_digest

    @property
    def pixel_dtype(self) -> np.dtype:
        decoded = self.pyramid.decoded_levels()
        return self.pyramid.level(decoded[0] if decoded else self.pyramid.n_levels - 1).dtype


def pyramid_of(image: StudyImage) -> ImagePyramid:
    """The image's pyramid (made over its pixels, and kept on the image, when it has none)."""
    p = getattr(image, "pyramid", None)
    if p is None:
        p = ImagePyramid.from_array(image.pixels)
        try:
            object.__setattr__(image, "pyramid", p)
        except AttributeError:
            pass
    return p


def pixels_for(image: StudyImage, long_side: int) -> tuple[np.ndarray, float]:
    """(pixels, scale): the smallest level whose long side is at least ``long_side``, and its
    size over the full image's (1.0 for level 0)."""
    p = pyramid_of(image)
    k = p.level_for(long_side)
    arr = p.level(k)
    return arr, arr.shape[1] / p.full_shape[1]
