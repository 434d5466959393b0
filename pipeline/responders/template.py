"""The offline, deterministic template responder (the demo default; no network, no cost).

It writes a plausible three-part answer from the ground truth and simple image statistics:
content (lighting, colourfulness, dominant colour, amount of detail: measured on the clean
picture, which shows the content best), the distortions with their grade words and typical
effects, and an overall judgement (single) or a verdict consistent with the judge (pairs).
Phrases are drawn from small pools with the sample's seed, so the same sample always gets
the same text. Records say responder "template", model "template-v1".
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from distortions.pairs import CATEGORY_PHRASES, grade_word
from pipeline.records import AppliedDistortion, Usage
from pipeline.responders.base import Reply, ResponderError, ResponseRequest
from pipeline.seeds import rng_for
from pipeline.validate import word_count

__all__ = ["TemplateResponder", "image_stats"]

MODEL = "template-v1"

_EFFECTS: dict[str, tuple[str, ...]] = {
    "blur": ("softens the edges and wipes out fine texture",
             "makes outlines fuzzy and hides small details",
             "smears textures so that fine structures are hard to make out"),
    "noise": ("scatters grainy specks over smooth areas",
              "adds a speckled grain that masks fine texture",
              "covers flat regions with random grain"),
    "compression": ("leaves blocky artifacts and ringing around edges",
                    "breaks smooth gradients into blocks and smudges detail",
                    "adds blocking and blurs fine texture"),
    "brighten": ("washes out the highlights and flattens the tones",
                 "makes bright regions lose their detail",
                 "lifts every tone so the picture looks faded and overexposed"),
    "darken": ("sinks the shadows so that dark regions lose their detail",
               "makes the scene gloomy and hides structure in the shadows",
               "pushes the tones down so much that details become hard to see"),
    "contrast_strengthen": ("makes the tones harsh, clipping shadows and highlights",
                            "exaggerates the difference between light and dark areas",
                            "crushes the dark areas and blows out the bright ones"),
    "contrast_weaken": ("makes the picture look flat and hazy",
                        "compresses the tones so that shapes stand out poorly",
                        "gives the scene a dull, flat appearance"),
    "saturate_strengthen": ("makes the colours garish and unnatural",
                            "pushes the colours to an unrealistic intensity",
                            "makes the hues look loud and artificial"),
    "saturate_weaken": ("drains the colour so the scene looks pale",
                        "makes the hues dull and nearly grey",
                        "leaves the picture with faded, lifeless colours"),
    "oversharpen": ("creates bright halos along the edges",
                    "makes edges look harsh with visible halos",
                    "exaggerates edges and amplifies small texture"),
    "pixelate": ("turns fine structures into visible square blocks",
                 "replaces smooth edges with a blocky mosaic",
                 "makes details coarse and jagged"),
    "quantization": ("turns smooth gradients into visible bands",
                     "leaves only a few flat colour levels with false contours",
                     "causes banding in smooth regions such as the sky"),
}
_QUALITY_SD = ("good", "fair", "mediocre", "poor", "very poor")
_OPEN = ("The image shows", "This photo depicts", "The picture presents", "The photo captures")
_OPEN_PAIR = ("Both images show", "The two pictures depict", "Both versions present")
_OVERALL = ("Overall, the quality of the image is {q}.", "In sum, the image has {q} quality.",
            "Taken together, its quality is {q}.")
_CLEAN = ("{s} shows no visible distortion: edges are crisp, colours look natural and fine "
          "texture is kept.",
          "{s} looks clean, with sharp detail, natural colours and a balanced exposure.",
          "{s} has no visible distortion; detail, colour and exposure all look natural.")
_COLOURS = (("red", 0), ("orange", 30), ("yellow", 60), ("green", 120), ("cyan", 180),
            ("blue", 230), ("purple", 280), ("magenta", 320), ("red", 360))


# MOS-grounded descriptions (pipeline/respond/mos.py): one sentence per level bin, none of
# them using another level word, so the answer always passes validate_mos_answer.
_MOS_DETAIL: dict[str, tuple[str, ...]] = {
    "excellent": ("Edges are crisp, colours look natural and fine texture is fully kept.",
                  "Detail is sharp throughout, with clean tones and no visible artifacts."),
    "good": ("Detail is mostly sharp and colours look natural, with only minor flaws.",
             "Edges are clear and noise is hardly visible; small imperfections remain."),
    "fair": ("Some softness, noise or artifacts are visible, though the content stays clear.",
             "Fine texture is partly lost and some flaws show, but the scene reads well."),
    "poor": ("Blur, noise or artifacts are clearly visible and hide many details.",
             "Texture is largely lost and visible defects distract from the content."),
    "bad": ("Heavy degradation makes the content hard to make out.",
            "Severe defects wipe out detail and dominate the whole picture."),
}
_MOS_ALIGN = (("closely follows its prompt", 0.6), ("partly follows its prompt", 0.4),
              ("follows its prompt only loosely", 0.0))


def _mos_answer(request: ResponseRequest) -> str:
    item = request.sample
    rng = rng_for(item.seed, "template/mos")  # type: ignore[attr-defined]
    path = next((img.path for img in request.images if img.role == "A"), None)
    try:
        stats = image_stats(_load(str(path)))
    except (OSError, TypeError) as err:
        msg = f"sample {item.sample_id}: cannot read image for the template: {err}"
        raise ResponderError(msg, kind="missing_image") from None
    level: str = item.level  # type: ignore[attr-defined]
    pool = _MOS_DETAIL[level]
    parts = [_content(stats, rng), pool[int(rng.integers(len(pool)))]]
    align = getattr(item, "align_score", None)
    if align is not None:
        phrase = next(p for p, lo in _MOS_ALIGN if align >= lo)
        parts.append(f"The image {phrase}.")
    parts.append(_OVERALL[int(rng.integers(len(_OVERALL)))].format(q=level))
    text = " ".join(parts)
    if word_count(text) > request.word_limit:
        text = " ".join(parts[1:])
    return text


@functools.lru_cache(maxsize=256)
def _load(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def image_stats(image: np.ndarray) -> dict[str, float | str]:
    """Simple statistics of an RGB float image in [0, 1].

    Returns:
        brightness (mean luma 0..1), colourfulness (Hasler and Suesstrunk, 0..~150),
        colour (dominant hue name among saturated pixels, or "neutral grey"),
        edges (fraction of pixels with a strong luma gradient).
    """
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    rg, yb = r - g, 0.5 * (r + g) - b
    colourfulness = 255.0 * (np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    mx, mn = image.max(axis=-1), image.min(axis=-1)
    sat = (mx - mn) / np.maximum(mx, 1e-6)
    mask = (sat > 0.25) & (mx > 0.15)
    colour = "neutral grey"
    if mask.mean() > 0.05:
        # hue in degrees from the RGB hexcone, histogram over saturated pixels
        d = np.maximum(mx - mn, 1e-6)
        h = np.where(mx == r, ((g - b) / d) % 6,
                     np.where(mx == g, (b - r) / d + 2, (r - g) / d + 4))
        hist, edges = np.histogram(h[mask] * 60.0, bins=12, range=(0, 360))
        peak = 0.5 * (edges[int(hist.argmax())] + edges[int(hist.argmax()) + 1])
        colour = min(_COLOURS, key=lambda c: abs(c[1] - peak))[0]
    gy, gx = np.gradient(luma)
    edges_frac = float((np.hypot(gx, gy) > 0.08).mean())
    return {"brightness": float(luma.mean()), "colourfulness": float(colourfulness),
            "colour": colour, "edges": edges_frac}


def _content(stats: dict[str, float | str], rng: np.random.Generator, *, pair: bool = False) -> str:
    b = float(stats["brightness"])
    light = ("dark" if b < 0.3 else "dimly lit" if b < 0.42 else "evenly lit" if b < 0.6
             else "bright" if b < 0.75 else "very bright")
    c = float(stats["colourfulness"])
    palette = ("nearly colourless" if c < 12 else "muted" if c < 35 else "colourful" if c < 60
               else "vivid")
    e = float(stats["edges"])
    detail = ("large smooth areas" if e < 0.05 else "a moderate amount of texture" if e < 0.15
              else "rich fine detail and many edges")
    pool = _OPEN_PAIR if pair else _OPEN
    opening = pool[int(rng.integers(len(pool)))]
    if stats["colour"] == "neutral grey":
        scene = f"{palette} scene of neutral grey tones"
    elif c < 12:  # a hue is found, but too weak to dominate a nearly colourless scene
        scene = f"{palette} scene with a faint {stats['colour']} cast"
    else:
        scene = f"{palette} scene dominated by {stats['colour']} tones"
    return f"{opening} {_a(light)}, {scene}, with {detail}."


def _distortion_sentence(subject: str, dists: Sequence[AppliedDistortion], multi: bool,
                         rng: np.random.Generator) -> str:
    if not dists:
        return _CLEAN[int(rng.integers(len(_CLEAN)))].format(s=subject)
    named = [f"{_a(grade_word(d.severity, multi=multi))} level of "
             f"{CATEGORY_PHRASES.get(d.category, d.category)}"
             for d in dists]
    effects = [_EFFECTS.get(d.category, ("lowers its quality",))[
        int(rng.integers(len(_EFFECTS.get(d.category, ("",)))))] for d in dists]
    if len(dists) == 1:
        return f"{subject} suffers from {named[0]}, which {effects[0]}."
    return (f"{subject} suffers from {named[0]} combined with {named[1]}: the first "
            f"{effects[0]}, and the second {effects[1]}.")


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _damage(dists: Sequence[AppliedDistortion], multi: bool) -> float:
    # multi-distortion severities (1..3) span the same range as single ones (1..5)
    return sum(d.severity * (5 / 3 if multi else 1.0) for d in dists)


def _reference_stats(path: str) -> dict[str, float | str]:
    """`image_stats` of a reference, computed once per file (per process): every sample of
    a reference shares them. Keyed by size and mtime too, so a changed file is re-read."""
    st = os.stat(path)
    return dict(_stats_of(path, st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=4096)
def _stats_of(path: str, size: int, mtime_ns: int) -> dict[str, float | str]:
    del size, mtime_ns  # part of the cache key only
    return image_stats(_load.__wrapped__(path))  # the pixels are not kept, only the stats


def _quality(dists: Sequence[AppliedDistortion], multi: bool) -> str:
    if not dists:
        return "high"
    level = min(4, max(0, round(_damage(dists, multi) * (0.75 if len(dists) > 1 else 1.0)) - 1))
    return _QUALITY_SD[level]


class TemplateResponder:
    """Deterministic answers from the ground truth and image statistics (see module doc)."""

    name = "template"
    model = MODEL
    key = "template"
    paid = False
    deterministic = True

    async def arespond(self, request: ResponseRequest) -> Reply:
        return Reply(text=self.answer(request), usage=Usage(), model=MODEL, finish_reason="stop")

    async def aclose(self) -> None:
        return None

    def answer(self, request: ResponseRequest) -> str:
        """The template text of one request (pure function of the sample and its images)."""
        if request.prompt_id == "mos_describe":
            return _mos_answer(request)
        sample = request.sample
        rng = rng_for(sample.seed, "template")
        # Grade words follow the image, not the kind: a refAB_md image may carry one
        # distortion (severity 1..5, single grades) or two (1..3, multi grades).
        images = {img.role: img.path for img in request.images}
        try:
            stats = _reference_stats(str(images["reference"]))
        except (OSError, KeyError) as err:
            msg = f"sample {sample.sample_id}: cannot read image for the template: {err}"
            raise ResponderError(msg, kind="missing_image") from None
        A = sample.image_A.distortions
        if sample.image_B is None:
            parts = [_content(stats, rng), _distortion_sentence("The image", A, len(A) > 1, rng),
                     _OVERALL[int(rng.integers(len(_OVERALL)))].format(
                         q=_quality(A, len(A) > 1))]
        else:
            B = sample.image_B.distortions
            if sample.judge is not None:
                a_better = sample.judge.A_better_B
            else:
                a_better = _damage(A, len(A) > 1) <= _damage(B, len(B) > 1)
            win, lose = ("A", "B") if a_better else ("B", "A")
            verdict = (f"Overall, Image {win} is better than Image {lose}.",
                       f"Image {win} therefore has the higher quality of the two.",
                       f"In conclusion, Image {win} is better than Image {lose}.")
            parts = [_content(stats, rng, pair=True),
                     _distortion_sentence("Image A", A, len(A) > 1, rng),
                     _distortion_sentence("Image B", B, len(B) > 1, rng),
                     verdict[int(rng.integers(len(verdict)))]]
        text = " ".join(parts)
        if word_count(text) > request.word_limit:  # drop the content sentence first
            text = " ".join(parts[1:])
        return text

