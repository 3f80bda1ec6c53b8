"""The card photo check reads JPEG headers built here by hand (SOI, APP0 JFIF, frame header, padding, EOI)."""

import pytest

from adapters.hrss.photo import PhotoSpec, photo_problems, read_jpeg

GUANGXI = PhotoSpec()  # 358 × 441 px, 350 dpi, 30–50 KB


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def jfif(density: tuple[int, int] = (350, 350), units: int = 1) -> bytes:
    x, y = density
    header = b"JFIF\x00\x01\x02" + bytes([units]) + x.to_bytes(2, "big") + y.to_bytes(2, "big")
    return segment(0xE0, header + b"\x00\x00")  # no thumbnail


def frame(width: int = 358, height: int = 441, components: int = 3, precision: int = 8, marker: int = 0xC0) -> bytes:
    specs = b"".join(bytes([i + 1, 0x11, 0]) for i in range(components))
    return segment(marker, bytes([precision]) + height.to_bytes(2, "big") + width.to_bytes(2, "big")
                   + bytes([components]) + specs)


def jpeg(*headers: bytes, size: int = 40 * 1024) -> bytes:
    """SOI, the given segments, a comment segment padding the file to `size` bytes, EOI."""
    head = b"\xff\xd8" + b"".join(headers)
    padding = size - len(head) - 2 - 4
    assert padding >= 0
    return head + segment(0xFE, b"\x00" * padding) + b"\xff\xd9"


def codes(data: bytes, spec: PhotoSpec = GUANGXI) -> list[str]:
    return [problem.code for problem in photo_problems(data, spec)]


@pytest.mark.parametrize("size", [30 * 1024, 40 * 1024, 50 * 1024])
def test_photo_to_spec_passes(size):
    data = jpeg(jfif(), frame(), size=size)
    assert len(data) == size
    assert codes(data) == []


def test_headers_are_read_as_width_height_and_density():
    info = read_jpeg(jpeg(jfif((300, 350)), frame(width=358, height=441)))
    assert (info.width, info.height, info.components, info.precision) == (358, 441, 3, 8)
    assert info.dpi == (300.0, 350.0)


@pytest.mark.parametrize("size", [30 * 1024 - 1, 50 * 1024 + 1, 14 * 1024])
def test_file_size_outside_the_range_is_refused(size):
    assert codes(jpeg(jfif(), frame(), size=size)) == ["size"]


def test_byte_range_comes_from_the_spec():
    data = jpeg(jfif(), frame(), size=45 * 1024)
    assert codes(data) == []
    assert codes(data, PhotoSpec(min_bytes=14 * 1024, max_bytes=40 * 1024)) == ["size"]


@pytest.mark.parametrize(("width", "height"), [(441, 358), (357, 441), (358, 442), (716, 882)])
def test_wrong_pixel_size_is_refused(width, height):
    problems = photo_problems(jpeg(jfif(), frame(width=width, height=height)), GUANGXI)
    assert [p.code for p in problems] == ["dimensions"]
    assert f"{width}×{height}" in problems[0].zh and "358×441" in problems[0].en


@pytest.mark.parametrize("headers", [
    (jfif((72, 72)), frame()),  # the common screen default
    (jfif((350, 300)), frame()),
    (jfif((1, 1), units=0), frame()),  # an aspect ratio, no physical density
    (frame(),),  # no JFIF header at all
])
def test_wrong_or_missing_density_is_refused(headers):
    assert codes(jpeg(*headers)) == ["dpi"]


def test_density_in_dots_per_centimetre_is_converted():
    assert codes(jpeg(jfif((138, 138), units=2), frame())) == []  # 138 dpcm = 350.5 dpi
    assert codes(jpeg(jfif((118, 118), units=2), frame())) == ["dpi"]  # 300 dpi


def test_greyscale_is_refused():
    assert codes(jpeg(jfif(), frame(components=1))) == ["colour"]


def test_other_segments_before_the_frame_are_skipped():
    huffman_table = segment(0xC4, b"\x00" * 29)  # DHT shares the SOF range but is no frame header
    exif = segment(0xE1, b"Exif\x00\x00" + b"\x00" * 100)
    data = jpeg(jfif(), exif, huffman_table, b"\xff", frame(marker=0xC2))  # a fill byte, then a progressive frame
    assert codes(data) == []


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 40_000,
    jpeg(jfif(), frame())[:20] + b"\x00" * 40_000,  # cut inside the headers
    b"\xff\xd8" + jfif() + b"\xff\xda" + b"\x00" * 40_000,  # image data before any frame header
])
def test_not_a_jpeg_is_refused(data):
    assert codes(data) == ["format"]
