"""Input checks and dtype helpers shared by every distortion."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["MIN_SIDE", "InputTypeError", "check_image", "check_severity", "flatten_alpha",
           "to_float", "to_uint8"]

MIN_SIDE = 32


class InputTypeError(TypeError, ValueError):
    """An argument of the wrong type (not an ndarray, not uint8, a float severity, not a
    Generator). A TypeError, as Python has it, and a ValueError, so that `except ValueError`
    catches every bad input of `distortions.apply`."""


def check_severity(severity: object) -> int:
    """Return `severity` if it is an int in 1..5 (bool and float refused)."""
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral):
        msg = f"severity must be an int in 1..5, got {severity!r} ({type(severity).__name__})"
        raise InputTypeError(msg)
    if not 1 <= int(severity) <= 5:
        msg = f"severity must be in 1..5, got {severity}"
        raise ValueError(msg)
    return int(severity)


def check_image(image: object) -> np.ndarray:
    """Validate an image and return it as uint8 H x W x 3 RGB.

    Accepts 2-D grey (replicated to 3 channels), H x W x 3, and H x W x 4 (composited over
    white, as ingest does: transparent pixels hold arbitrary colours that dropping the
    alpha would reveal). The input is never modified; the result may share memory with it,
    so distortions must not write into it.

    Raises:
        InputTypeError: (a TypeError and a ValueError) not a numpy array, or not uint8.
        ValueError: wrong number of dimensions or channels, or a side shorter than 32 px.
    """
    if not isinstance(image, np.ndarray):
        msg = f"image must be a numpy.ndarray, got {type(image).__name__}"
        raise InputTypeError(msg)
    if image.dtype != np.uint8:
        msg = f"image must be uint8, got dtype {image.dtype}"
        raise InputTypeError(msg)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 3:
        pass
    elif image.ndim == 3 and image.shape[2] == 4:
        image = flatten_alpha(image)
    else:
        msg = f"image must be H x W (grey), H x W x 3 or H x W x 4, got shape {image.shape}"
        raise ValueError(msg)
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        msg = f"image sides must be >= {MIN_SIDE} px, got {h} x {w}"
        raise ValueError(msg)
    return np.ascontiguousarray(image)


def flatten_alpha(rgba: np.ndarray) -> np.ndarray:
    """uint8 H x W x 4 -> H x W x 3 composited over opaque white, rounded to nearest
    (opaque pixels unchanged; Pillow's `alpha_composite` over white within 1 level)."""
    alpha = rgba[:, :, 3:4].astype(np.uint32)
    rgb = rgba[:, :, :3].astype(np.uint32)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1] (a new array)."""
    out = image.astype(np.float32)
    out *= np.float32(1 / 255)  # in place: one image-sized allocation, not two
    return out


def to_uint8(image: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """Float in [0, 1] -> uint8, clipped and rounded to nearest (never truncated).

    Args:
        image: float array, any shape.
        overwrite: scale `image` in place (it must be a writable float array the caller no
            longer needs). Saves image-sized temporaries: at 224 px, fresh allocations that
            malloc hands back to the OS cost more in page faults than the arithmetic.
    """
    out = np.clip(image, 0.0, 1.0, out=image if overwrite else None)
    out *= 255.0
    return np.rint(out, out=out).astype(np.uint8)
