"""The distortion registry: one `DistortionSpec` per distortion, keyed by name.

Category modules register their functions with `@register(name, category=..., table=...)`;
importing a module registers its functions and does nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ALIASES",
    "CATEGORY_ORDER",
    "DistortionFn",
    "DistortionSpec",
    "REGISTRY",
    "UnknownDistortionError",
    "canonical_name",
    "get",
    "params_for",
    "register",
]

DistortionFn = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

# The 12 categories of the DQ-495K set, in the order of ../spec/distortions.md.
CATEGORY_ORDER: tuple[str, ...] = (
    "blur",
    "noise",
    "compression",
    "brighten",
    "darken",
    "contrast_strengthen",
    "contrast_weaken",
    "saturate_strengthen",
    "saturate_weaken",
    "oversharpen",
    "pixelate",
    "quantization",
)

# Old spellings found in metadata of the original build -> the corrected name we write.
ALIASES: dict[str, str] = {
    "brightness_brighten_shfit_HSV": "brightness_brighten_shift_HSV",
    "brightness_brighten_shfit_RGB": "brightness_brighten_shift_RGB",
    "brightness_darken_shfit_HSV": "brightness_darken_shift_HSV",
    "brightness_darken_shfit_RGB": "brightness_darken_shift_RGB",
}


class UnknownDistortionError(KeyError):
    """Raised for a distortion name that is neither registered nor an alias."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class DistortionSpec:
    """One registered distortion.

    Attributes:
        name: registry key, equal to the name written in sample records.
        category: one of `CATEGORY_ORDER`.
        table: the parameters for severities 1..5 (index 0 is severity 1), as declared next
            to the function.
        fn: `fn(image uint8 HxWx3, severity 1..5, rng) -> uint8 HxWx3`.
        random: whether the output depends on `rng` (a different seed gives other bytes).
    """

    name: str
    category: str
    table: tuple[Any, ...]
    fn: DistortionFn
    random: bool = False

    def params(self, severity: int) -> Any:
        """The parameter row for `severity` (1..5)."""
        return params_for(self.table, severity)


REGISTRY: dict[str, DistortionSpec] = {}


def params_for(table: Sequence[Any], severity: int) -> Any:
    """Row of a five-row severity table for `severity` in 1..5."""
    if len(table) != 5:
        msg = f"severity table must have 5 rows, got {len(table)}"
        raise ValueError(msg)
    return table[severity - 1]


def register(
    name: str, *, category: str, table: Sequence[Any], random: bool = False
) -> Callable[[DistortionFn], DistortionFn]:
    """Decorator: register `fn` under `name` in `category` with its severity `table`."""
    if category not in CATEGORY_ORDER:
        msg = f"unknown category {category!r} for {name!r}; known: {', '.join(CATEGORY_ORDER)}"
        raise ValueError(msg)
    if len(table) != 5:
        msg = f"{name}: severity table must have 5 rows, got {len(table)}"
        raise ValueError(msg)

    def decorator(fn: DistortionFn) -> DistortionFn:
        if name in REGISTRY:
            msg = f"distortion {name!r} is already registered"
            raise ValueError(msg)
        REGISTRY[name] = DistortionSpec(name, category, tuple(table), fn, random)
        return fn

    return decorator


def canonical_name(name: str) -> str:
    """Resolve old spellings (`..._shfit_...`) to the registered name."""
    if not isinstance(name, str):
        msg = f"distortion name must be a str, got {type(name).__name__}"
        raise TypeError(msg)
    return ALIASES.get(name, name)


def get(name: str) -> DistortionSpec:
    """The spec registered under `name` (aliases accepted).

    Raises:
        UnknownDistortionError: the name is unknown; the message lists the known names.
    """
    key = canonical_name(name)
    try:
        return REGISTRY[key]
    except KeyError:
        msg = f"unknown distortion {name!r}; known: {', '.join(sorted(REGISTRY))}"
        raise UnknownDistortionError(msg) from None


