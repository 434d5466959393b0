"""The DQ-495K distortion library: 35 distortions in 12 categories, pure and seeded.

Public API::

    apply(image, name, severity, rng) -> np.ndarray
    REGISTRY      name -> DistortionSpec(name, category, table, fn, random)
    CATEGORIES    category -> tuple of names
    sample_single(rng) -> (name, severity)
    sample_pair(rng)   -> ((name1, severity1), (name2, severity2))   # multi-distortion

Every function has the signature `(image uint8 HxWx3, severity 1..5, rng) -> uint8 HxWx3`,
draws randomness only from `rng`, never modifies its input, and does no I/O.
"""

from __future__ import annotations

import numpy as np

from distortions import (  # noqa: F401  (importing a category module registers it)
    blur,
    brightness,
    compression,
    contrast,
    noise,
    oversharpen,
    pixelate,
    quantization,
    saturation,
)
from distortions._checks import InputTypeError, check_image, check_severity
from distortions._notes import collect_notes
from distortions.pairs import (
    CATEGORY_PHRASES,
    GRADES_MD,
    GRADES_SD,
    IDENTIFICATION_MIN_SEVERITY,
    PAIR_TABLE,
    grade_word,
)
from distortions.registry import (
    ALIASES,
    CATEGORY_ORDER,
    REGISTRY,
    DistortionSpec,
    UnknownDistortionError,
    canonical_name,
    get,
)

__all__ = [
    "ALIASES",
    "CATEGORIES",
    "CATEGORY_ORDER",
    "CATEGORY_PHRASES",
    "GRADES_MD",
    "GRADES_SD",
    "IDENTIFICATION_MIN_SEVERITY",
    "PAIR_TABLE",
    "REGISTRY",
    "DistortionSpec",
    "InputTypeError",
    "UnknownDistortionError",
    "apply",
    "apply_with_notes",
    "canonical_name",
    "category_of",
    "get",
    "grade_word",
    "names",
    "sample_pair",
    "sample_single",
]

CATEGORIES: dict[str, tuple[str, ...]] = {
    cat: tuple(n for n, s in REGISTRY.items() if s.category == cat) for cat in CATEGORY_ORDER
}


def names() -> list[str]:
    """All registered distortion names, category by category."""
    return [n for cat in CATEGORY_ORDER for n in CATEGORIES[cat]]


def category_of(name: str) -> str:
    """Category of a distortion (aliases accepted)."""
    return get(name).category


def apply(
    image: np.ndarray, name: str, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Apply distortion `name` at `severity` to `image`, drawing randomness from `rng`.

    Args:
        image: uint8, 2-D grey or H x W x 3 / H x W x 4 (alpha composited over white, as
            ingest does), sides >= 32 px.
        name: a registered name (or an old `..._shfit_...` alias).
        severity: int 1..5 (bool and float refused).
        rng: the per-sample generator; the only source of randomness.

    Returns:
        A new uint8 H x W x 3 array; the input is never modified.

    Raises:
        UnknownDistortionError: (a KeyError) unknown name; the message lists known names.
        InputTypeError: (a TypeError and a ValueError) wrong type of image, dtype,
            severity or rng.
        ValueError: bad image shape or size, severity out of 1..5.
    """
    return apply_with_notes(image, name, severity, rng)[0]


def apply_with_notes(
    image: np.ndarray, name: str, severity: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """As `apply`, and also return the notes of a graceful degradation (flat input etc.)."""
    spec = get(name)
    severity = check_severity(severity)
    if not isinstance(rng, np.random.Generator):
        msg = f"rng must be a numpy.random.Generator, got {type(rng).__name__}"
        raise InputTypeError(msg)
    checked = check_image(image)
    with collect_notes() as notes:
        out = spec.fn(checked, severity, rng)
    if out.dtype != np.uint8 or out.shape != checked.shape:
        msg = f"{spec.name} returned {out.dtype} {out.shape}, expected uint8 {checked.shape}"
        raise RuntimeError(msg)
    if np.shares_memory(out, image):  # never hand back a view of the caller's array
        out = out.copy()
    return out, list(notes)


def sample_single(rng: np.random.Generator, *, max_severity: int = 5) -> tuple[str, int]:
    """Draw (name, severity): category uniform over the 12, name uniform in it, severity uniform."""
    cat = CATEGORY_ORDER[int(rng.integers(len(CATEGORY_ORDER)))]
    members = CATEGORIES[cat]
    name = members[int(rng.integers(len(members)))]
    return name, int(rng.integers(1, max_severity + 1))


def sample_pair(
    rng: np.random.Generator, *, max_severity: int = 3
) -> tuple[tuple[str, int], tuple[str, int]]:
    """Draw a multi-distortion pair: first category uniform, second uniform among the
    categories the pair table allows after it, names uniform, severities uniform 1..3."""
    first_cat = CATEGORY_ORDER[int(rng.integers(len(CATEGORY_ORDER)))]
    allowed = PAIR_TABLE[first_cat]
    second_cat = allowed[int(rng.integers(len(allowed)))]
    picks = []
    for cat in (first_cat, second_cat):
        members = CATEGORIES[cat]
        picks.append((members[int(rng.integers(len(members)))], int(rng.integers(1, max_severity + 1))))
    return picks[0], picks[1]
