"""Effect check: a label is only written for a distortion step that changed the pixels.

One mechanism in two places:

* **Plan time** (`excluded_categories`): ingest records what a reference allows
  (`ReferenceRecord.grey`, from `colour_stats`); the planner never draws a category that
  cannot act on it. Today that is the colour-only categories (`distortions.COLOUR_CATEGORIES`:
  saturate_strengthen, saturate_weaken) on a grey reference.
* **Render time** (`render_checked`): every step of an image is applied and measured
  against its input (`step_effect`); the finished image is compared with the reference.
  A step with no measurable effect, or an image equal to its reference, rejects the draw:
  the image is drawn again from a derived seed (`rng_for(seed, f"{side}-redraw-{k}")` for
  the draw and `rng_for(seed, f"{side}-{k}")` for the pixels, k = 1, 2, ...) with the same
  shape (one distortion or an ordered pair, same severity range, same exclusions). The
  rejected draws are recorded in the sample record (`ImageInfo.redraws`, with the reason),
  so a reader sees the plan, what was rejected, and what was built. Everything is a function
  of the sample seed: byte-identical for any worker count.

"Measurable": the step changed at least one pixel *and* its PSNR to its input is below
`MAX_EFFECT_PSNR_DB` (50 dB: a mean squared change under 0.65 levels^2, far below what the
eye or any IQA metric separates). Clean images are never rendered: they are the reference.

Also here: `TIE_MARGIN` and `is_tie`, the tie rule of the judge (two images whose scores
differ by less than the margin get no verdict; identical images always tie).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import NamedTuple

import numpy as np

import distortions
from pipeline.records import AppliedDistortion, JudgeVerdict, RejectedDraw
from pipeline.seeds import rng_for

__all__ = [
    "GREY_SPREAD",
    "MAX_EFFECT_PSNR_DB",
    "MAX_REDRAWS",
    "MAX_TIE_REDRAWS",
    "TIE_MARGIN",
    "EffectError",
    "Rendered",
    "colour_stats",
    "excluded_categories",
    "is_tie",
    "psnr",
    "redraw",
    "render_checked",
    "render_sample_images",
    "step_effect",
]

MAX_EFFECT_PSNR_DB = 50.0
MAX_REDRAWS = 16  # per image; reaching it means the reference cannot take a distortion
# A reference is grey when 99.9 % of its pixels have max(R, G, B) - min(R, G, B) <= 2
# (allows JPEG chroma noise of a greyscale scan).
GREY_SPREAD = 2
_GREY_FRACTION = 0.999
# Judge tie margin on the fr_score difference (scores in [0, 1], 1 = identical to the
# reference). 0.005 is about the smallest score step between neighbouring severities of one
# distortion on the bundled photos; below it the judge's ranking is noise.
TIE_MARGIN = 0.005


class EffectError(RuntimeError):
    """No draw changed the image after MAX_REDRAWS tries."""


def colour_stats(image: np.ndarray) -> tuple[float, bool]:
    """(colourfulness, grey) of an RGB uint8 image.

    Colourfulness is Hasler & Suesstrunk's M (2003) on 0..255 RGB (0 for a grey image,
    ~15 "slightly colourful", > 100 "extremely colourful"), rounded to 2 decimals. `grey`
    follows `GREY_SPREAD`.
    """
    px = image.reshape(-1, 3).astype(np.float64)
    rg = px[:, 0] - px[:, 1]
    yb = 0.5 * (px[:, 0] + px[:, 1]) - px[:, 2]
    m = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    spread = image.max(axis=2).astype(np.int16) - image.min(axis=2)
    grey = float(np.mean(spread <= GREY_SPREAD)) >= _GREY_FRACTION
    return round(m, 2), grey


def excluded_categories(grey: bool) -> tuple[str, ...]:
    """Categories the planner must not draw for a reference (plan-time half of the check)."""
    return distortions.COLOUR_CATEGORIES if grey else ()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0.0 else 10.0 * np.log10(255.0**2 / mse)


def step_effect(before: np.ndarray, after: np.ndarray) -> str | None:
    """None when the step changed the image measurably, else the reason (for the record)."""
    value = psnr(before, after)  # inf exactly when the step changed no pixel
    if value == float("inf"):
        return "unchanged"
    if value >= MAX_EFFECT_PSNR_DB:
        return f"no measurable effect (PSNR {value:.1f} dB)"
    return None


def is_tie(score_a: float | None, score_b: float | None, a: np.ndarray | None = None,
           b: np.ndarray | None = None) -> bool:
    """True when a verdict between A and B must not be given: identical images, or scores
    within `TIE_MARGIN` (scores None: only identical pixels count as a tie)."""
    if a is not None and b is not None and np.array_equal(a, b):
        return True
    if score_a is None or score_b is None:
        return False
    return abs(score_a - score_b) < TIE_MARGIN


Render = Callable[[np.ndarray, Sequence[AppliedDistortion], np.random.Generator],
                  tuple[np.ndarray, list[str]]]


def _apply_checked(ref: np.ndarray, planned: Sequence[AppliedDistortion],
                   rng: np.random.Generator) -> tuple[np.ndarray, list[str], str | None]:
    image, notes = ref, []
    for d in planned:
        out, new = distortions.apply_with_notes(image, d.name, d.severity, rng)
        notes += [n if n.startswith(f"{d.name}:") else f"{d.name}: {n}" for n in new]
        reason = step_effect(image, out)
        if reason is not None:
            return out, notes, f"{d.name} (severity {d.severity}): {reason}"
        image = out
    # one step that changed its input cannot end equal to the reference (checked above)
    if len(planned) != 1 and np.array_equal(image, ref):
        return image, notes, "image equal to its reference"
    return image, notes, None


def redraw(shape: Sequence[AppliedDistortion], rng: np.random.Generator,
           exclude: Collection[str], pair_sampler: Callable[..., tuple]) -> list[AppliedDistortion]:
    """A new draw with the shape of `shape`: one distortion (severity 1..5) or a pair."""
    if len(shape) >= 2:
        picks = list(pair_sampler(rng, exclude=exclude))
    else:
        picks = [distortions.sample_single(rng, exclude=exclude)]
    return [AppliedDistortion(name=n, category=distortions.category_of(n), severity=s)
            for n, s in picks]


def render_checked(
    ref: np.ndarray, planned: Sequence[AppliedDistortion], seed: int, side: str, *,
    exclude: Collection[str] = (), pair_sampler: Callable[..., tuple] | None = None,
    avoid: Callable[[Sequence[AppliedDistortion]], bool] | None = None,
) -> tuple[np.ndarray, list[AppliedDistortion], list[str], list[RejectedDraw]]:
    """Render `planned` on `ref`; redraw (derived seeds) until every step has an effect.

    Args:
        ref: the reference pixels (never modified).
        planned: the planned distortions of this image (non-empty).
        seed, side: the sample seed and "A" / "B" (attempt 0 renders with rng_for(seed, side),
            exactly as without the check).
        exclude: categories a redraw must not use (the plan-time exclusions).
        pair_sampler: the pair draw of the manifest's md mix (default `distortions.sample_pair`).
        avoid: a redraw for which this returns True is skipped (B must stay unlike A).

    Returns:
        (image, distortions used, notes, rejected draws in order).

    Raises:
        EffectError: nothing changed the image after MAX_REDRAWS redraws.
    """
    sampler = pair_sampler or distortions.sample_pair
    rejected: list[RejectedDraw] = []
    current = list(planned)
    image, notes, reason = _apply_checked(ref, current, rng_for(seed, side))
    k = 0
    while reason is not None:
        rejected.append(RejectedDraw(distortions=current, reason=reason, notes=notes))
        k += 1
        if k > MAX_REDRAWS:
            msg = (f"image {side}: no distortion changed the image after {MAX_REDRAWS} "
                   f"redraws (last: {reason})")
            raise EffectError(msg)
        draw_rng = rng_for(seed, f"{side}-redraw-{k}")
        current = redraw(planned, draw_rng, exclude, sampler)
        for _ in range(MAX_REDRAWS):  # a B that repeats A's signature is drawn again
            if avoid is None or not avoid(current):
                break
            current = redraw(planned, draw_rng, exclude, sampler)
        image, notes, reason = _apply_checked(ref, current, rng_for(seed, f"{side}-{k}"))
    return image, current, notes, rejected


# --------------------------------------------------------------------------- one sample
MAX_TIE_REDRAWS = 8  # B redraws when the judge cannot separate A and B


class Rendered(NamedTuple):
    """One image of a sample after the effect check."""

    pixels: np.ndarray
    distortions: list[AppliedDistortion]
    notes: list[str]
    redraws: list[RejectedDraw]


def _signature(dists: Sequence[AppliedDistortion]) -> tuple[tuple[str, int], ...]:
    return tuple((d.category, d.severity) for d in dists)


def render_sample_images(
    ref: np.ndarray, seed: int, planned_a: Sequence[AppliedDistortion],
    planned_b: Sequence[AppliedDistortion] | None, *, exclude: Collection[str] = (),
    pair_sampler: Callable[..., tuple] | None = None,
    judge: Callable[[np.ndarray, np.ndarray], JudgeVerdict | None] | None = None,
    redraw_ties: bool = False,
) -> tuple[dict[str, Rendered], JudgeVerdict | None, bool]:
    """Render A (and B) of one sample with the effect check, judge a pair with the tie rule.

    A clean image (empty plan) is the reference itself. For a pair, a redrawn B never
    repeats A's (category, severity) signature. When `judge` gives a verdict whose scores
    tie (`is_tie`) and `redraw_ties` is set (a judge that scores pixels), B is drawn again
    from `rng_for(seed, f"B-tie-{k}")` (k = 1..MAX_TIE_REDRAWS, the rejected B recorded with
    reason "tie with A ..."); a tie that remains (or any tie without redraws) gives no
    verdict.

    Returns:
        ({"A": Rendered, "B": Rendered}, verdict or None, tie).
    """
    sampler = pair_sampler or distortions.sample_pair

    def one(planned: Sequence[AppliedDistortion], side: str,
            avoid: Callable[[Sequence[AppliedDistortion]], bool] | None = None) -> Rendered:
        if not planned:
            return Rendered(ref, [], [], [])
        px, used, notes, rejected = render_checked(ref, planned, seed, side, exclude=exclude,
                                                   pair_sampler=sampler, avoid=avoid)
        return Rendered(px, used, notes, rejected)

    out = {"A": one(planned_a, "A")}
    if planned_b is None:
        return out, None, False
    sig_a = _signature(out["A"].distortions)
    out["B"] = one(planned_b, "B", avoid=lambda d: _signature(d) == sig_a)
    if judge is None:
        return out, None, False
    verdict = judge(out["A"].pixels, out["B"].pixels)
    tie = verdict is not None and is_tie(verdict.score_A, verdict.score_B,
                                         out["A"].pixels, out["B"].pixels)
    earlier: list[RejectedDraw] = []
    k = 0
    while tie and redraw_ties and k < MAX_TIE_REDRAWS and verdict is not None:
        k += 1
        b = out["B"]
        earlier += [*b.redraws, RejectedDraw(
            distortions=b.distortions, notes=b.notes,
            reason=f"tie with A (judge scores {verdict.score_A} / {verdict.score_B})")]
        shape = planned_b or planned_a
        draw_rng = rng_for(seed, f"B-tie-{k}-draw")
        new = redraw(shape, draw_rng, exclude, sampler)
        for _ in range(MAX_REDRAWS):
            if _signature(new) != sig_a:
                break
            new = redraw(shape, draw_rng, exclude, sampler)
        fresh = one(new, f"B-tie-{k}", avoid=lambda d: _signature(d) == sig_a)
        out["B"] = Rendered(fresh.pixels, fresh.distortions, fresh.notes,
                            earlier + fresh.redraws)
        verdict = judge(out["A"].pixels, out["B"].pixels)
        tie = verdict is not None and is_tie(verdict.score_A, verdict.score_B,
                                             out["A"].pixels, out["B"].pixels)
    if tie:
        return out, None, True
    return out, verdict, False
