"""A tiny dataset folder for the task-assembly tests: real PNG files, sample and response records.

Images are small real PNGs (a smooth pattern per reference, with a visible change per
distorted image); distortion names and categories are written as the synthesis stage would
record them. Some responses mention the reference in ways the no-ref rewrite handles, one in
a way it cannot (its no-ref record must be dropped), and one sample has no response.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.manifest import Manifest
from pipeline.records import (
    AppliedDistortion,
    ImageInfo,
    JudgeVerdict,
    ResponseRecord,
    SampleRecord,
)
from pipeline.seeds import derive_seed
from pipeline.store import Store, atomic_write_jsonl

__all__ = ["RESPONDER", "UNCONVERTIBLE", "make_dataset"]

RESPONDER = "template"
UNCONVERTIBLE = "Unlike a reference photo would, this picture shows strong blur."

H, W = 48, 64

# (kind, split) -> list of image-A distortions (and B for pairs) as (name, category, severity)
_SD = [
    [("blur_gaussian", "blur", 3)],
    [("noise_gaussian_RGB", "noise", 2)],
    [("brightness_brighten_shift_HSV", "brighten", 1)],  # removed by the no-ref filter
    [],  # clean
    [("compression_jpeg", "compression", 5)],
    [("contrast_weaken_scale", "contrast_weaken", 4)],
]
_MD = [
    [("brightness_brighten_gamma_RGB", "brighten", 2), ("noise_speckle", "noise", 1)],
    [("blur_lens", "blur", 3), ("saturate_weaken_HSV", "saturate_weaken", 1)],  # filtered
    [("pixelate", "pixelate", 2), ("quantization_median", "quantization", 3)],
]
_PAIRS_SD = [
    ([("blur_motion", "blur", 1)], [("noise_impulse", "noise", 4)]),
    ([("darken_gamma", "darken", 5)], [("pixelate", "pixelate", 2)]),
    ([], [("oversharpen", "oversharpen", 3)]),
]
_PAIRS_MD = [
    ([("noise_poisson", "noise", 2), ("blur_gaussian", "blur", 1)],
     [("compression_jpeg", "compression", 3), ("darken_shift", "darken", 2)]),
    ([("pixelate", "pixelate", 1), ("brightness_brighten_shift_RGB", "brighten", 3)],
     [("quantization_otsu", "quantization", 2), ("contrast_strengthen_scale",
                                                 "contrast_strengthen", 3)]),
]

_TEXTS = [
    "Compared to the reference image, the evaluated image shows {c}. The content is a "
    "street scene. Overall the quality is poor.",
    "The picture shows a garden. It suffers from {c}, which is stronger than in the "
    "reference. Overall, the quality is fair.",
    "This image of a cat is affected by {c}. The reference image is sharper. Quality: low.",
    "The image is a landscape with {c}; the details of the reference are lost.",
]


def _pattern(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    base = np.stack([(x * 4 + seed * 17) % 256, (y * 5) % 256, ((x + y) * 3) % 256], -1)
    return (base + rng.integers(0, 20, size=(H, W, 3))).clip(0, 255).astype(np.uint8)


def _distort(img: np.ndarray, distortions: list[AppliedDistortion], seed: int) -> np.ndarray:
    out = img.astype(np.int32)
    rng = np.random.default_rng(seed)
    for d in distortions:
        out = out + rng.integers(-8 * d.severity, 8 * d.severity + 1, size=out.shape)
    return out.clip(0, 255).astype(np.uint8)


def _save(store: Store, rel: str, arr: np.ndarray) -> str:
    path = store.abs(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, compress_level=1)
    return rel


def _ad(items: list[tuple[str, str, int]]) -> list[AppliedDistortion]:
    return [AppliedDistortion(name=n, category=c, severity=s) for n, c, s in items]


def make_dataset(root: Path, *, seed: int = 7) -> tuple[Manifest, Store]:
    """Write the tiny dataset under `root`; return its manifest and store."""
    store = Store(root)
    refs = {}
    for i in range(4):
        ref_id = f"ref{i}"
        refs[ref_id] = (_pattern(i), _save(store, f"references/{ref_id}.png", _pattern(i)))
    split_refs = {"train": ["ref0", "ref1", "ref2"], "test": ["ref3"]}
    counts: dict[str, dict[str, int]] = {}
    text_i = 0
    for kind, table in (("refA_sd", _SD), ("refA_md", _MD), ("refAB_sd", _PAIRS_SD),
                        ("refAB_md", _PAIRS_MD)):
        for split, ref_ids in split_refs.items():
            samples: list[SampleRecord] = []
            responses: list[ResponseRecord] = []
            for j, entry in enumerate(table):
                ref_id = ref_ids[j % len(ref_ids)]
                ref_arr, ref_rel = refs[ref_id]
                s = derive_seed(seed, kind, split, ref_id, j)
                sid = f"{kind}-{split}-{ref_id}-{j:03d}"
                img_dir = store.image_dir(kind, split)
                a_items, b_items = (entry, None) if kind.startswith("refA_") else entry
                a = _ad(a_items)
                a_rel = (ref_rel if not a else
                         _save(store, store.rel(img_dir / f"{sid}_A.png"),
                               _distort(ref_arr, a, s)))
                image_b = judge = None
                if b_items is not None:
                    b = _ad(b_items)
                    b_rel = (ref_rel if not b else
                             _save(store, store.rel(img_dir / f"{sid}_B.png"),
                                   _distort(ref_arr, b, s + 1)))
                    image_b = ImageInfo(path=b_rel, sha256="0" * 64, distortions=b)
                    sev_a = sum(d.severity for d in a)
                    sev_b = sum(d.severity for d in b)
                    judge = JudgeVerdict(judge="fr_score_test", score_A=-sev_a,
                                         score_B=-sev_b, A_better_B=sev_a <= sev_b)
                samples.append(SampleRecord(
                    sample_id=sid, kind=kind, split=split, ref_id=ref_id, seed=s,
                    width=W, height=H, image_ref=ref_rel,
                    image_A=ImageInfo(path=a_rel, sha256="0" * 64, distortions=a),
                    image_B=image_b, judge=judge))
                if j == 1 and kind == "refA_sd" and split == "train":
                    continue  # no accepted response for this sample
                phrase = " and ".join(d.category for d in a) or "no distortion"
                if j == 2 and kind == "refA_sd" and split == "train":
                    text = UNCONVERTIBLE
                else:
                    text = _TEXTS[text_i % len(_TEXTS)].format(c=phrase)
                    text_i += 1
                verdict = None
                if judge is not None:
                    verdict = "A" if judge.A_better_B else "B"
                    text += f" Image {verdict} is better."
                responses.append(ResponseRecord(
                    sample_id=sid, kind=kind, split=split, responder=RESPONDER,
                    model="template-v1", prompt_id=f"{kind}", prompt_version="v1",
                    request_hash=f"{sid}-hash", text=text, verdict=verdict,
                    cost_usd=0.001, usage={"prompt_tokens": 100, "completion_tokens": 40}))
            atomic_write_jsonl(store.samples_path(kind, split), samples)
            atomic_write_jsonl(store.responses_path(RESPONDER, kind, split), responses)
            counts.setdefault(kind, {})[split] = len(samples)
    manifest = Manifest(name="tiny", seed=seed, counts=counts, output=str(root))
    return manifest, store
