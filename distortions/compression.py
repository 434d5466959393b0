"""Compression distortions: JPEG and JPEG 2000 encode/decode round trips.

Both are deterministic (``rng`` unused) and work in memory (no files). JPEG goes through
OpenCV's libjpeg-turbo, JPEG 2000 through Pillow's OpenJPEG binding. A known OpenJPEG
defect (a flat channel loses its DC level and comes back as 128) is detected and repaired
here, with a note in the sample's metadata (see `compression_jpeg_2000`).
"""

from __future__ import annotations

import io
from typing import Final, NamedTuple

import cv2
import numpy as np
from PIL import Image

from distortions._notes import note
from distortions.registry import params_for, register

__all__ = [
    "Jpeg2000Params",
    "JpegParams",
    "compression_jpeg",
    "compression_jpeg_2000",
]

_CHANNELS: Final = ("R", "G", "B")


# --------------------------------------------------------------------------- compression_jpeg


class JpegParams(NamedTuple):
    """compression_jpeg: libjpeg quality factor (1..100, IJG tables, 4:2:0 chroma)."""

    quality: int


# DQ-495K catalogue (spec table); the original saved with Pillow at these qualities.
_JPEG: Final = tuple(JpegParams(q) for q in (25, 18, 12, 8, 5))


def _jpeg(image: np.ndarray, *, quality: int) -> np.ndarray:
    # OpenCV rather than Pillow (the original's encoder): both wrap libjpeg-turbo with the
    # IJG quality tables, 4:2:0 chroma subsampling and the islow DCT, and give bit-identical
    # images at the five qualities (checked in tests/distortions/test_compression.py), but
    # cv2 skips the PIL.Image wrapping: 0.3 ms vs 0.8 ms at 224 px. The sampling factor is
    # pinned so a change of OpenCV's default cannot silently change the data.
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    params = [
        cv2.IMWRITE_JPEG_QUALITY, int(quality),
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
    ]
    ok, buf = cv2.imencode(".jpg", bgr, params)
    if not ok:  # pragma: no cover - libjpeg does not fail on a valid uint8 image
        msg = f"JPEG encoding failed at quality {quality}"
        raise RuntimeError(msg)
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


@register("compression_jpeg", category="compression", table=_JPEG)
def compression_jpeg(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG encode/decode round trip.

    Severity: quality 25 -> 5 (blocking, ringing, chroma bleeding). Deterministic.

    References: KADID-10K; imagecorruptions ``jpeg_compression``.
    """
    return _jpeg(image, quality=params_for(_JPEG, severity).quality)


# --------------------------------------------------------------------------- compression_jpeg_2000


class Jpeg2000Params(NamedTuple):
    """compression_jpeg_2000: target PSNR (dB) of the single quality layer."""

    psnr_db: float


# DQ-495K catalogue (spec table); the original: Pillow, quality_mode="dB", one layer.
_JPEG2000: Final = tuple(Jpeg2000Params(d) for d in (29.0, 27.5, 26.0, 24.5, 23.0))
# A channel whose input has at most this standard deviation (levels) counts as near-flat.
_FLAT_STD: Final = 1.0
# DC error (levels) tolerated on a flat channel before it counts as a lost DC level.
_FLAT_DC_TOL: Final = 2.0


def _jpeg2000_codec(image: np.ndarray, psnr_db: float) -> np.ndarray:
    """Raw OpenJPEG round trip: one layer at `psnr_db`, 9/7 wavelet, RGB -> YCbCr (ICT).

    ``irreversible=True`` (9/7 wavelet) is JPEG 2000's lossy mode; ``mct=1`` is OpenJPEG's
    own default for 3-component images (opj_compress). The original used Pillow's defaults
    (reversible 5/3 wavelet, no colour transform); with ICT the same PSNR costs fewer bytes
    and the encode is faster (about 13 ms instead of 20-28 ms at 224 px). A raw codestream
    (no_jp2) skips the JP2 boxes nobody reads here.
    """
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(
        buf,
        "JPEG2000",
        quality_mode="dB",
        quality_layers=[float(psnr_db)],
        irreversible=True,
        mct=1,
        no_jp2=True,
    )
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.array(decoded.convert("RGB"))


def _repair_lost_dc(image: np.ndarray, decoded: np.ndarray, psnr_db: float) -> np.ndarray:
    """Restore the mean of channels whose DC level OpenJPEG lost; note the repair.

    OpenJPEG 2.5's rate allocation sometimes drops the DC level of a (near-)flat component:
    a flat (200, 30, 90) comes back as (204, 30, 128) (or, with the colour transform, as
    (245, 69, 128)), far below the PSNR target. A codec meeting the target cannot move a
    channel's mean by more than the whole RMS error budget 255 * 10^(-dB / 20) (9 levels at
    29 dB, 18 at 23 dB), and on photos the measured mean error stays under half of it; on a
    near-flat channel (std <= 1 level) any error above 2 levels is the defect (a constant
    is coded exactly).
    Such channels are shifted back by the mean error, which restores a flat channel
    exactly and keeps whatever texture the codec did code.
    """
    budget = 255.0 * 10.0 ** (-psnr_db / 20.0)
    # cv2's per-channel statistics: one pass, ~0.1 ms (numpy axis-0 reductions: ~5 ms).
    mean_in, std_in = (v.ravel()[:3] for v in cv2.meanStdDev(image))
    mean_out = np.array(cv2.mean(decoded)[:3])
    tol = np.where(std_in <= _FLAT_STD, _FLAT_DC_TOL, budget)
    lost = np.abs(mean_out - mean_in) > tol
    if not lost.any():
        return decoded
    fix = np.where(lost, np.rint(mean_in - mean_out), 0.0)
    repaired = np.clip(decoded.astype(np.int16) + fix.astype(np.int16), 0, 255).astype(np.uint8)
    channels = ", ".join(c for c, bad in zip(_CHANNELS, lost) if bad)
    note(
        f"compression_jpeg_2000: OpenJPEG lost the DC level of channel(s) {channels} "
        "(flat or near-flat input); restored the channel mean"
    )
    return repaired


def _jpeg2000(image: np.ndarray, *, psnr_db: float) -> np.ndarray:
    decoded = _jpeg2000_codec(image, psnr_db)
    return _repair_lost_dc(np.ascontiguousarray(image), decoded, psnr_db)


@register("compression_jpeg_2000", category="compression", table=_JPEG2000)
def compression_jpeg_2000(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG 2000 encode/decode round trip with one quality layer at a target PSNR.

    The achieved PSNR is typically within 0.6 dB below the target at 224 px (within about
    1.5 dB on 32 px images, which have few wavelet coefficients to trade). Flat or near-flat
    channels whose DC level the codec loses are repaired (`_repair_lost_dc`) and noted.

    Severity: target PSNR 29 -> 23 dB (blur and ringing around edges). Deterministic.

    References: KADID-10K; OpenJPEG ``-q`` (quality in dB) mode.
    """
    return _jpeg2000(image, psnr_db=params_for(_JPEG2000, severity).psnr_db)
