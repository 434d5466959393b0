"""Wording tables and the allowed (first -> second) category pairs of multi-distortion samples.

All tables are data from ../spec/distortions.md.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CATEGORY_PHRASES",
    "GRADES_MD",
    "GRADES_SD",
    "IDENTIFICATION_MIN_SEVERITY",
    "PAIR_TABLE",
    "grade_word",
]

# first category -> categories allowed as the second distortion.
PAIR_TABLE: Final[dict[str, tuple[str, ...]]] = {
    "blur": ("brighten", "compression", "contrast_strengthen", "contrast_weaken", "darken",
             "noise", "quantization", "saturate_strengthen", "saturate_weaken"),
    "brighten": ("blur", "compression", "noise", "pixelate", "quantization"),
    "compression": ("blur", "brighten", "contrast_strengthen", "contrast_weaken", "darken",
                    "noise", "saturate_strengthen", "saturate_weaken"),
    "contrast_strengthen": ("blur", "compression", "noise", "pixelate", "quantization"),
    "contrast_weaken": ("blur", "compression", "noise", "pixelate", "quantization"),
    "darken": ("blur", "compression", "noise", "pixelate", "quantization"),
    "noise": ("blur", "brighten", "compression", "contrast_strengthen", "contrast_weaken",
              "darken", "oversharpen", "pixelate", "saturate_strengthen", "saturate_weaken"),
    "oversharpen": ("brighten",),
    "pixelate": ("brighten", "contrast_strengthen", "contrast_weaken", "darken", "noise",
                 "oversharpen", "quantization", "saturate_strengthen", "saturate_weaken"),
    "quantization": ("brighten", "contrast_strengthen", "contrast_weaken", "darken", "noise",
                     "oversharpen", "pixelate", "saturate_strengthen", "saturate_weaken"),
    "saturate_strengthen": ("blur", "compression", "noise", "oversharpen", "pixelate",
                            "quantization"),
    "saturate_weaken": ("blur", "compression", "noise", "oversharpen", "pixelate",
                        "quantization"),
}

# Grade words by severity (index 0 = severity 1).
GRADES_SD: Final[tuple[str, ...]] = ("slight", "moderate", "obvious", "serious", "catastrophic")
GRADES_MD: Final[tuple[str, ...]] = ("slight", "obvious", "serious")

# Fixed phrase per category for brief identification answers (exact-match scoring).
CATEGORY_PHRASES: Final[dict[str, str]] = {
    "blur": "blur",
    "noise": "noise",
    "compression": "compression",
    "brighten": "overly high brightness",
    "darken": "insufficient brightness",
    "contrast_strengthen": "overly high contrast",
    "contrast_weaken": "insufficient contrast",
    "saturate_strengthen": "overly high saturation",
    "saturate_weaken": "insufficient saturation",
    "oversharpen": "oversharpening",
    "pixelate": "pixelation",
    "quantization": "color quantization",
}

# Severity filter of the no-reference identification tasks: slight versions of these
# categories are hard to see, so only severity >= 2 is kept.
IDENTIFICATION_MIN_SEVERITY: Final[dict[str, int]] = {
    c: 2 for c in ("brighten", "darken", "contrast_strengthen", "contrast_weaken",
                   "saturate_strengthen", "saturate_weaken", "quantization", "oversharpen")
}


def grade_word(severity: int, *, multi: bool = False) -> str:
    """The grade word of a severity (single: 1..5, multi-distortion: 1..3)."""
    grades = GRADES_MD if multi else GRADES_SD
    if not 1 <= severity <= len(grades):
        msg = f"severity must be in 1..{len(grades)} here, got {severity}"
        raise ValueError(msg)
    return grades[severity - 1]
