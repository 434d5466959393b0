"""The DQ-495K distortion library: 35 distortions in 12 categories, pure and seeded.

Public API::

    apply(image, name, severity, rng) -> np.ndarray
    REGISTRY      name -> DistortionSpec(name, category, table, fn, random)
    CATEGORIES    category -> tuple of names
    sample_single(rng) -> (name, severity)
    sample_pair(rng)   -> ((name1, severity1), (name2, severity2))   # multi-distortion
    COLOUR_CATEGORIES  categories that act on colour only (no effect on a grey image)

Every function has the signature `(image uint8 HxWx3, severity 1..5, rng) -> uint8 HxWx3`,
draws randomness only from `rng`, never modifies its input, and does no I/O.
"""

from __future__ import annotations

from collections.abc import Collection

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
    "COLOUR_CATEGORIES",
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
    "sample_pair_v1",
    "sample_single",
]

# Categories whose distortions change only colour: on a grey image (R = G = B) they leave
# every pixel as it is, so a sampler given `exclude=COLOUR_CATEGORIES` never draws them.
COLOUR_CATEGORIES: tuple[str, ...] = ("saturate_strengthen", "saturate_weaken")

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


def _category(rng: np.random.Generator, exclude: Collection[str]) -> str:
    """A category uniform over those not excluded (drawn over all 12, redrawn while excluded,
    so the stream of a draw with nothing excluded is the same as before)."""
    if set(exclude) >= set(CATEGORY_ORDER):
        msg = "every category is excluded"
        raise ValueError(msg)
    while True:
        cat = CATEGORY_ORDER[int(rng.integers(len(CATEGORY_ORDER)))]
        if cat not in exclude:
            return cat


def _member(rng: np.random.Generator, cat: str, max_severity: int) -> tuple[str, int]:
    members = CATEGORIES[cat]
    return members[int(rng.integers(len(members)))], int(rng.integers(1, max_severity + 1))


def sample_single(rng: np.random.Generator, *, max_severity: int = 5,
                  exclude: Collection[str] = ()) -> tuple[str, int]:
    """Draw (name, severity): category uniform over the 12 (less `exclude`), name uniform in
    it, severity uniform 1..max_severity."""
    return _member(rng, _category(rng, exclude), max_severity)


def sample_pair(
    rng: np.random.Generator, *, max_severity: int = 3, exclude: Collection[str] = ()
) -> tuple[tuple[str, int], tuple[str, int]]:
    """Draw a multi-distortion pair as the original build did: two distinct categories in
    order (uniform), redrawn until the pair table allows the second after the first (and
    neither is in `exclude`), which is uniform over the allowed ordered pairs; then a name
    uniform in each category and severities uniform 1..max_severity."""
    n = len(CATEGORY_ORDER)
    if not any(a not in exclude and b not in exclude for a, bs in PAIR_TABLE.items()
               for b in bs):
        msg = "no allowed pair is left once the excluded categories are removed"
        raise ValueError(msg)
    while True:
        first, second = (CATEGORY_ORDER[int(i)] for i in rng.choice(n, size=2, replace=False))
        if second in PAIR_TABLE[first] and first not in exclude and second not in exclude:
            break
    return _member(rng, first, max_severity), _member(rng, second, max_severity)


def sample_pair_v1(
    rng: np.random.Generator, *, max_severity: int = 3, exclude: Collection[str] = ()
) -> tuple[tuple[str, int], tuple[str, int]]:
    """dqgen 1's pair draw (manifest `md_mix: dqgen_v1`): first category uniform, second
    uniform among those the pair table allows after it (not uniform over the pairs:
    categories with few partners dominate). Excluded categories are redrawn."""
    while True:
        first_cat = _category(rng, exclude)
        allowed = [c for c in PAIR_TABLE[first_cat] if c not in exclude]
        if allowed:
            break
    second_cat = allowed[int(rng.integers(len(allowed)))]
    return _member(rng, first_cat, max_severity), _member(rng, second_cat, max_severity)
