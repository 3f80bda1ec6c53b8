"""The social-security card photo, checked against its spec before it is sent; no image library needed.

The ministry's photo standard (quoted in the Guangxi seed): 358 × 441 px, 350 dpi, 24-bit colour JPEG. Published file
size limits disagree (30–50 KB in the Guangxi seed, 14–40 KB elsewhere), so the byte range comes from settings.
Only the headers are read: the frame header (SOF) for the pixel size and colour depth, the JFIF header for the density.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PhotoSpec:
    width: int = 358
    height: int = 441
    dpi: int = 350
    min_bytes: int = 30 * 1024
    max_bytes: int = 50 * 1024


@dataclass(frozen=True)
class JpegInfo:
    width: int
    height: int
    precision: int  # bits per component
    components: int  # 3 for colour (YCbCr), 1 for greyscale
    dpi: tuple[float, float] | None  # None: no JFIF header, or one that gives an aspect ratio only


@dataclass(frozen=True)
class PhotoProblem:
    code: str  # format | size | dimensions | dpi | colour
    zh: str
    en: str


class NotAJpeg(ValueError):
    pass


# Start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field (RSTn, TEM).
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}


def read_jpeg(data: bytes) -> JpegInfo:
    """Walk the marker segments up to the first frame header."""
    if data[:2] != b"\xff\xd8":
        raise NotAJpeg("no JPEG start-of-image marker")
    pos = 2
    dpi: tuple[float, float] | None = None
    while True:
        if pos >= len(data) or data[pos] != 0xFF:
            raise NotAJpeg(f"expected a marker at byte {pos}")
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes may precede a marker
            pos += 1
        if pos >= len(data):
            raise NotAJpeg("truncated before a marker")
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD9, 0xDA):
            raise NotAJpeg("no frame header before the image data")
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > len(data):
            raise NotAJpeg(f"segment {marker:#04x} runs past the end of the file")
        payload = data[pos + 2 : pos + length]
        if marker == 0xE0 and payload[:5] == b"JFIF\x00" and len(payload) >= 12:
            units, x, y = payload[7], int.from_bytes(payload[8:10], "big"), int.from_bytes(payload[10:12], "big")
            if units == 1:
                dpi = (float(x), float(y))
            elif units == 2:  # dots per centimetre
                dpi = (x * 2.54, y * 2.54)
        elif marker in _SOF_MARKERS:
            if len(payload) < 6:
                raise NotAJpeg("frame header too short")
            return JpegInfo(width=int.from_bytes(payload[3:5], "big"), height=int.from_bytes(payload[1:3], "big"),
                            precision=payload[0], components=payload[5], dpi=dpi)
        pos += length


def photo_problems(data: bytes, spec: PhotoSpec) -> list[PhotoProblem]:
    """Everything wrong with the photo, each said for the applicant in Chinese and English; [] when it fits."""
    problems: list[PhotoProblem] = []
    if not spec.min_bytes <= len(data) <= spec.max_bytes:
        low, high, actual = spec.min_bytes / 1024, spec.max_bytes / 1024, len(data) / 1024
        problems.append(PhotoProblem(
            "size", f"照片文件大小应为{low:g}–{high:g}KB，实际为{actual:.1f}KB",
            f"the photo file must be {low:g}–{high:g} KB, not {actual:.1f} KB"))
    try:
        info = read_jpeg(data)
    except NotAJpeg as exc:
        problems.append(PhotoProblem("format", "照片不是有效的JPG文件", f"the photo is not a valid JPEG file ({exc})"))
        return problems
    if (info.width, info.height) != (spec.width, spec.height):
        problems.append(PhotoProblem(
            "dimensions", f"照片应为{spec.width}×{spec.height}像素（宽×高），实际为{info.width}×{info.height}像素",
            f"the photo must be {spec.width}×{spec.height} px (width × height), not {info.width}×{info.height}"))
    # Dots per centimetre never land exactly on 350 dpi (138 dpcm = 350.5 dpi): allow under one dot of difference.
    if info.dpi is None or any(abs(d - spec.dpi) >= 1 for d in info.dpi):
        actual_dpi = "未标注" if info.dpi is None else f"{info.dpi[0]:.0f}×{info.dpi[1]:.0f}dpi"
        problems.append(PhotoProblem(
            "dpi", f"照片分辨率应为{spec.dpi}dpi，实际为{actual_dpi}",
            f"the photo must be {spec.dpi} dpi, not {'unstated' if info.dpi is None else actual_dpi}"))
    if info.components != 3 or info.precision != 8:
        problems.append(PhotoProblem("colour", "照片应为24位彩色JPG", "the photo must be a 24-bit colour JPEG"))
    return problems
