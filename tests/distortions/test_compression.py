"""Tests of distortions/compression.py: JPEG against the original's Pillow encoder, JPEG 2000
PSNR targeting, the repair of OpenJPEG's lost DC level on flat input, tables, edge inputs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import distortions
from distortions import REGISTRY, compression
from tests.distortions import helpers
from tests.distortions.helpers import photo, psnr

NAMES = ("compression_jpeg", "compression_jpeg_2000")

PHOTO = photo("chelsea", 64)  # real photo, 64 x 96, read-only


def _pillow_jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """The original's JPEG round trip (Pillow, default settings)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.array(im.convert("RGB"))


# ------------------------------------------------------------------------------ tables


def test_tables_equal_the_spec() -> None:
    assert [p.quality for p in compression._JPEG] == [25, 18, 12, 8, 5]
    assert [p.psnr_db for p in compression._JPEG2000] == [29, 27.5, 26, 24.5, 23]
    for name, table in [("compression_jpeg", compression._JPEG),
                        ("compression_jpeg_2000", compression._JPEG2000)]:
        spec = REGISTRY[name]
        assert spec.table == table
        assert spec.category == "compression"
        assert spec.random is False


# ------------------------------------------------------------------------------ JPEG


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_jpeg_equals_the_original_pillow_encoder(severity: int) -> None:
    quality = compression._JPEG[severity - 1].quality
    ours = distortions.apply(PHOTO, "compression_jpeg", severity, np.random.default_rng(0))
    theirs = _pillow_jpeg(np.ascontiguousarray(PHOTO), quality)
    # bit-identical with the libjpeg-turbo builds of OpenCV 5.0 / Pillow 13; allow rounding
    # differences should the bundled libraries drift apart
    assert np.abs(ours.astype(int) - theirs).mean() < 0.25
    assert psnr(ours, theirs) > 45


def test_jpeg_quality_orders_psnr_and_shows_blocks() -> None:
    img = photo("astronaut", 128)
    qualities = [95, 50, 25, 12, 5]
    values = [psnr(compression._jpeg(img, quality=q), img) for q in qualities]
    assert all(b < a for a, b in zip(values, values[1:])), values
    # 8 x 8 blocking: at quality 5 the jumps across block borders exceed those inside blocks
    out = compression._jpeg(img, quality=5).astype(np.float64).mean(axis=2)
    jumps = np.abs(np.diff(out, axis=1)).mean(axis=0)
    border = jumps[7::8].mean()
    inside = np.delete(jumps, np.s_[7::8]).mean()
    assert border > 1.5 * inside


# ------------------------------------------------------------------------------ JPEG 2000


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_jpeg2000_reaches_the_target_psnr(severity: int) -> None:
    img = photo("astronaut", 128)
    target = compression._JPEG2000[severity - 1].psnr_db
    out, notes = distortions.apply_with_notes(img, "compression_jpeg_2000", severity,
                                              np.random.default_rng(0))
    assert target - 1.0 <= psnr(out, img) <= target + 0.5
    assert notes == []  # the DC repair never fires on a photo


def test_jpeg2000_psnr_falls_with_severity_on_several_photos() -> None:
    for name in ("coffee", "rocket", "chelsea"):
        img = photo(name, 96)
        values = [psnr(distortions.apply(img, "compression_jpeg_2000", s,
                                         np.random.default_rng(0)), img) for s in range(1, 6)]
        assert all(b < a + 0.05 for a, b in zip(values, values[1:])), values
        assert values[0] - values[-1] > 3.5


@pytest.mark.parametrize(
    ("colour", "side"),
    [((200, 30, 90), 64), ((10, 250, 60), 32), ((180, 120, 60), 48), ((0, 0, 255), 40)],
)
def test_flat_colour_survives_jpeg2000(colour: tuple[int, int, int], side: int) -> None:
    flat = np.tile(np.array(colour, np.uint8), (side, side + 8, 1))
    raw = compression._jpeg2000_codec(flat, 29.0)
    assert np.abs(raw.astype(int) - flat).max() > 20  # the OpenJPEG defect is real here
    for severity in range(1, 6):
        out, notes = distortions.apply_with_notes(flat, "compression_jpeg_2000", severity,
                                                  np.random.default_rng(0))
        np.testing.assert_array_equal(out, flat)  # every channel intact
        assert len(notes) == 1 and "DC level" in notes[0] and "restored" in notes[0]


@pytest.mark.parametrize("value", [0, 128, 255])
def test_flat_grey_black_white_need_no_repair(value: int) -> None:
    flat = np.full((40, 40, 3), value, np.uint8)
    out, notes = distortions.apply_with_notes(flat, "compression_jpeg_2000", 5,
                                              np.random.default_rng(0))
    np.testing.assert_array_equal(out, flat)
    assert notes == []


def test_near_flat_keeps_its_channel_means() -> None:
    rng = np.random.default_rng(1)
    base = np.tile(np.array([200, 30, 90], np.int16), (64, 64, 1))
    near = np.clip(base + rng.integers(-1, 2, base.shape), 0, 255).astype(np.uint8)
    out, notes = distortions.apply_with_notes(near, "compression_jpeg_2000", 5, rng)
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), near.reshape(-1, 3).mean(0), atol=1.0)
    assert np.abs(out.astype(int) - near).max() <= 3
    assert notes


def test_flat_channel_in_a_photo_keeps_its_level() -> None:
    img = np.array(PHOTO)
    img[:, :, 1] = 77  # one flat channel, two textured ones
    out = distortions.apply(img, "compression_jpeg_2000", 5, np.random.default_rng(0))
    assert abs(float(out[:, :, 1].mean()) - 77) <= 2.0
    assert psnr(out, img) > 20


def test_repair_only_moves_channels_that_lost_their_dc() -> None:
    src = np.tile(np.array([200, 30, 90], np.uint8), (32, 32, 1))
    src[::2, ::2, 0] = 210  # R textured: its small mean error stays
    decoded = src.copy()
    decoded[:, :, 0] += 3
    decoded[:, :, 2] = 128  # B reset to 128: the defect
    fixed = compression._repair_lost_dc(src, decoded, 23.0)
    np.testing.assert_array_equal(fixed[:, :, 0], decoded[:, :, 0])
    np.testing.assert_array_equal(fixed[:, :, 1:], src[:, :, 1:])
    untouched = compression._repair_lost_dc(src, src, 23.0)
    assert untouched is src


# ------------------------------------------------------------------------------ edge inputs


@pytest.mark.parametrize("name", NAMES)
def test_grey_stays_grey_and_tiny_images_work(name: str) -> None:
    for severity in (1, 5):
        grey, out, tiny, small = helpers.grey_and_tiny_results(name, PHOTO, severity)
        assert psnr(out[:, :, 0], grey) > 18
        assert 18 < psnr(small, tiny) < 40


@pytest.mark.parametrize("name", NAMES)
def test_functions_take_views_without_writing(name: str) -> None:
    for view in helpers.VIEWS:
        helpers.assert_view_gives_the_contiguous_result(
            name, PHOTO, view, severity=3, seed=6, read_only=True
        )


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_whatever_the_seed(name: str) -> None:
    a = distortions.apply(PHOTO, name, 2, np.random.default_rng(1))
    b = distortions.apply(PHOTO, name, 2, np.random.default_rng(2))
    assert a.tobytes() == b.tobytes()
