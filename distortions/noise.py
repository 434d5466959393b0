"""Noise distortions: Gaussian (RGB, YCrCb), speckle, spatially correlated, Poisson, impulse.

Every function draws its random values from the `rng` argument first (float32 normals and
uniforms straight from the Generator: cheaper than float64, and plenty for 8-bit output),
then calls a private deterministic kernel with named parameters. Images are scaled to
float32 in [0, 1], and results are clipped and rounded to nearest (the original truncated,
shifting the mean down by about half a level).
"""

from __future__ import annotations

import functools
from typing import Final, NamedTuple

import cv2
import numpy as np

from distortions._checks import to_float, to_uint8
from distortions.registry import params_for, register

__all__ = [
    "CorrelatedParams",
    "GaussianParams",
    "ImpulseParams",
    "PoissonParams",
    "SpeckleParams",
    "YCrCbNoiseParams",
    "noise_gaussian_RGB",
    "noise_gaussian_YCrCb",
    "noise_impulse",
    "noise_poisson",
    "noise_spatially_correlated",
    "noise_speckle",
]


class GaussianParams(NamedTuple):
    """noise_gaussian_RGB: standard deviation of the additive noise (image in [0, 1])."""

    sigma: float


class YCrCbNoiseParams(NamedTuple):
    """noise_gaussian_YCrCb: luma sigma; chroma sigma = sigma_y * chroma_factor."""

    sigma_y: float
    chroma_factor: float


class SpeckleParams(NamedTuple):
    """noise_speckle: standard deviation s of the multiplicative term x * N(0, s)."""

    scale: float


class CorrelatedParams(NamedTuple):
    """noise_spatially_correlated: sigma of the noise before the 3 x 3 box filter."""

    sigma: float


class PoissonParams(NamedTuple):
    """noise_poisson: photon count at white; output = Poisson(x * lam) / lam."""

    lam: float


class ImpulseParams(NamedTuple):
    """noise_impulse: fraction of pixel values replaced by salt (255) or pepper (0)."""

    amount: float


# Parameters per severity 1..5, from the DQ-495K catalogue (spec table; the original
# build's noise.py took them from KADID-10k and imagecorruptions).
_GAUSSIAN_RGB: Final = tuple(GaussianParams(s) for s in (0.05, 0.10, 0.15, 0.20, 0.25))
_GAUSSIAN_YCRCB: Final = tuple(
    YCrCbNoiseParams(sy, f)
    for sy, f in ((0.05, 1.0), (0.06, 1.45), (0.07, 1.9), (0.08, 2.35), (0.09, 2.8))
)
_SPECKLE: Final = tuple(SpeckleParams(s) for s in (0.14, 0.21, 0.28, 0.35, 0.42))
_CORRELATED: Final = tuple(CorrelatedParams(s) for s in (0.08, 0.11, 0.14, 0.18, 0.22))
_POISSON: Final = tuple(PoissonParams(lam) for lam in (80, 60, 40, 25, 15))
_IMPULSE: Final = tuple(ImpulseParams(a) for a in (0.01, 0.03, 0.05, 0.07, 0.10))

# Share of salt among the replaced values (skimage's `salt_vs_pepper` default).
_SALT_FRACTION: Final = 0.5
# Cells of the guide table of the Poisson inverse-CDF sampler (see _poisson_tables).
_GUIDE_CELLS: Final = 256


def _normals(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 draws of `shape` (float32 ziggurat: ~2x cheaper than float64)."""
    return rng.standard_normal(shape, dtype=np.float32)


# ------------------------------------------------------------------------------------ kernels


def _additive(image: np.ndarray, normals: np.ndarray, *, sigma: float) -> np.ndarray:
    """x + sigma * n, clipped and rounded."""
    out = to_float(image)
    cv2.scaleAdd(normals, sigma, out, dst=out)
    return to_uint8(out, overwrite=True)


def _additive_ycrcb(
    image: np.ndarray, normals: np.ndarray, *, sigma_y: float, sigma_c: float
) -> np.ndarray:
    """Add sigma_y * n to Y and sigma_c * n to Cr and Cb (OpenCV float YCrCb), back to RGB.

    `normals` is overwritten. The noisy YCrCb values are not clipped before the conversion
    back (as in the original): only the RGB result is clipped.
    """
    ycc = to_float(image)
    cv2.cvtColor(ycc, cv2.COLOR_RGB2YCrCb, dst=ycc)
    # cv2 per-channel scalars and in-place outputs: numpy broadcasting over a length-3 last
    # axis is slow, and every fresh image-sized temporary costs page faults
    cv2.multiply(normals, (sigma_y, sigma_c, sigma_c, 0.0), dst=normals)
    cv2.add(ycc, normals, dst=ycc)
    cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB, dst=ycc)
    return to_uint8(ycc, overwrite=True)


def _speckle(image: np.ndarray, normals: np.ndarray, *, scale: float) -> np.ndarray:
    """x + x * s * n = x * (1 + s * n): noise proportional to the signal (black stays black).

    `normals` is overwritten.
    """
    x = to_float(image)
    factor = normals
    factor *= np.float32(scale)
    factor += np.float32(1.0)
    x *= factor
    return to_uint8(x, overwrite=True)


def _correlated(image: np.ndarray, normals: np.ndarray, *, sigma: float) -> np.ndarray:
    """Additive noise, then a 3 x 3 box filter over the (unclipped) noisy image.

    The filter (cv2.blur, reflect-101 borders) correlates neighbouring noise values and
    divides its standard deviation by 3; clipping happens once, at the end. `normals` is
    overwritten.
    """
    noisy = to_float(image)
    cv2.scaleAdd(normals, sigma, noisy, dst=noisy)
    cv2.blur(noisy, (3, 3), dst=normals)
    return to_uint8(normals, overwrite=True)


class _PoissonTables(NamedTuple):
    """Inverse-CDF tables of Poisson(v * lam / 255) for every uint8 value v (one lam)."""

    scaled_cdf: np.ndarray  # float64 (256 * (K + 1)): P(X <= k) * cells, row v; last = +inf
    guide: np.ndarray  # int32 (256 * cells): #{k : P(X <= k) <= c / cells}, row v
    cdf_rows: np.ndarray  # int32 (256,): offset of row v in scaled_cdf
    guide_rows: np.ndarray  # int32 (256,): offset of row v in guide
    to_uint8: np.ndarray  # uint8 (K + 1,): count k -> round(clip(k / lam) * 255)


@functools.lru_cache(maxsize=8)
def _poisson_tables(lam: float) -> _PoissonTables:
    """Build (a few ms, once per lam) the tables of `_poisson_counts`.

    The support is cut at K = lam + 15 sqrt(lam) + 25, beyond which the mass is below 1e-40
    for lam <= 80. The CDF is stored multiplied by the number of guide cells (a power of
    two, so the products are exact) to compare with uniforms scaled the same way.
    """
    mu = np.arange(256, dtype=np.float64) * (lam / 255.0)
    kmax = int(np.ceil(lam + 15.0 * np.sqrt(lam) + 25.0))
    k = np.arange(kmax + 1, dtype=np.float64)
    log_factorial = np.concatenate(([0.0], np.cumsum(np.log(k[1:]))))
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) for v = 0, fixed below
        log_pmf = k[None, :] * np.log(mu)[:, None] - mu[:, None] - log_factorial[None, :]
    log_pmf[0, :] = -np.inf  # mu = 0: X = 0 surely
    log_pmf[0, 0] = 0.0
    cdf = np.cumsum(np.exp(log_pmf), axis=1)
    cdf[:, -1] = np.inf  # every uniform in [0, 1) stops here at the latest
    starts = np.arange(_GUIDE_CELLS, dtype=np.float64) / _GUIDE_CELLS
    guide = np.stack([np.searchsorted(row, starts, side="right") for row in cdf])
    levels = np.arange(256, dtype=np.int32)
    return _PoissonTables(
        scaled_cdf=(cdf * _GUIDE_CELLS).reshape(-1),
        guide=guide.astype(np.int32).reshape(-1),
        cdf_rows=levels * (kmax + 1),
        guide_rows=levels * _GUIDE_CELLS,
        to_uint8=to_uint8(k / lam),
    )


def _poisson_counts(image: np.ndarray, uniforms: np.ndarray, *, lam: float) -> np.ndarray:
    """Poisson(image / 255 * lam) draws by inversion: X = #{k : cdf(k) <= u}, u uniform.

    Exact to float64 precision: a guide table per value starts the search at the smallest
    count possible in the uniform's cell (1/256 of [0, 1)), and the few draws that lie
    past a CDF step inside their cell step up. The means take only 256 values, so all CDFs
    are tabulated once per lam; this is several times faster than Generator.poisson.
    Index arrays are int32 and reused (fewer image-sized allocations, fewer page faults).
    `uniforms` (float64 in [0, 1)) is overwritten.

    Returns:
        int32 counts, shape of `image`.
    """
    t = _poisson_tables(float(lam))
    v = image.reshape(-1)
    w = uniforms.reshape(-1)
    w *= _GUIDE_CELLS  # exact (power of two); compared with the CDF scaled the same way
    counts = w.astype(np.int32)  # the guide cell
    index = np.take(t.guide_rows, v)
    index += counts
    np.take(t.guide, index, out=counts)
    np.take(t.cdf_rows, v, out=index)
    index += counts
    todo = np.flatnonzero(w >= np.take(t.scaled_cdf, index))
    while todo.size:
        counts[todo] += 1
        index[todo] += 1
        todo = todo[w[todo] >= np.take(t.scaled_cdf, index[todo])]
    return counts.reshape(image.shape)


def _poisson_scale(counts: np.ndarray, *, lam: float) -> np.ndarray:
    """Photon counts -> image: counts / lam, clipped and rounded (one table lookup)."""
    return np.take(_poisson_tables(float(lam)).to_uint8, counts)


def _impulse(
    image: np.ndarray, uniforms: np.ndarray, *, amount: float, salt_fraction: float = _SALT_FRACTION
) -> np.ndarray:
    """Replace values whose uniform draw u < amount: salt (255) if u < amount * salt_fraction,
    else pepper (0); the rest keep their value.

    One uniform per value decides both whether it is hit and how (u < amount has
    probability `amount`; given a hit, u is uniform on [0, amount), so salt has probability
    `salt_fraction`).
    """
    salt_below = np.float32(amount * salt_fraction)
    out = image.copy()
    out[uniforms < np.float32(amount)] = 0
    out[uniforms < salt_below] = 255
    return out


# ---------------------------------------------------------------------------------- functions


@register("noise_gaussian_RGB", category="noise", table=_GAUSSIAN_RGB, random=True)
def noise_gaussian_RGB(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise, independent per pixel and channel.

    Severity: sigma grows from 0.05 to 0.25 (image in [0, 1]).

    References: KADID-10k (white noise); imagecorruptions gaussian_noise; DQ-495K.
    """
    p = params_for(_GAUSSIAN_RGB, severity)
    return _additive(image, _normals(rng, image.shape), sigma=p.sigma)


@register("noise_gaussian_YCrCb", category="noise", table=_GAUSSIAN_YCRCB, random=True)
def noise_gaussian_YCrCb(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise in YCrCb, stronger in the chroma channels.

    Severity: sigma_Y grows from 0.05 to 0.09 and the chroma factor from 1 to 2.8
    (sigma_Cr = sigma_Cb = sigma_Y x factor).

    References: KADID-10k (noise in colour components); DQ-495K noise_gaussian_YCrCb.
    """
    p = params_for(_GAUSSIAN_YCRCB, severity)
    normals = _normals(rng, image.shape)
    return _additive_ycrcb(
        image, normals, sigma_y=p.sigma_y, sigma_c=p.sigma_y * p.chroma_factor
    )


@register("noise_speckle", category="noise", table=_SPECKLE, random=True)
def noise_speckle(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative (speckle) noise x + x * N(0, s).

    Severity: s grows from 0.14 to 0.42.

    References: imagecorruptions speckle_noise; DQ-495K noise_speckle.
    """
    p = params_for(_SPECKLE, severity)
    return _speckle(image, _normals(rng, image.shape), scale=p.scale)


@register("noise_spatially_correlated", category="noise", table=_CORRELATED, random=True)
def noise_spatially_correlated(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Additive Gaussian noise smoothed by a 3 x 3 box filter (grainy, low-frequency noise).

    The box filter also smooths the image itself (a slight blur), as in the original.

    Severity: sigma grows from 0.08 to 0.22.

    References: TID2013 (spatially correlated noise); DQ-495K.
    """
    p = params_for(_CORRELATED, severity)
    return _correlated(image, _normals(rng, image.shape), sigma=p.sigma)


@register("noise_poisson", category="noise", table=_POISSON, random=True)
def noise_poisson(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Shot noise: Poisson(x * lam) / lam, so the variance at value x is x / lam.

    Drawn by inversion from one float64 uniform per value (see `_poisson_counts`): the
    Poisson means take only 256 values, so their CDFs are tabulated once per lam.

    Severity: lam falls from 80 to 15 (fewer photons, more noise).

    References: imagecorruptions shot_noise; DQ-495K noise_poisson.
    """
    p = params_for(_POISSON, severity)
    uniforms = rng.random(image.shape)
    return _poisson_scale(_poisson_counts(image, uniforms, lam=p.lam), lam=p.lam)


@register("noise_impulse", category="noise", table=_IMPULSE, random=True)
def noise_impulse(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise: a fraction `amount` of the values set to 0 or 255.

    As skimage's ``random_noise(mode="s&p")`` (which the original called), each channel
    value is hit independently, half salt and half pepper, so a hit pixel usually shows a
    saturated colour rather than pure white or black. Unlike the original, every draw comes
    from `rng` (one float32 uniform per value), so the output is reproducible.

    Severity: amount grows from 0.01 to 0.10.

    References: skimage.util.random_noise; KADID-10k (impulse noise); DQ-495K.
    """
    p = params_for(_IMPULSE, severity)
    return _impulse(image, rng.random(image.shape, dtype=np.float32), amount=p.amount)
